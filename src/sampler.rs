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
//! through [`crate::runtime::locks`], which a `fork()` cannot leave hung; a forked child, which
//! has no copy of the thread, forgets it ([`crate::runtime::ProcessLock::thread`]) and spawns
//! its own on first use.
//!
//! Every reading of the time and every timed wait goes through a [`Clock`]: the system's in a
//! process, one the tests advance by hand, so they count ticks rather than milliseconds.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cost::{ThreadAccount, thread_cpu_ns};
use crate::runtime::ProcessLock;
use crate::runtime::locks::{Condvar, Mutex, MutexGuard};

/// Longest `stop` waits for a tick in progress: far above a normal full read (milliseconds), and
/// small beside a training step. A tick stuck in a wedged driver call is left to finish alone.
pub const STOP_WAIT: Duration = Duration::from_millis(500);

/// Far enough ahead to mean "not before something changes": a deadline past `Instant`'s range.
const FAR_AHEAD: Duration = Duration::from_hours(365 * 24);

type Tick = Box<dyn FnMut() + Send>;

/// Where the sampler reads the time and how it waits for a deadline. The system's monotonic
/// clock in a process ([`SystemClock`]); the tests' own advances only when told to, so a test
/// of the schedule counts ticks and cannot flake on a loaded machine.
trait Clock: Send + Sync {
    /// Now, on this clock.
    fn now(&self) -> Instant;

    /// Waits on `condvar` for a notification or until `deadline` on this clock; `true` with
    /// the guard when the deadline passed. May return early, as a condvar may.
    fn wait_until<'a>(
        &self,
        condvar: &Condvar,
        guard: MutexGuard<'a, State>,
        deadline: Instant,
    ) -> (MutexGuard<'a, State>, bool);
}

/// The system's monotonic clock: what every run of the process uses.
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wait_until<'a>(
        &self,
        condvar: &Condvar,
        guard: MutexGuard<'a, State>,
        deadline: Instant,
    ) -> (MutexGuard<'a, State>, bool) {
        condvar.wait_until(guard, deadline)
    }
}

struct Entry {
    id: u64,
    period: Duration,
    /// How early the tick may run when the thread is awake anyway: a check that need not come
    /// on time shares another tick's wake-up rather than adding its own.
    slack: Duration,
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
    /// The time every deadline of this thread is on.
    clock: Arc<dyn Clock>,
}

/// The process's sampler thread, spawned on first use; `None` again in a forked child, which
/// forgets the parent's registrations too (the parent's runs, forgotten with them).
static SAMPLER: ProcessLock<Option<Arc<Shared>>> = ProcessLock::thread();

/// Marks the thread ended however it ends, so the next registration starts a new one.
struct EndOnDrop(Arc<Shared>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.0.state.lock().ended = true;
        self.0.done.notify_all();
    }
}

fn serve(shared: &Shared) {
    // The CPU of this loop outside the ticks (its start, each wake-up) is counted too.
    let mut account = ThreadAccount::default();
    let mut state = shared.state.lock();
    loop {
        let now = shared.clock.now();
        let earliest = state
            .waiting
            .iter()
            .enumerate()
            .min_by_key(|(_, entry)| entry.deadline)
            .map(|(index, entry)| (index, entry.deadline));
        // Awake for another tick: one whose slack reaches back to now runs in the same wake-up.
        let early = state.waiting.iter().position(|entry| {
            entry.slack > Duration::ZERO
                && entry
                    .deadline
                    .checked_sub(entry.slack)
                    .is_some_and(|from| from <= now)
        });
        let earliest = match (earliest, early) {
            (Some((_, deadline)), Some(index)) if deadline > now => Some((index, now)),
            _ => earliest,
        };
        let Some((index, deadline)) = earliest else {
            state.sleeping_until = None;
            account.publish();
            state = shared.wake.wait(state);
            continue;
        };
        if deadline > now {
            state.sleeping_until = Some(deadline);
            account.publish();
            (state, _) = shared.clock.wait_until(&shared.wake, state, deadline);
            state.sleeping_until = None;
            continue;
        }
        let mut entry = state.waiting.swap_remove(index);
        state.running = Some(entry.id);
        drop(state);
        // The tick charges its own run.
        let since_ns = thread_cpu_ns();
        let panicked = catch_unwind(AssertUnwindSafe(&mut entry.tick)).is_err();
        account.charged_since(since_ns);
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
            entry.schedule_after(shared.clock.now());
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
    let shared = spawn_thread(Arc::new(SystemClock))?;
    *process = Some(Arc::clone(&shared));
    Ok(shared)
}

/// A new sampler thread on `clock`, with nothing registered.
fn spawn_thread(clock: Arc<dyn Clock>) -> std::io::Result<Arc<Shared>> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
        done: Condvar::new(),
        clock,
    });
    let thread_shared = Arc::clone(&shared);
    crate::runtime::spawn("sampler", move || {
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
        Ok(Self::register_on(
            process_sampler()?,
            period,
            Duration::ZERO,
            tick,
        ))
    }

    /// [`Sampler::register`] for a tick that may run up to `slack` before its deadline where
    /// the thread wakes for another tick then: it adds a wake-up of its own only where no
    /// other tick comes within `slack` of its deadline.
    pub fn register_with_slack(
        period: Duration,
        slack: Duration,
        tick: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Self> {
        Ok(Self::register_on(process_sampler()?, period, slack, tick))
    }

    fn register_on(
        shared: Arc<Shared>,
        period: Duration,
        slack: Duration,
        tick: impl FnMut() + Send + 'static,
    ) -> Self {
        let period = period.max(Duration::from_millis(1));
        let start = shared.clock.now();
        let deadline = deadline_at(start, period, 1);
        let mut state = shared.state.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.waiting.push(Entry {
            id,
            period,
            slack,
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
        let deadline = self.shared.clock.now() + STOP_WAIT;
        state = wait_while_running(&self.shared, state, id, deadline);
        state.running != Some(id)
    }
}

/// Waits on `done` until tick `id` is no longer running or `deadline` passes on the clock.
fn wait_while_running<'a>(
    shared: &Shared,
    mut state: MutexGuard<'a, State>,
    id: u64,
    deadline: Instant,
) -> MutexGuard<'a, State> {
    while state.running == Some(id) && !state.ended {
        let timed_out;
        (state, timed_out) = shared.clock.wait_until(&shared.done, state, deadline);
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
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    use std::sync::mpsc;

    /// A real-time bound on what must happen without the clock moving; only a hang reaches it.
    const HANG: Duration = Duration::from_secs(10);

    /// A clock that moves only when a test advances it. A wait to a deadline it has not reached
    /// sleeps through the advances (as a timed wait sleeps through time), and returns early only
    /// for a notification of the sampler's own: a missing notification is a missing tick.
    struct ManualClock {
        origin: Instant,
        elapsed_ns: AtomicU64,
        /// Counts advances: a wake-up with no new advance was a notification.
        advances: AtomicU64,
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            self.origin + Duration::from_nanos(self.elapsed_ns.load(Ordering::SeqCst))
        }

        fn wait_until<'a>(
            &self,
            condvar: &Condvar,
            mut guard: MutexGuard<'a, State>,
            deadline: Instant,
        ) -> (MutexGuard<'a, State>, bool) {
            loop {
                if self.now() >= deadline {
                    return (guard, true);
                }
                let advances = self.advances.load(Ordering::SeqCst);
                guard = condvar.wait(guard);

                if self.advances.load(Ordering::SeqCst) == advances {
                    return (guard, false);
                }
            }
        }
    }

    /// A sampler thread of the test's own on a [`ManualClock`]: a tick another test leaves
    /// stuck cannot skew its counts, and its time moves only by [`Bench::advance`].
    struct Bench {
        shared: Arc<Shared>,
        clock: Arc<ManualClock>,
    }

    impl Bench {
        fn new() -> Self {
            let clock = Arc::new(ManualClock {
                origin: Instant::now(),
                elapsed_ns: AtomicU64::new(0),
                advances: AtomicU64::new(0),
            });
            let shared = spawn_thread(Arc::clone(&clock) as Arc<dyn Clock>).expect("spawn");
            Self { shared, clock }
        }

        /// Registers `tick` and waits until the thread has taken it in (see [`Bench::settle`]).
        fn register(&self, period: Duration, tick: impl FnMut() + Send + 'static) -> Sampler {
            let sampler =
                Sampler::register_on(Arc::clone(&self.shared), period, Duration::ZERO, tick);
            self.settle();
            sampler
        }

        fn counting(&self, period: Duration) -> (Sampler, Arc<AtomicU32>) {
            let count = Arc::new(AtomicU32::new(0));
            let counter = Arc::clone(&count);
            let sampler = self.register(period, move || {
                counter.fetch_add(1, Ordering::SeqCst);
            });
            (sampler, count)
        }

        /// Moves the clock on by `by` and wakes every waiter, without waiting for the ticks due.
        fn advance_only(&self, by: Duration) {
            // Under the state lock, which every waiter holds from reading the clock to waiting:
            // each sees the new time before it waits, or is waiting when the wake-up comes.
            let state = self.shared.state.lock();
            let by_ns = u64::try_from(by.as_nanos()).expect("a test's step");
            self.clock.elapsed_ns.fetch_add(by_ns, Ordering::SeqCst);
            self.clock.advances.fetch_add(1, Ordering::SeqCst);
            drop(state);
            self.shared.wake.notify_all();
            self.shared.done.notify_all();
        }

        /// Moves the clock on by `by`, then waits until every tick due by then has run.
        fn advance(&self, by: Duration) {
            self.advance_only(by);
            self.settle();
        }

        /// Waits until no tick is due or running and the thread sleeps to the earliest deadline:
        /// until the clock moves, nothing more will tick. A thread left asleep to a later
        /// deadline (a registration that did not wake it) never settles, and fails the test.
        fn settle(&self) {
            self.wait_for("the sampler to settle", |state, now| {
                let earliest = state.waiting.iter().map(|entry| entry.deadline).min();
                state.running.is_none()
                    && earliest.is_none_or(|deadline| deadline > now)
                    && (earliest.is_none() || state.sleeping_until == earliest)
            });
        }

        fn wait_for(&self, what: &str, done: impl Fn(&State, Instant) -> bool) {
            let give_up = Instant::now() + HANG;
            while !done(&self.shared.state.lock(), self.clock.now()) {
                assert!(Instant::now() < give_up, "waited {HANG:?} for {what}");
                std::thread::yield_now();
            }
        }
    }

    /// `sampler.stop()` on another thread, its answer and the sampler back; fails past [`HANG`].
    fn stop_elsewhere(mut sampler: Sampler) -> mpsc::Receiver<(bool, Sampler)> {
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let stopped = sampler.stop();
            sender.send((stopped, sampler)).ok();
        });
        receiver
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ticks_on_schedule_and_stops_at_once() {
        let bench = Bench::new();
        let (sampler, count) = bench.counting(10 * MS);
        for step in 1..=20 {
            bench.advance(9 * MS);
            assert_eq!(
                count.load(Ordering::SeqCst),
                step - 1,
                "ticked before its deadline"
            );
            bench.advance(MS);
            assert_eq!(count.load(Ordering::SeqCst), step, "one tick a period");
        }
        // At once: the clock does not move while it stops.
        let (stopped, _sampler) = stop_elsewhere(sampler)
            .recv_timeout(HANG)
            .expect("stop hung");
        assert!(stopped);
        bench.advance(30 * MS);
        assert_eq!(count.load(Ordering::SeqCst), 20, "ticked after stop");
    }

    #[test]
    fn runs_share_one_thread_each_at_its_own_period() {
        // The process's runs share its one thread.
        let mut first = Sampler::register(Duration::from_hours(1), || {}).expect("first");
        let mut second = Sampler::register(Duration::from_hours(1), || {}).expect("second");
        assert!(Arc::ptr_eq(&first.shared, &second.shared));
        assert!(first.stop() && second.stop());

        let thread_of = |ids: &Arc<parking_lot::Mutex<Vec<std::thread::ThreadId>>>| {
            let ids = Arc::clone(ids);
            move || ids.lock().push(std::thread::current().id())
        };
        let bench = Bench::new();
        let fast_ids = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let slow_ids = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut fast = bench.register(10 * MS, thread_of(&fast_ids));
        let mut slow = bench.register(50 * MS, thread_of(&slow_ids));
        for _ in 0..26 {
            bench.advance(10 * MS);
        }
        assert!(fast.stop() && slow.stop());
        let (fast_ids, slow_ids) = (fast_ids.lock(), slow_ids.lock());
        assert_eq!((fast_ids.len(), slow_ids.len()), (26, 5), "ticks in 260 ms");
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
    fn a_tick_with_slack_shares_the_wake_ups_of_another() {
        let bench = Bench::new();
        let checks = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&checks);
        let mut check =
            Sampler::register_on(Arc::clone(&bench.shared), 30 * MS, 15 * MS, move || {
                counter.fetch_add(1, Ordering::SeqCst);
            });
        bench.settle();
        // Alone, it wakes the thread at its deadline only.
        bench.advance(29 * MS);
        assert_eq!(
            checks.load(Ordering::SeqCst),
            0,
            "ran before its deadline, alone"
        );
        bench.advance(MS);
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        // Beside a tick every 10 ms, it runs in that tick's wake-up once within its slack
        // (at 50 ms, not 60), and every 30 ms from then on.
        let (mut fast, count) = bench.counting(10 * MS);
        for _ in 0..6 {
            bench.advance(10 * MS);
        }
        assert_eq!(count.load(Ordering::SeqCst), 6);
        assert_eq!(
            checks.load(Ordering::SeqCst),
            3,
            "checks at 30, 50 and 80 ms"
        );
        assert!(fast.stop() && check.stop());
    }

    #[test]
    fn long_period_stop_does_not_wait_for_the_period() {
        let bench = Bench::new();
        let (sampler, count) = bench.counting(Duration::from_hours(1));
        let (stopped, _sampler) = stop_elsewhere(sampler)
            .recv_timeout(HANG)
            .expect("stop hung");
        assert!(stopped);
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn an_earlier_deadline_wakes_a_thread_asleep_to_a_later_one() {
        let bench = Bench::new();
        // Settled: the thread is asleep to the hour when the fast run registers, and settles
        // again only once that registration has woken it (see `Bench::settle`).
        let (mut slow, _) = bench.counting(Duration::from_hours(1));
        let (mut fast, count) = bench.counting(5 * MS);
        for _ in 0..5 {
            bench.advance(5 * MS);
        }
        assert!(fast.stop() && slow.stop());
        assert_eq!(count.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn stop_abandons_a_tick_stuck_in_a_blocking_read() {
        let bench = Bench::new();
        let (entered, entered_rx) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let sampler = bench.register(MS, move || {
            entered.send(()).ok();
            released.recv().ok();
        });
        bench.advance_only(MS);
        entered_rx
            .recv_timeout(HANG)
            .expect("the tick never started");
        let stopping = stop_elsewhere(sampler);
        bench.wait_for("stop to wait for the tick", |state, _| {
            state.cancelled.is_some()
        });
        bench.advance_only(STOP_WAIT.saturating_sub(MS));
        // A moment of real time to show it still waits: this can miss an early return on a
        // slow machine, never report one that did not happen.
        assert!(
            stopping.recv_timeout(50 * MS).is_err(),
            "stop returned before STOP_WAIT on the clock"
        );
        bench.advance_only(MS);
        let (stopped, mut sampler) = stopping.recv_timeout(HANG).expect("stop hung");
        assert!(!stopped, "the stuck tick was reported as finished");
        assert!(sampler.stop(), "a second stop has nothing left to wait for");
        release.send(()).ok();
    }

    #[test]
    fn a_panicking_tick_ends_its_own_ticks_only() {
        let bench = Bench::new();
        let mut broken = bench.register(MS, || panic!("sensor bug"));
        bench.advance(MS);
        assert!(broken.stop());
        let (mut healthy, count) = bench.counting(5 * MS);
        for _ in 0..3 {
            bench.advance(5 * MS);
        }
        assert!(healthy.stop());
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }
}
