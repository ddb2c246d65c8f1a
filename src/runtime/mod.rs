//! What every thread of the process shares: process-wide locks a `fork()` cannot leave held,
//! the background threads, the at-fork handler and warnings said once per cause.
//!
//! Every process-wide lock is a [`ProcessLock`] declared where its state lives; it registers
//! itself with the at-fork handler on first use, with what a forked child does with its value
//! (a background thread's handle, in [`ProcessLock::thread`], is forgotten: the child has no
//! copy of the thread, and its first use spawns its own). Every background thread starts
//! through [`spawn`]. This module depends on no other of the crate, so any may use it.

pub(crate) mod claims;
pub(crate) mod fork;
pub(crate) mod locks;
pub(crate) mod once;

pub(crate) use fork::ProcessLock;
pub(crate) use once::{Causes, warn_once, warn_once_for};

/// Starts the background thread `carbonmeter-{name}` running `body`, detached: its owner stops
/// it through their shared state, and a thread of the process is found by its name.
pub(crate) fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("carbonmeter-{name}"))
        .spawn(body)
        .map(drop)
}
