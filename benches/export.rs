//! Criterion benches of one export push: encoding a run's sample as Prometheus text and as an
//! OTLP request, and a whole push (encode, HTTP round trip, answer) to a local responder.
//!
//! Run with `cargo bench --bench export`. The responder is a thread of this process answering
//! `200 OK` at once over a kept-alive connection, so the push figure is carbonmeter's and
//! ureq's own cost plus loopback TCP; a real gateway adds its own work on its own CPU.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use carbonmeter::testing::export::otlp::{self, OtlpHttp};
use carbonmeter::testing::export::prometheus::{self, GROUPING_LABELS, Pushgateway};
use carbonmeter::testing::export::{OtlpSettings, RunLabels, Sample, SeriesKey, Target};
use criterion::{Criterion, criterion_group, criterion_main};

/// A run on a machine with 8 GPUs, three phases seen: 30 energy series.
fn sample() -> Arc<Sample> {
    let mut energy_j = BTreeMap::new();
    let devices: Vec<Option<String>> = (0..8).map(|i| Some(format!("GPU-{i:08x}"))).collect();
    for phase in [None, Some("train"), Some("validation")] {
        for (component, device) in [("cpu", None), ("ram", None)]
            .into_iter()
            .chain(devices.iter().map(|d| ("gpu", d.clone())))
        {
            let key = SeriesKey {
                component,
                device,
                phase: phase.map(str::to_owned),
            };
            energy_j.insert(key, 12_345.678);
        }
    }
    let power_w = devices
        .iter()
        .map(|d| (("gpu", d.clone()), 612.5))
        .chain([(("cpu", None), 180.0), (("ram", None), 20.0)])
        .collect();
    Arc::new(Sample {
        labels: RunLabels {
            project: "llm".to_owned(),
            experiment: "5b0fa12a-3dd7-45bb-9766-cc326314d9f1".to_owned(),
            run_id: "0b4c1c0e-6a3e-4f6e-9d55-3f1a2b3c4d5e".to_owned(),
            rank: Some(3),
            ..RunLabels::default()
        },
        energy_j,
        emissions_g: BTreeMap::from([(None, 1.0), (Some("train".to_owned()), 2.0)]),
        power_w,
        intensity_g_per_kwh: 56.0,
        start_unix_ns: 1_700_000_000_000_000_000,
        time_unix_ns: 1_700_000_060_000_000_000,
        last: false,
        footprint: None,
    })
}

/// Answers every request on 127.0.0.1 with an empty `200 OK`; returns its address.
fn responder() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let address = listener.local_addr().expect("local address").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().expect("clone the stream");
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0_usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err()
                        || writer
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    address
}

fn export(c: &mut Criterion) {
    let samples = [sample()];
    c.bench_function("export_encode_prometheus_text", |b| {
        b.iter(|| black_box(prometheus::encode(black_box(&samples), &GROUPING_LABELS)));
    });
    c.bench_function("export_encode_otlp_protobuf", |b| {
        b.iter(|| black_box(otlp::encode(black_box(&samples))));
    });
    let address = responder();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(2)))
            .build(),
    );
    let mut gateway = Pushgateway::new(agent.clone(), &address);
    c.bench_function("export_push_pushgateway_local", |b| {
        b.iter(|| gateway.send(black_box(&samples)).expect("push"));
    });
    let mut collector = OtlpHttp::new(
        agent,
        OtlpSettings {
            url: format!("http://{address}/v1/metrics"),
            headers: Vec::new(),
        },
    );
    c.bench_function("export_push_otlp_local", |b| {
        b.iter(|| collector.send(black_box(&samples)).expect("push"));
    });
}

criterion_group!(benches, export);
criterion_main!(benches);
