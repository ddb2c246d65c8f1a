//! What happens to running trackers when the process exits, where there are no Unix signals
//! to watch and no `fork()` (Windows, and the `carbonmeter_portable` build that checks this
//! path on Linux): the same API as `lifecycle.rs`, without the signal handlers.
//!
//! **Interpreter exit**: [`stop_all`] is what the package's `atexit` hook calls, so a run still
//! going when the interpreter exits writes its rows. A process ended without unwinding (Windows'
//! `TerminateProcess`, a console closed) loses the rows of the interval in progress; each
//! interval's row was appended and flushed when it closed.

use std::sync::{Arc, Weak};

use crate::runtime::ProcessLock;

/// What the interpreter's exit does to a tracker; implemented by the tracker, so this module
/// depends on nothing that depends on it.
pub(crate) trait Managed: Send + Sync {
    /// Writes the rows of a running run and ends it; nothing when idle.
    fn stop_running(&self);
    /// In a forked child: drops a copied run (never called where there is no fork).
    fn forget_after_fork(&self);
}

/// Trackers to stop at exit.
static TRACKERS: ProcessLock<Vec<Weak<dyn Managed>>> = ProcessLock::new(Vec::new());

/// A run's hold from its start until its last row is written: nothing to give back here.
#[must_use = "the hold lasts as long as the run"]
pub(crate) struct Running(());

/// Keeps `tracker` where the interpreter's exit can find it.
pub(crate) fn register(tracker: &Arc<dyn Managed>) {
    let mut trackers = TRACKERS.lock();
    trackers.retain(|weak| weak.strong_count() > 0);
    trackers.push(Arc::downgrade(tracker));
}

/// A run started: no signal handler to arm.
pub(crate) fn run_started() -> Running {
    Running(())
}

/// No signal handler to put back.
pub(crate) fn rearm() {}

/// Stops every running tracker, writing its rows: what the package's `atexit` hook calls.
pub(crate) fn stop_all() {
    let trackers: Vec<Arc<dyn Managed>> =
        TRACKERS.lock().iter().filter_map(Weak::upgrade).collect();
    for tracker in trackers {
        tracker.stop_running();
    }
}
