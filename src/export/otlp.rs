//! OTLP/HTTP metrics: an `ExportMetricsServiceRequest` in protobuf, POSTed to `/v1/metrics`.
//!
//! The few messages needed are encoded by hand (field numbers from opentelemetry-proto's
//! `metrics/v1/metrics.proto`, `common/v1/common.proto` and `resource/v1/resource.proto`): the
//! SDK would bring an async runtime and gRPC stack into a tracker meant to cost a few MiB, and
//! the tests decode every request with the official Python messages.

use std::sync::Arc;

use super::{Fault, OtlpSettings, Sample, Target, display_url, http_fault};

/// Energy: a cumulative monotonic Sum, unit `J`.
pub const ENERGY: &str = "carbonmeter.energy";
/// Emissions: a cumulative monotonic Sum, unit `g`.
pub const EMISSIONS: &str = "carbonmeter.emissions";
/// Power: a Gauge, unit `W`.
pub const POWER: &str = "carbonmeter.power";
/// Grid intensity: a Gauge, unit `g/kWh`.
pub const INTENSITY: &str = "carbonmeter.intensity";
/// Embodied carbon counter (docs/footprint.md); no point while a device has no figure.
pub const EMBODIED: &str = "carbonmeter.embodied";
/// Water counter, by `term` (`offsite`, and `onsite` where a WUE is known).
pub const WATER: &str = "carbonmeter.water";

const AGGREGATION_TEMPORALITY_CUMULATIVE: u64 = 2;

/// A protobuf message being written.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn tag(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    fn uint(&mut self, field: u32, value: u64) {
        self.tag(field, 0);
        self.varint(value);
    }

    fn fixed64(&mut self, field: u32, value: u64) {
        self.tag(field, 1);
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn double(&mut self, field: u32, value: f64) {
        self.fixed64(field, value.to_bits());
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.tag(field, 2);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn string(&mut self, field: u32, text: &str) {
        self.bytes(field, text.as_bytes());
    }

    fn message(&mut self, field: u32, build: impl FnOnce(&mut Message)) {
        let mut inner = Message::default();
        build(&mut inner);
        self.bytes(field, &inner.0);
    }

    /// A `KeyValue` with a string `AnyValue`.
    fn attribute(&mut self, field: u32, key: &str, value: &str) {
        self.message(field, |kv| {
            kv.string(1, key);
            kv.message(2, |any| any.string(1, value));
        });
    }
}

/// One point of a metric: its own attributes besides the run's, and its value.
struct Point {
    attributes: Vec<(&'static str, String)>,
    value: f64,
}

fn points(sample: &Sample, metric: &str) -> Vec<Point> {
    match metric {
        ENERGY => sample
            .energy_j
            .iter()
            .map(|(key, energy_j)| {
                let mut attributes = vec![("component", key.component.to_owned())];
                if let Some(device) = &key.device {
                    attributes.push(("device", device.clone()));
                }
                if let Some(phase) = &key.phase {
                    attributes.push(("phase", phase.clone()));
                }
                Point {
                    attributes,
                    value: *energy_j,
                }
            })
            .collect(),
        EMISSIONS => sample
            .emissions_g
            .iter()
            .map(|(phase, emissions_g)| Point {
                attributes: phase.iter().map(|p| ("phase", p.clone())).collect(),
                value: *emissions_g,
            })
            .collect(),
        POWER => sample
            .power_w
            .iter()
            .map(|((component, device), power_w)| {
                let mut attributes = vec![("component", (*component).to_owned())];
                if let Some(device) = device {
                    attributes.push(("device", device.clone()));
                }
                Point {
                    attributes,
                    value: *power_w,
                }
            })
            .collect(),
        EMBODIED => sample
            .footprint
            .and_then(|f| f.embodied_g)
            .map(|grams| Point {
                attributes: Vec::new(),
                value: grams,
            })
            .into_iter()
            .collect(),
        WATER => sample
            .footprint
            .map(|f| f.water_terms())
            .unwrap_or_default()
            .into_iter()
            .map(|(term, litres)| Point {
                attributes: vec![("term", term.to_owned())],
                value: litres,
            })
            .collect(),
        _ => vec![Point {
            attributes: Vec::new(),
            value: sample.intensity_g_per_kwh,
        }],
    }
}

/// The request body for `samples` (one per run).
pub fn encode(samples: &[Arc<Sample>]) -> Vec<u8> {
    const METRICS: [(&str, &str, &str, bool); 6] = [
        (
            ENERGY,
            "J",
            "Energy used since the run started (PUE applied, as in the CSV).",
            true,
        ),
        (
            EMISSIONS,
            "g",
            "Emissions since the run started, CO2eq.",
            true,
        ),
        (
            POWER,
            "W",
            "Mean power since the previous sample (PUE applied).",
            false,
        ),
        (
            INTENSITY,
            "g/kWh",
            "Grid carbon intensity in use, CO2eq.",
            false,
        ),
        (
            EMBODIED,
            "g",
            "Embodied carbon of the hardware charged since the run started, CO2eq.",
            true,
        ),
        (
            WATER,
            "L",
            "Water since the run started: off-site (electricity) and on-site (cooling).",
            true,
        ),
    ];
    let mut request = Message::default();
    request.message(1, |resource_metrics| {
        resource_metrics.message(1, |resource| {
            resource.attribute(1, "service.name", "carbonmeter");
        });
        resource_metrics.message(2, |scope_metrics| {
            scope_metrics.message(1, |scope| {
                scope.string(1, "carbonmeter");
                // Cargo.toml's version, as `run::VERSION` (not imported: run uses us).
                scope.string(2, env!("CARGO_PKG_VERSION"));
            });
            for (name, unit, description, is_sum) in METRICS {
                scope_metrics.message(2, |metric| {
                    metric.string(1, name);
                    metric.string(2, description);
                    metric.string(3, unit);
                    let data = |data: &mut Message| {
                        for sample in samples {
                            let run = sample.labels.pairs();
                            for point in points(sample, name) {
                                data.message(1, |number| {
                                    number.fixed64(2, sample.start_unix_ns);
                                    number.fixed64(3, sample.time_unix_ns);
                                    number.double(4, point.value);
                                    for (key, value) in run.iter().chain(&point.attributes) {
                                        number.attribute(7, key, value);
                                    }
                                });
                            }
                        }
                        if is_sum {
                            data.uint(2, AGGREGATION_TEMPORALITY_CUMULATIVE);
                            data.uint(3, 1);
                        }
                    };
                    // Metric.sum is field 7, Metric.gauge field 5.
                    metric.message(if is_sum { 7 } else { 5 }, data);
                });
            }
        });
    });
    request.0
}

/// POSTs every pending run in one request.
pub struct OtlpHttp {
    agent: ureq::Agent,
    settings: OtlpSettings,
}

impl OtlpHttp {
    /// A sender to `settings.url`.
    pub fn new(agent: ureq::Agent, settings: OtlpSettings) -> Self {
        Self { agent, settings }
    }
}

impl Target for OtlpHttp {
    fn describe(&self) -> String {
        format!("OTLP endpoint {}", display_url(&self.settings.url))
    }

    fn send(&mut self, samples: &[Arc<Sample>]) -> Result<(), Fault> {
        let mut request = self
            .agent
            .post(&self.settings.url)
            .header("Content-Type", "application/x-protobuf");
        for (name, value) in &self.settings.headers {
            request = request.header(name.as_str(), value.expose());
        }
        http_fault(
            request
                .send(&encode(samples)[..])
                .map(|response| response.status().as_u16()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_doubles_are_little_endian_protobuf() {
        let mut message = Message::default();
        message.uint(1, 300);
        assert_eq!(message.0, [0x08, 0xac, 0x02]);
        let mut message = Message::default();
        message.double(4, 1.0);
        assert_eq!(message.0[0], 0x21);
        assert_eq!(&message.0[1..], &1.0_f64.to_le_bytes());
    }
}
