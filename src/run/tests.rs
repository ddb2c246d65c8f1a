//! The tracker's lifecycle across threads (moved out of `mod.rs` to keep it under 800 lines).

use super::*;
use crate::config::{Environment, RawValue};

#[test]
fn of_two_threads_starting_at_once_one_starts_the_run_and_the_other_joins_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kwargs = [
        (
            "output_dir",
            RawValue::Str(dir.path().display().to_string()),
        ),
        ("country_iso_code", RawValue::Str("FRA".to_owned())),
        ("force_cpu_power", RawValue::Str("100".to_owned())),
        ("force_ram_power", RawValue::Str("0".to_owned())),
        ("measure_power_secs", RawValue::Str("3600".to_owned())),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let config = Config::resolve(kwargs, Environment::default()).expect("config");
    let tracker = Arc::new(Tracker::new(config, Identity::default()).expect("tracker"));
    for _ in 0..5 {
        let barrier = Arc::new(std::sync::Barrier::new(2));
        // Each thread starts, then reads the run id it sees: a second run replacing the
        // first would show two ids.
        let starters: Vec<_> = (0..2)
            .map(|_| {
                let (tracker, barrier) = (Arc::clone(&tracker), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    tracker.start().expect("start");
                    tracker.flush().expect("running").run_id
                })
            })
            .collect();
        let ids: Vec<String> = starters
            .into_iter()
            .map(|starter| starter.join().expect("thread"))
            .collect();
        let stopped = tracker.stop_run().expect("one run");
        assert_eq!(ids, vec![stopped.run.run_id.clone(); 2]);
        assert_eq!(tracker.state(), TrackerState::Idle);
        assert!(tracker.stop_run().is_none(), "only one run to stop");
    }
}
