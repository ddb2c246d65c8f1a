//! The background thread that reads the sensors between window edges.
//!
//! Ticks are scheduled by deadline (`start + k * period`), so a slow read delays one tick, not
//! all later ones. Stopping sets a flag and wakes the thread through a condvar: `stop` returns
//! as soon as the current tick (if any) ends, never after a sleep, and gives up on a tick stuck in
//! a blocking read after [`STOP_WAIT`]. The thread holds no Python object, so joining it cannot
//! wait on the GIL.
//! Its waits go through [`crate::locks`], which a `fork()` cannot leave hung.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::locks::{Condvar, Mutex, MutexGuard};

/// Longest `stop` waits for a tick in progress: far above a normal full read (milliseconds), and
/// small beside a training step. A tick stuck in a wedged driver call is left to finish alone.
pub const STOP_WAIT: Duration = Duration::from_millis(500);

struct Shared {
    stopping: Mutex<bool>,
    wake: Condvar,
    finished: Mutex<bool>,
    done: Condvar,
}

/// Waits on `condvar` until `*guard` is true or `deadline` passes; returns the guard.
fn wait_for_true<'a>(
    condvar: &Condvar,
    mut guard: MutexGuard<'a, bool>,
    deadline: Instant,
) -> MutexGuard<'a, bool> {
    while !*guard {
        let timed_out;
        (guard, timed_out) = condvar.wait_until(guard, deadline);
        if timed_out {
            break;
        }
    }
    guard
}

/// Marks the thread finished however it ends, so `stop` knows whether a join would return.
struct FinishOnDrop(Arc<Shared>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        *self.0.finished.lock() = true;
        self.0.done.notify_all();
    }
}

/// A running sampler thread; stops on [`Sampler::stop`] or drop.
pub struct Sampler {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Calls `tick` every `period` on a new thread named `name`. A tick that panics ends the
    /// sampler (logged as an error); the caller's thread never sees the panic.
    pub fn spawn(
        name: &str,
        period: Duration,
        mut tick: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            stopping: Mutex::new(false),
            wake: Condvar::new(),
            finished: Mutex::new(false),
            done: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let period = period.max(Duration::from_millis(1));
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let _finish = FinishOnDrop(Arc::clone(&thread_shared));
                let start = Instant::now();
                let mut ticks: u32 = 0;
                loop {
                    ticks = ticks.saturating_add(1);
                    let mut deadline = start + period * ticks;
                    let now = Instant::now();
                    if deadline < now {
                        // Fell behind (suspend, a very slow read): skip the missed ticks rather
                        // than firing them back to back.
                        let behind = now.duration_since(start).as_nanos() / period.as_nanos();
                        ticks = u32::try_from(behind).unwrap_or(u32::MAX).saturating_add(1);
                        deadline = start + period * ticks;
                    }
                    let stopping =
                        wait_for_true(&thread_shared.wake, thread_shared.stopping.lock(), deadline);
                    if *stopping {
                        return;
                    }
                    drop(stopping);
                    if catch_unwind(AssertUnwindSafe(&mut tick)).is_err() {
                        log::error!("carbonmeter sampler stopped after a panic in a sensor read");
                        return;
                    }
                }
            })?;
        Ok(Self {
            shared,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it, at most [`STOP_WAIT`]; returns at once if it already
    /// stopped. Returns `false` when a tick was still running at the deadline: the thread is then
    /// detached, and ends on its own when the read returns.
    pub fn stop(&mut self) -> bool {
        *self.shared.stopping.lock() = true;
        self.shared.wake.notify_all();
        let Some(handle) = self.handle.take() else {
            return true;
        };
        let deadline = Instant::now() + STOP_WAIT;
        let finished = wait_for_true(&self.shared.done, self.shared.finished.lock(), deadline);
        if !*finished {
            return false;
        }
        drop(finished);
        // The tick catches panics itself, so a join error cannot carry one.
        let _ = handle.join();
        true
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn ticks_on_schedule_and_stops_at_once() {
        let count = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&count);
        let mut sampler = Sampler::spawn("test", Duration::from_millis(10), move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .expect("spawn");
        std::thread::sleep(Duration::from_millis(205));
        let started_stop = Instant::now();
        sampler.stop();
        assert!(started_stop.elapsed() < Duration::from_millis(50));
        let ticks = count.load(Ordering::SeqCst);
        assert!(
            (15..=21).contains(&ticks),
            "{ticks} ticks in 205 ms at 10 ms"
        );
    }

    #[test]
    fn long_period_stop_does_not_wait_for_the_period() {
        let mut sampler = Sampler::spawn("test", Duration::from_hours(1), || {}).expect("spawn");
        let started_stop = Instant::now();
        sampler.stop();
        assert!(started_stop.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn stop_abandons_a_tick_stuck_in_a_blocking_read() {
        let mut sampler = Sampler::spawn("test", Duration::from_millis(1), || {
            std::thread::sleep(Duration::from_secs(3));
        })
        .expect("spawn");
        std::thread::sleep(Duration::from_millis(20));
        let started_stop = Instant::now();
        assert!(!sampler.stop(), "the stuck tick was reported as finished");
        let waited = started_stop.elapsed();
        assert!(
            waited >= STOP_WAIT && waited < STOP_WAIT + Duration::from_millis(400),
            "stop waited {waited:?}"
        );
        assert!(sampler.stop(), "a second stop waits again");
    }

    #[test]
    fn a_panicking_tick_ends_the_thread_quietly() {
        let mut sampler = Sampler::spawn("test", Duration::from_millis(1), || panic!("sensor bug"))
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(20));
        sampler.stop();
    }
}
