//! Window edges read on threads of the process, so the user's thread never calls into a sensor
//! that can block and waits for one at most [`EDGE_DEADLINE`].
//!
//! A meter whose every read ends in bounded time (kernel counters and procfs, no vendor library:
//! [`Meter::reads_in_bounded_time`]) is read on the caller's thread instead: a handoff costs two
//! thread wake-ups, several times the read itself, and guards against nothing there.
//!
//! Every run of the process hands its edge reads to the same edge thread, spawned on first use:
//! a run's `start()` spawns none. A run asks through its own [`EdgeReader`], whose reply slot is
//! reused from edge to edge, so an edge costs a few locks and no allocation, and, when the thread
//! and the edge each find what they wait for within [`SPIN`], no sleep and no wake-up.
//! A second thread is spawned only when a request finds every edge thread busy: in practice, one
//! stuck in a wedged driver call. So a read stuck for one run never holds up another run's
//! edges (which would then fall back to their last reading and write rows of nothing); the
//! stuck run's own edges fall back until its read returns. A forked child, which has no copy of
//! the threads, forgets them ([`crate::runtime::ProcessLock::thread`]) and spawns its own on
//! first use.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::cost::{CostMeter, ThreadAccount, thread_cpu_ns};
use crate::intensity::weighted::HourlyRun;
use crate::meter::{Meter, MeterDescription, Snapshot};
use crate::runtime::ProcessLock;
use crate::runtime::locks::{Condvar, Mutex};

/// Longest a window edge (and stop()) waits for a sensor read: far above a normal full read (a
/// process-tree refresh and a few NVML calls take milliseconds), and small beside an epoch. A read
/// that blocks longer (a wedged driver call, a GPU off the bus) is left to finish on its thread.
pub const EDGE_DEADLINE: Duration = Duration::from_millis(500);

/// What one edge read found.
pub(crate) struct EdgeRead {
    pub(crate) snapshot: Snapshot,
    pub(crate) description: MeterDescription,
    pub(crate) warnings: Vec<String>,
}

/// The reply slot of one run: the read answering request `seq`, once done.
#[derive(Default)]
struct Reply {
    seq: u64,
    read: Option<EdgeRead>,
}

/// One run's side of the edge thread.
struct RunEdges {
    meter: Arc<Mutex<Meter>>,
    hourly: Option<Arc<HourlyRun>>,
    cost: Arc<CostMeter>,
    /// A request is being served: set until its read returns, however late.
    busy: AtomicBool,
    reply: Mutex<Reply>,
    /// The sequence number of the last request answered, readable without `reply`'s lock.
    answered_seq: AtomicU64,
    answered: Condvar,
    /// The newest snapshot any read produced: what an edge falls back to.
    last: parking_lot::Mutex<Snapshot>,
}

impl RunEdges {
    /// Reads the meter now, on the calling thread, and keeps the reading as the fallback.
    fn read_meter(&self) -> EdgeRead {
        let read = {
            let mut meter = self.meter.lock();
            let snapshot = meter.read();
            // Under the meter's lock, so the ledger sees reads in order.
            if let Some(hourly) = &self.hourly {
                hourly.observe(&snapshot);
            }
            EdgeRead {
                snapshot,
                description: meter.description().clone(),
                warnings: meter.take_warnings(),
            }
        };
        remember(&self.last, &read.snapshot);
        read
    }
}

/// Runs waiting for a read, oldest first, and the edge threads waiting for one.
#[derive(Default)]
struct Pending {
    runs: VecDeque<(Arc<RunEdges>, u64)>,
    idle: usize,
}

struct Queue {
    pending: Mutex<Pending>,
    /// How many requests `pending` holds, readable without its lock.
    queued: AtomicUsize,
    ready: Condvar,
}

/// How long a thread looks for what it waits for before it sleeps: a wake-up on a virtual
/// machine costs tens of microseconds of latency and CPU; looking costs at most this much CPU
/// and yields the core to any thread that can run meanwhile.
const SPIN: Duration = Duration::from_micros(100);

/// Calls `done` until it is true or [`SPIN`] passes, yielding between calls.
fn spin_until(done: impl Fn() -> bool) {
    let until = Instant::now() + SPIN;
    while !done() && Instant::now() < until {
        std::thread::yield_now();
    }
}

/// The process's edge queue, made on first use; `None` again in a forked child, which forgets
/// the parent's edge threads (not copied) and what they were asked.
static EDGES: ProcessLock<Option<Arc<Queue>>> = ProcessLock::thread();

fn process_queue() -> Arc<Queue> {
    let mut process = EDGES.lock();
    Arc::clone(process.get_or_insert_with(|| {
        Arc::new(Queue {
            pending: Mutex::new(Pending::default()),
            queued: AtomicUsize::new(0),
            ready: Condvar::new(),
        })
    }))
}

fn serve(queue: &Queue) {
    // The run served last: the CPU spent looking for the next request is charged to it.
    let mut served: Option<Arc<RunEdges>> = None;
    // The CPU of this loop outside the reads it charges (its start, each wake-up) is counted too.
    let mut account = ThreadAccount::default();
    loop {
        let (run, seq) = {
            let mut pending = queue.pending.lock();
            loop {
                if let Some(next) = pending.runs.pop_front() {
                    queue.queued.store(pending.runs.len(), Ordering::Release);
                    break next;
                }
                // Idle while it looks: a request meanwhile needs no new thread.
                pending.idle += 1;
                drop(pending);
                // The other edge of a boundary (an epoch's end, the next one's start) comes
                // within microseconds: looking for it a moment saves a sleep and a wake-up.
                let looked_since_ns = thread_cpu_ns();
                spin_until(|| queue.queued.load(Ordering::Acquire) > 0);
                if let Some(last) = served.take() {
                    last.cost.charge_thread_since(looked_since_ns);
                    account.charged_since(looked_since_ns);
                }
                pending = queue.pending.lock();
                if pending.runs.is_empty() {
                    account.publish();
                    pending = queue.ready.wait(pending);
                }
                pending.idle -= 1;
            }
        };
        let since_ns = thread_cpu_ns();
        let read = run.read_meter();
        run.cost.charge_thread_since(since_ns);
        account.charged_since(since_ns);
        // Answered even when the edge gave up waiting: the sequence number tells it apart from
        // the next request's answer.
        *run.reply.lock() = Reply {
            seq,
            read: Some(read),
        };
        run.answered_seq.store(seq, Ordering::Release);
        run.busy.store(false, Ordering::Release);
        run.answered.notify_all();
        served = Some(run);
    }
}

/// Queues `run`'s request `seq`, and spawns an edge thread when none is free to take it.
fn request(queue: &Arc<Queue>, run: &Arc<RunEdges>, seq: u64) {
    let mut pending = queue.pending.lock();
    pending.runs.push_back((Arc::clone(run), seq));
    queue.queued.store(pending.runs.len(), Ordering::Release);
    let spawn = pending.idle < pending.runs.len();
    drop(pending);
    queue.ready.notify_all();
    if spawn {
        let served = Arc::clone(queue);
        if let Err(err) = crate::runtime::spawn("edges", move || serve(&served)) {
            // The request waits for a busy thread instead, within its deadline.
            log::debug!("no new carbonmeter-edges thread: {err}");
        }
    }
}

/// Reads one run's meter for its window edges on the process's edge thread.
pub(crate) struct EdgeReader {
    queue: Arc<Queue>,
    run: Arc<RunEdges>,
    /// Every read of this meter ends in bounded time (see [`Meter::reads_in_bounded_time`]):
    /// edges read on the caller's thread, with no handoff.
    inline: bool,
}

impl EdgeReader {
    /// A reader of `meter` whose reads feed `hourly` and are charged to `cost`; `start` is the
    /// first fallback reading.
    pub(crate) fn new(
        meter: &Arc<Mutex<Meter>>,
        hourly: Option<Arc<HourlyRun>>,
        cost: &Arc<CostMeter>,
        start: &Snapshot,
    ) -> Self {
        Self {
            inline: meter.lock().reads_in_bounded_time(),
            queue: process_queue(),
            run: Arc::new(RunEdges {
                meter: Arc::clone(meter),
                hourly,
                cost: Arc::clone(cost),
                busy: AtomicBool::new(false),
                reply: Mutex::new(Reply::default()),
                answered_seq: AtomicU64::new(0),
                answered: Condvar::new(),
                last: parking_lot::Mutex::new(start.clone()),
            }),
        }
    }

    /// A fresh read, or `None` when none came within the deadline (or one is still stuck).
    pub(crate) fn read(&self) -> Option<EdgeRead> {
        if self.inline {
            return Some(self.run.read_meter());
        }
        // A read still stuck from an earlier edge: queueing behind it would only wait again.
        if self.run.busy.swap(true, Ordering::AcqRel) {
            return None;
        }
        let deadline = Instant::now() + EDGE_DEADLINE;
        let seq = {
            let mut reply = self.run.reply.lock();
            let seq = reply.seq.wrapping_add(1);
            *reply = Reply { seq, read: None };
            seq
        };
        request(&self.queue, &self.run, seq);
        // A read takes tens of microseconds: worth a look before a sleep and a wake-up.
        spin_until(|| self.run.answered_seq.load(Ordering::Acquire) == seq);
        let mut reply = self.run.reply.lock();
        loop {
            if reply.seq == seq
                && let Some(read) = reply.read.take()
            {
                return Some(read);
            }
            let timed_out;
            (reply, timed_out) = self.run.answered.wait_until(reply, deadline);
            if timed_out {
                return None;
            }
        }
    }

    /// The newest snapshot any read of this run produced.
    pub(crate) fn last(&self) -> Snapshot {
        self.run.last.lock().clone()
    }

    /// What the sampler's tick keeps its newest reading in.
    pub(crate) fn fallback(&self) -> Fallback {
        Fallback(Arc::clone(&self.run))
    }
}

/// A run's fallback reading, for its sampler tick to keep fresh.
pub(crate) struct Fallback(Arc<RunEdges>);

impl Fallback {
    /// Keeps `snapshot` if it is the newest reading.
    pub(crate) fn remember(&self, snapshot: &Snapshot) {
        remember(&self.0.last, snapshot);
    }
}

/// Keeps the newer of the remembered snapshot and `snapshot` (the sampler and the edge thread
/// both read, and may finish out of order).
fn remember(last: &parking_lot::Mutex<Snapshot>, snapshot: &Snapshot) {
    let mut last = last.lock();
    if snapshot.t_s >= last.t_s {
        *last = snapshot.clone();
    }
}
