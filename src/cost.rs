//! What carbonmeter itself costs: CPU time of its own threads, read from per-thread CPU clocks
//! (`CLOCK_THREAD_CPUTIME_ID`), and the time its calls hold the user's thread, never estimated.
//!
//! The sampler and edge threads serve every run of the process, so each charges a run the CPU
//! time of the work it did for that run (its clock before and after). What they and the signal
//! watcher spend for no run in particular (starting, waking, sleeping again, the watcher's
//! checks) is published to one process-wide total ([`ThreadAccount`]) that every run in progress
//! is charged from its start on: the threads' whole CPU time is in the rows, once per run.
//!
//! `start()`, `flush()` and `stop()` charge their thread's CPU clock: a call preempted on a
//! loaded machine is not charged another process's time. A window edge, the hot path, charges
//! the time it held the user's thread by the monotonic clock, read in user space, where a
//! thread's CPU clock is a system call (`benches/warm.py` times both): at least its CPU time.
//! A row's `tracker_cpu_seconds` is the total at its end minus the total at its start.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// CPU time the calling thread has used, ns; `None` where the clock cannot be read.
pub fn thread_cpu_ns() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec for the duration of the call, and
        // CLOCK_THREAD_CPUTIME_ID is a clock every POSIX thread has.
        let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut now) };
        if status != 0 {
            return None;
        }
        let secs = u64::try_from(now.tv_sec).ok()?;
        let nanos = u64::try_from(now.tv_nsec).ok()?;
        Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Stores the calling thread's CPU clock in `clock`, for a [`CostMeter`] that watches it.
pub fn publish_thread_clock(clock: &AtomicU64) {
    if let Some(ns) = thread_cpu_ns() {
        clock.fetch_max(ns, Ordering::Relaxed);
    }
}

/// CPU time the process's sampler, edge and signal-watcher threads spent outside the work they
/// charged to a run, ns: see [`ThreadAccount`].
static UNCHARGED_NS: AtomicU64 = AtomicU64::new(0);

/// One background thread's account of the CPU it spent for no run in particular: created when
/// the thread starts (its CPU clock starts at zero), told what it charged to runs, and
/// published before each sleep, so its start-up and every wake-up end in the rows too.
#[derive(Debug, Default)]
pub struct ThreadAccount {
    published_ns: u64,
    charged_ns: u64,
}

impl ThreadAccount {
    /// Notes work since `since_ns` that this thread charged to a run itself.
    pub fn charged_since(&mut self, since_ns: Option<u64>) -> Option<u64> {
        let now = thread_cpu_ns();
        if let (Some(since), Some(now)) = (since_ns, now) {
            self.charged_ns = self.charged_ns.saturating_add(now.saturating_sub(since));
        }
        now
    }

    /// Adds what the thread spent since the last publication, less what it charged to runs, to
    /// the process's uncharged total: called before the thread sleeps.
    pub fn publish(&mut self) {
        let Some(now) = thread_cpu_ns() else {
            return;
        };
        let spent = now
            .saturating_sub(self.published_ns)
            .saturating_sub(self.charged_ns);
        UNCHARGED_NS.fetch_add(spent, Ordering::Relaxed);
        self.published_ns = now;
        self.charged_ns = 0;
    }
}

/// The running CPU-time totals of one run.
#[derive(Debug)]
pub struct CostMeter {
    /// CPU time the process's sampler and edge threads spent on this run, ns.
    threads_ns: AtomicU64,
    /// Sum of the finished parts of calls on the user's thread, ns.
    calls_ns: AtomicU64,
    /// A longer-lived thread of ours (the exporter) and its clock when the run began, ns.
    shared_thread: Option<(Arc<AtomicU64>, u64)>,
    /// [`UNCHARGED_NS`] when the run began.
    uncharged_baseline_ns: u64,
}

impl Default for CostMeter {
    /// A meter that counts from now on, the background threads' uncharged CPU included.
    fn default() -> Self {
        Self {
            threads_ns: AtomicU64::new(0),
            calls_ns: AtomicU64::new(0),
            shared_thread: None,
            uncharged_baseline_ns: UNCHARGED_NS.load(Ordering::Relaxed),
        }
    }
}

impl CostMeter {
    /// A meter that also counts what the thread publishing `clock` spends from now on.
    pub fn with_thread(clock: Arc<AtomicU64>) -> Self {
        let baseline_ns = clock.load(Ordering::Relaxed);
        Self {
            shared_thread: Some((clock, baseline_ns)),
            ..Self::default()
        }
    }

    /// Called on a thread of ours after work for this run that began when the thread's clock
    /// read `since_ns`: charges the CPU time spent since.
    pub fn charge_thread_since(&self, since_ns: Option<u64>) {
        if let (Some(since), Some(now)) = (since_ns, thread_cpu_ns()) {
            self.threads_ns
                .fetch_add(now.saturating_sub(since), Ordering::Relaxed);
        }
    }

    /// All CPU time charged so far, s.
    pub fn total_s(&self) -> f64 {
        let shared_ns = self
            .shared_thread
            .as_ref()
            .map_or(0, |(clock, baseline_ns)| {
                clock.load(Ordering::Relaxed).saturating_sub(*baseline_ns)
            });
        let uncharged_ns = UNCHARGED_NS
            .load(Ordering::Relaxed)
            .saturating_sub(self.uncharged_baseline_ns);
        let ns = self
            .threads_ns
            .load(Ordering::Relaxed)
            .saturating_add(self.calls_ns.load(Ordering::Relaxed))
            .saturating_add(shared_ns)
            .saturating_add(uncharged_ns);
        ns as f64 / 1e9
    }

    /// Starts charging the time the current call takes to `meter`, by the monotonic clock,
    /// until the guard drops: for window edges, where a CPU clock read would be a system call.
    pub fn call(meter: &Arc<Self>) -> CallCost {
        CallCost {
            meter: Arc::clone(meter),
            since: Since::Wall(Instant::now()),
            finished: false,
        }
    }

    /// [`CostMeter::call`] by the calling thread's CPU clock (two system calls): for `start()`,
    /// `flush()` and `stop()`, which a loaded machine may preempt for milliseconds.
    pub fn cpu_call(meter: &Arc<Self>) -> CallCost {
        let since = thread_cpu_ns().map_or_else(|| Since::Wall(Instant::now()), Since::Cpu);
        CallCost {
            meter: Arc::clone(meter),
            since,
            finished: false,
        }
    }
}

/// Where a call's charge counts from.
#[derive(Debug, Clone, Copy)]
enum Since {
    Wall(Instant),
    /// The thread's CPU clock, ns.
    Cpu(u64),
}

/// A call on the user's thread, charged to its [`CostMeter`] by [`CallCost::charge`] and on drop.
#[derive(Debug)]
pub struct CallCost {
    meter: Arc<CostMeter>,
    since: Since,
    /// Charged for the last time by [`CallCost::finish`]: nothing more on drop.
    finished: bool,
}

impl CallCost {
    /// Charges the call for the last time: where the charge ends the call (`start()`), or no
    /// row will read the total again (`stop()`, once its last row's total is read). Saves the
    /// drop's clock read, a system call on the CPU clock.
    pub fn finish(mut self) {
        self.charge();
        self.finished = true;
    }

    /// Charges the time spent since the last charge, so a total read now includes it.
    pub fn charge(&mut self) {
        let spent_ns = match self.since {
            Since::Wall(since) => {
                let now = Instant::now();
                self.since = Since::Wall(now);
                u64::try_from(now.duration_since(since).as_nanos()).unwrap_or(u64::MAX)
            }
            Since::Cpu(since) => {
                let now = thread_cpu_ns().unwrap_or(since);
                self.since = Since::Cpu(now);
                now.saturating_sub(since)
            }
        };
        self.meter.calls_ns.fetch_add(spent_ns, Ordering::Relaxed);
    }
}

impl Drop for CallCost {
    fn drop(&mut self) {
        if !self.finished {
            self.charge();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Busy work until this thread has used `ms` of CPU (wall time varies on a loaded machine).
    fn spin(ms: u64) -> u64 {
        let start = thread_cpu_ns().expect("clock");
        let mut x: u64 = 1;
        while thread_cpu_ns().expect("clock") - start < ms * 1_000_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        x
    }

    #[test]
    fn the_thread_clock_counts_work_and_not_sleep() {
        let before = thread_cpu_ns().expect("clock");
        std::thread::sleep(std::time::Duration::from_millis(30));
        let slept = thread_cpu_ns().expect("clock") - before;
        std::hint::black_box(spin(30));
        let worked = thread_cpu_ns().expect("clock") - before - slept;
        assert!(slept < 10_000_000, "{slept} ns while asleep");
        assert!(worked > 10_000_000, "{worked} ns while spinning 30 ms");
    }

    #[test]
    fn calls_are_charged_when_asked_and_on_drop() {
        let meter = Arc::new(CostMeter::default());
        {
            let mut call = CostMeter::call(&meter);
            std::hint::black_box(spin(20));
            call.charge();
            let charged = meter.total_s();
            assert!(charged > 0.005, "{charged}");
            std::hint::black_box(spin(20));
        }
        assert!(meter.total_s() > 0.02, "{}", meter.total_s());
        let other = std::thread::spawn({
            let meter = Arc::new(CostMeter::default());
            move || {
                std::hint::black_box(spin(5));
                let since = thread_cpu_ns();
                std::hint::black_box(spin(20));
                meter.charge_thread_since(since);
                meter.total_s()
            }
        })
        .join()
        .expect("thread");
        assert!((0.015..0.024).contains(&other), "{other}");
    }

    #[test]
    fn a_shared_thread_counts_from_the_run_on() {
        let clock = Arc::new(AtomicU64::new(0));
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (published, first) = std::sync::mpsc::channel::<()>();
        let thread_clock = Arc::clone(&clock);
        // One long-lived thread, as the exporter: 10 ms before the run, 30 ms during it.
        let worker = std::thread::spawn(move || {
            std::hint::black_box(spin(10));
            publish_thread_clock(&thread_clock);
            published.send(()).expect("send");
            wait.recv().expect("recv");
            std::hint::black_box(spin(30));
            publish_thread_clock(&thread_clock);
        });
        first.recv().expect("recv");
        let meter = CostMeter::with_thread(Arc::clone(&clock));
        assert!(meter.total_s() < 1e-9, "{}", meter.total_s());
        go.send(()).expect("send");
        worker.join().expect("join");
        let counted = meter.total_s();
        assert!((0.025..0.035).contains(&counted), "{counted}");
    }
}
