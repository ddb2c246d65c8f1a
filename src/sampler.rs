//! The one background thread that reads the sensors of every running run between window edges.
//!
//! Each run registers its tick with its own period; the thread sleeps to the earliest deadline
//! and runs the ticks that are due, one after another. Ticks are scheduled by deadline
//! (`start + k * period` per run), so a slow read delays one tick, not all later ones. The thread
//! is spawned by the first registration of the process and serves every later run, so a run's
//! `start()` spawns no thread; with nothing registered it sleeps without a timeout.
//!
//! Unregistering a run removes its tick at once, or, while that tick is in progress, waits for
//! it at most [`STOP_WAIT`] and leaves it to be dropped when it returns. One thread serving every
//! run means a tick stuck in a blocking read (a wedged driver call) holds up the ticks of the
//! other runs of this process until it returns: their edges and stops are still read at once on
//! the edge thread, but their polled GPU power gets no samples meanwhile.
//!
//! The thread holds no Python object, so waiting for it cannot wait on the GIL. Its waits go
//! through [`crate::locks`], which a `fork()` cannot leave hung; a forked child, which has no
//! copy of the thread, forgets it ([`reset_after_fork`]) and spawns its own on first use.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::locks::{Condvar, Mutex, MutexGuard};

/// Longest `stop` waits for a tick in progress: far above a normal full read (milliseconds), and
/// small beside a training step. A tick stuck in a wedged driver call is left to finish alone.
pub const STOP_WAIT: Duration = Duration::from_millis(500);

/// Far enough ahead to mean "not before something changes": a deadline past `Instant`'s range.
const FAR_AHEAD: Duration = Duration::from_hours(365 * 24);

type Tick = Box<dyn FnMut() + Send>;

struct Entry {
    id: u64,
    period: Duration,
    start: Instant,
    ticks: u32,
    deadline: Instant,
    tick: Tick,
}

/// `start + period * ticks`, or far ahead where that leaves `Instant`'s range.
fn deadline_at(start: Instant, period: Duration, ticks: u32) -> Instant {
    period
        .checked_mul(ticks)
        .and_then(|offset| start.checked_add(offset))
        .unwrap_or_else(|| start + FAR_AHEAD)
}

impl Entry {
    /// Moves the deadline to the next tick after `now`: after a suspend or a very slow read the
    /// missed ticks are skipped rather than fired back to back.
    fn schedule_after(&mut self, now: Instant) {
        self.ticks = self.ticks.saturating_add(1);
        self.deadline = deadline_at(self.start, self.period, self.ticks);
        if self.deadline < now {
            let behind = now.duration_since(self.start).as_nanos() / self.period.as_nanos();
            self.ticks = u32::try_from(behind).unwrap_or(u32::MAX).saturating_add(1);
            self.deadline = deadline_at(self.start, self.period, self.ticks);
        }
    }
}

#[derive(Default)]
struct State {
    /// Registered ticks not running now.
    waiting: Vec<Entry>,
    /// The id of the tick in progress (its entry is on the thread meanwhile).
    running: Option<u64>,
    /// The tick in progress was unregistered: dropped when it returns.
    cancelled: Option<u64>,
    /// Where the thread sleeps to when it waits with a timeout: a registration with a later
    /// deadline need not wake it.
    sleeping_until: Option<Instant>,
    /// The thread ended (a panic outside any tick): the next registration starts another.
    ended: bool,
    next_id: u64,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the thread: a registration with an earlier deadline.
    wake: Condvar,
    /// A tick ended.
    done: Condvar,
}

/// The process's sampler thread, spawned on first use; `None` again in a forked child.
static SAMPLER: parking_lot::Mutex<Option<Arc<Shared>>> = parking_lot::Mutex::new(None);

/// In a forked child: forgets the parent's thread (not copied) and its registrations (the
/// parent's runs, forgotten too), without touching locks a vanished thread may hold.
pub(crate) fn reset_after_fork() {
    crate::locks::force_release(&SAMPLER);
    if let Some(parent) = SAMPLER.lock().take() {
        std::mem::forget(parent);
    }
}

/// Marks the thread ended however it ends, so the next registration starts a new one.
struct EndOnDrop(Arc<Shared>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.0.state.lock().ended = true;
        self.0.done.notify_all();
    }
}

fn serve(shared: &Shared) {
    let mut state = shared.state.lock();
    loop {
        let now = Instant::now();
        let earliest = state
            .waiting
            .iter()
            .enumerate()
            .min_by_key(|(_, entry)| entry.deadline)
            .map(|(index, entry)| (index, entry.deadline));
        let Some((index, deadline)) = earliest else {
            state.sleeping_until = None;
            state = shared.wake.wait(state);
            continue;
        };
        if deadline > now {
            state.sleeping_until = Some(deadline);
            (state, _) = shared.wake.wait_until(state, deadline);
            state.sleeping_until = None;
            continue;
        }
        let mut entry = state.waiting.swap_remove(index);
        state.running = Some(entry.id);
        drop(state);
        let panicked = catch_unwind(AssertUnwindSafe(&mut entry.tick)).is_err();
        if panicked {
            log::error!("carbonmeter sampler stopped a run's ticks after a panic in a sensor read");
        }
        state = shared.state.lock();
        state.running = None;
        let cancelled = state.cancelled.take() == Some(entry.id);
        shared.done.notify_all();
        if panicked || cancelled {
            // Dropped unlocked: the tick may hold the last reference to a run's sensors.
            drop(state);
            drop(entry);
            state = shared.state.lock();
        } else {
            entry.schedule_after(Instant::now());
            state.waiting.push(entry);
        }
    }
}

/// The process's sampler thread, spawned now if there is none.
fn process_sampler() -> std::io::Result<Arc<Shared>> {
    let mut process = SAMPLER.lock();
    if let Some(shared) = process.as_ref()
        && !shared.state.lock().ended
    {
        return Ok(Arc::clone(shared));
    }
    let shared = spawn_thread()?;
    *process = Some(Arc::clone(&shared));
    Ok(shared)
}

/// A new sampler thread, with nothing registered.
fn spawn_thread() -> std::io::Result<Arc<Shared>> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
        done: Condvar::new(),
    });
    let thread_shared = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("carbonmeter-sampler".to_owned())
        .spawn(move || {
            let ended = EndOnDrop(thread_shared);
            serve(&ended.0);
        })?;
    Ok(shared)
}

/// A run's tick on the process's sampler thread; unregistered on [`Sampler::stop`] or drop.
pub struct Sampler {
    shared: Arc<Shared>,
    id: Option<u64>,
}

impl Sampler {
    /// Calls `tick` every `period` on the sampler thread (spawned by the first registration of
    /// the process). A tick that panics ends this run's ticks (logged as an error); the caller's
    /// thread and the other runs never see the panic.
    pub fn register(
        period: Duration,
        tick: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Self> {
        Ok(Self::register_on(process_sampler()?, period, tick))
    }

    fn register_on(
        shared: Arc<Shared>,
        period: Duration,
        tick: impl FnMut() + Send + 'static,
    ) -> Self {
        let period = period.max(Duration::from_millis(1));
        let start = Instant::now();
        let deadline = deadline_at(start, period, 1);
        let mut state = shared.state.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.waiting.push(Entry {
            id,
            period,
            start,
            ticks: 1,
            deadline,
            tick: Box::new(tick),
        });
        // Asleep to a later deadline, or without one: it must look again. Running a tick, it
        // looks when the tick ends.
        let wake = state.running.is_none() && state.sleeping_until.is_none_or(|t| deadline < t);
        drop(state);
        if wake {
            shared.wake.notify_all();
        }
        Self {
            shared,
            id: Some(id),
        }
    }

    /// Unregisters the tick, waiting at most [`STOP_WAIT`] if it is in progress; returns at
    /// once when it is not, or was already unregistered. Returns `false` when the tick was still
    /// running at the deadline: it is then dropped when its read returns.
    pub fn stop(&mut self) -> bool {
        let Some(id) = self.id.take() else {
            return true;
        };
        let mut state = self.shared.state.lock();
        if let Some(index) = state.waiting.iter().position(|entry| entry.id == id) {
            let entry = state.waiting.swap_remove(index);
            drop(state);
            drop(entry);
            return true;
        }
        if state.running != Some(id) {
            // It panicked, and is gone already.
            return true;
        }
        state.cancelled = Some(id);
        let deadline = Instant::now() + STOP_WAIT;
        state = wait_while_running(&self.shared.done, state, id, deadline);
        state.running != Some(id)
    }
}

/// Waits on `done` until tick `id` is no longer running or `deadline` passes.
fn wait_while_running<'a>(
    done: &Condvar,
    mut state: MutexGuard<'a, State>,
    id: u64,
    deadline: Instant,
) -> MutexGuard<'a, State> {
    while state.running == Some(id) && !state.ended {
        let timed_out;
        (state, timed_out) = done.wait_until(state, deadline);
        if timed_out {
            break;
        }
    }
    state
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

    /// A thread of the test's own: a tick another test leaves stuck would skew its counts.
    fn private() -> Arc<Shared> {
        spawn_thread().expect("spawn")
    }

    fn counting(shared: &Arc<Shared>, period: Duration) -> (Sampler, Arc<AtomicU32>) {
        let count = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&count);
        let sampler = Sampler::register_on(Arc::clone(shared), period, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        (sampler, count)
    }

    #[test]
    fn ticks_on_schedule_and_stops_at_once() {
        let (mut sampler, count) = counting(&private(), Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(205));
        let started_stop = Instant::now();
        assert!(sampler.stop());
        assert!(started_stop.elapsed() < Duration::from_millis(50));
        let ticks = count.load(Ordering::SeqCst);
        assert!(
            (15..=21).contains(&ticks),
            "{ticks} ticks in 205 ms at 10 ms"
        );
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(count.load(Ordering::SeqCst), ticks, "ticked after stop");
    }

    #[test]
    fn runs_share_one_thread_each_at_its_own_period() {
        let thread_of = |ids: &Arc<parking_lot::Mutex<Vec<std::thread::ThreadId>>>| {
            let ids = Arc::clone(ids);
            move || ids.lock().push(std::thread::current().id())
        };
        let fast_ids = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let slow_ids = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut fast =
            Sampler::register(Duration::from_millis(10), thread_of(&fast_ids)).expect("fast");
        let mut slow =
            Sampler::register(Duration::from_millis(50), thread_of(&slow_ids)).expect("slow");
        std::thread::sleep(Duration::from_millis(260));
        assert!(fast.stop() && slow.stop());
        let (fast_ids, slow_ids) = (fast_ids.lock(), slow_ids.lock());
        assert!(
            (18..=27).contains(&fast_ids.len()),
            "{} fast",
            fast_ids.len()
        );
        assert!((4..=6).contains(&slow_ids.len()), "{} slow", slow_ids.len());
        let first = fast_ids[0];
        assert!(
            fast_ids
                .iter()
                .chain(slow_ids.iter())
                .all(|id| *id == first)
        );
        assert_ne!(first, std::thread::current().id());
    }

    #[test]
    fn long_period_stop_does_not_wait_for_the_period() {
        let (mut sampler, _) = counting(&private(), Duration::from_hours(1));
        let started_stop = Instant::now();
        assert!(sampler.stop());
        assert!(started_stop.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn an_earlier_deadline_wakes_a_thread_asleep_to_a_later_one() {
        let shared = private();
        let (mut slow, _) = counting(&shared, Duration::from_hours(1));
        // Lets the thread fall asleep to the hour before the fast run registers.
        std::thread::sleep(Duration::from_millis(20));
        let (mut fast, count) = counting(&shared, Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(100));
        assert!(fast.stop() && slow.stop());
        assert!(count.load(Ordering::SeqCst) >= 5);
    }

    #[test]
    fn stop_abandons_a_tick_stuck_in_a_blocking_read() {
        let mut sampler = Sampler::register_on(private(), Duration::from_millis(1), || {
            std::thread::sleep(Duration::from_secs(3));
        });
        std::thread::sleep(Duration::from_millis(20));
        let started_stop = Instant::now();
        assert!(!sampler.stop(), "the stuck tick was reported as finished");
        let waited = started_stop.elapsed();
        assert!(
            waited >= STOP_WAIT && waited < STOP_WAIT + Duration::from_millis(400),
            "stop waited {waited:?}"
        );
        assert!(sampler.stop(), "a second stop has nothing left to wait for");
    }

    #[test]
    fn a_panicking_tick_ends_its_own_ticks_only() {
        let shared = private();
        let mut broken =
            Sampler::register_on(Arc::clone(&shared), Duration::from_millis(1), || {
                panic!("sensor bug")
            });
        std::thread::sleep(Duration::from_millis(20));
        assert!(broken.stop());
        let (mut healthy, count) = counting(&shared, Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(60));
        assert!(healthy.stop());
        assert!(count.load(Ordering::SeqCst) >= 3);
    }
}
