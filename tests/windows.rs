//! Windows over one run: exact at their edges, nesting and overlapping freely, adding up.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use carbonmeter::testing::config::{Config, Environment, RawValue};
use carbonmeter::testing::run::{Identity, Tracker, WindowLabels};
use proptest::prelude::*;

const RANGE_UJ: u64 = 262_143_328_850;

fn write_counter(root: &Path, energy_uj: u64) {
    let zone = root.join("intel-rapl:0");
    let temporary = zone.join(".energy_uj.tmp");
    fs::write(&temporary, energy_uj.to_string()).expect("write");
    fs::rename(temporary, zone.join("energy_uj")).expect("rename");
}

fn tracker_on_fake_tree(root: &Path, output: Option<&Path>) -> Tracker {
    let zone = root.join("intel-rapl:0");
    fs::create_dir_all(&zone).expect("zone");
    fs::write(zone.join("name"), "package-0").expect("name");
    fs::write(zone.join("max_energy_range_uj"), RANGE_UJ.to_string()).expect("range");
    write_counter(root, RANGE_UJ - 1_000);
    let mut kwargs: BTreeMap<String, RawValue> = [
        ("powercap_root", root.display().to_string()),
        ("country_iso_code", "SWE".to_owned()),
        // Slow sampler: the edges alone must make windows exact.
        ("measure_power_secs", "3600".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), RawValue::Str(v)))
    .collect();
    match output {
        Some(dir) => kwargs.insert(
            "output_dir".into(),
            RawValue::Str(dir.display().to_string()),
        ),
        None => kwargs.insert("save_to_file".into(), RawValue::Bool(false)),
    };
    let config = Config::resolve(kwargs, Environment::default()).expect("config");
    Tracker::new(config, Identity::default()).expect("tracker")
}

fn uj(energy_kwh: f64) -> u64 {
    (energy_kwh * 3.6e12).round() as u64
}

#[derive(Debug, Clone)]
enum Step {
    Advance(u64),
    Open(usize),
    Close(usize),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            (1u64..50_000_000).prop_map(Step::Advance),
            (0usize..4).prop_map(Step::Open),
            (0usize..4).prop_map(Step::Close),
        ],
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn nested_and_overlapping_windows_are_exact(steps in steps()) {
        let root = tempfile::tempdir().expect("tempdir");
        let tracker = tracker_on_fake_tree(root.path(), None);
        tracker.start().expect("start");
        let mut counter_uj = RANGE_UJ - 1_000;
        let mut run_uj = 0;
        let mut open: BTreeMap<usize, u64> = BTreeMap::new();
        for step in steps {
            match step {
                Step::Advance(delta_uj) => {
                    counter_uj = (counter_uj + delta_uj) % RANGE_UJ;
                    write_counter(root.path(), counter_uj);
                    run_uj += delta_uj;
                    for energy_uj in open.values_mut() {
                        *energy_uj += delta_uj;
                    }
                }
                Step::Open(slot) => {
                    let opened = tracker.start_window(&format!("w{slot}"), WindowLabels::default());
                    prop_assert_eq!(opened.is_ok(), !open.contains_key(&slot));
                    open.entry(slot).or_insert(0);
                }
                Step::Close(slot) => {
                    let closed = tracker.end_window(&format!("w{slot}"));
                    match open.remove(&slot) {
                        Some(expected_uj) => {
                            let row = closed.expect("open window closes");
                            prop_assert_eq!(uj(row.cpu_energy), expected_uj);
                            prop_assert_eq!(row.window, Some(format!("w{slot}")));
                        }
                        None => prop_assert!(closed.is_err()),
                    }
                }
            }
        }
        let row = tracker.stop().expect("run row");
        prop_assert_eq!(uj(row.cpu_energy), run_uj);
        prop_assert!(tracker.open_windows().is_empty());
    }
}

#[test]
fn epochs_covering_the_run_sum_to_it_and_never_exceed_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let output = tempfile::tempdir().expect("tempdir");
    let tracker = tracker_on_fake_tree(root.path(), Some(output.path()));
    let mut counter_uj = RANGE_UJ - 1_000;
    let mut advance = |delta_uj: u64| {
        counter_uj = (counter_uj + delta_uj) % RANGE_UJ;
        write_counter(root.path(), counter_uj);
    };
    // start_epoch starts the run itself; energy before the first epoch is the run's only.
    let mut epoch_uj = 0;
    for (epoch, delta_uj) in [(0_u32, 1_000_000_u64), (1, 2_500_000), (2, 4_000_000)] {
        let name = tracker.start_epoch(None, "train").expect("epoch");
        assert_eq!(name, format!("train-epoch-{epoch}"));
        advance(delta_uj);
        let row = tracker.end_window(&name).expect("end");
        assert_eq!(row.epoch, Some(epoch));
        assert_eq!(row.phase.as_deref(), Some("train"));
        assert_eq!(uj(row.cpu_energy), delta_uj);
        epoch_uj += delta_uj;
        advance(10); // between epochs: the run's, no epoch's
    }
    let run = tracker.stop().expect("run");
    assert_eq!(uj(run.cpu_energy), epoch_uj + 30);
    assert!(run.window.is_none());

    let text = fs::read_to_string(output.path().join("emissions.csv")).expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("headers").clone();
    let window_column = headers
        .iter()
        .position(|h| h == "window")
        .expect("window column");
    let windows: Vec<String> = reader
        .records()
        .map(|r| r.expect("record")[window_column].to_owned())
        .collect();
    assert_eq!(
        windows,
        ["train-epoch-0", "train-epoch-1", "train-epoch-2", ""]
    );
}

#[test]
fn stop_writes_the_partial_epoch_before_the_run() {
    let root = tempfile::tempdir().expect("tempdir");
    let tracker = tracker_on_fake_tree(root.path(), None);
    tracker.start_epoch(Some(7), "validation").expect("epoch");
    write_counter(root.path(), 5_000);
    let run = tracker.stop().expect("run");
    assert_eq!(uj(run.cpu_energy), 6_000);
    assert!(tracker.open_windows().is_empty());
    assert!(tracker.end_window("validation-epoch-7").is_err());
}
