//! Window edges read on one thread of the process, so the user's thread never calls into a
//! sensor and waits for one at most [`EDGE_DEADLINE`].
//!
//! Every run of the process hands its edge reads to the same thread, spawned on first use: a
//! run's `start()` spawns none. A run asks through its own [`EdgeReader`], whose reply slot is
//! reused from edge to edge, so an edge costs a lock, two condvar signals and no allocation.
//! One thread for every run means a read stuck in a wedged driver call holds up the edges of the
//! other runs of this process too: each waits its deadline and falls back to its last reading
//! until the stuck read returns. A forked child, which has no copy of the thread, forgets it
//! ([`reset_after_fork`]) and spawns its own on first use.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cost::{CostMeter, thread_cpu_ns};
use crate::intensity::weighted::HourlyRun;
use crate::locks::{Condvar, Mutex};
use crate::meter::{Meter, MeterDescription, Snapshot};

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
    answered: Condvar,
    /// The newest snapshot any read produced: what an edge falls back to.
    last: parking_lot::Mutex<Snapshot>,
}

/// Runs waiting for a read, oldest first.
struct Queue {
    runs: Mutex<VecDeque<(Arc<RunEdges>, u64)>>,
    ready: Condvar,
}

/// The process's edge thread's queue, spawned on first use; `None` again in a forked child.
static EDGES: parking_lot::Mutex<Option<Arc<Queue>>> = parking_lot::Mutex::new(None);

/// In a forked child: forgets the parent's edge thread (not copied) and what it was asked.
pub(crate) fn reset_after_fork() {
    crate::locks::force_release(&EDGES);
    if let Some(parent) = EDGES.lock().take() {
        std::mem::forget(parent);
    }
}

fn process_queue() -> std::io::Result<Arc<Queue>> {
    let mut process = EDGES.lock();
    if let Some(queue) = process.as_ref() {
        return Ok(Arc::clone(queue));
    }
    let queue = Arc::new(Queue {
        runs: Mutex::new(VecDeque::new()),
        ready: Condvar::new(),
    });
    let served = Arc::clone(&queue);
    std::thread::Builder::new()
        .name("carbonmeter-edges".to_owned())
        .spawn(move || serve(&served))?;
    *process = Some(Arc::clone(&queue));
    Ok(queue)
}

fn serve(queue: &Queue) {
    loop {
        let (run, seq) = {
            let mut runs = queue.runs.lock();
            loop {
                if let Some(next) = runs.pop_front() {
                    break next;
                }
                runs = queue.ready.wait(runs);
            }
        };
        let since_ns = thread_cpu_ns();
        let read = {
            let mut meter = run.meter.lock();
            let snapshot = meter.read();
            // Under the meter's lock, so the ledger sees reads in order.
            if let Some(hourly) = &run.hourly {
                hourly.observe(&snapshot);
            }
            EdgeRead {
                snapshot,
                description: meter.description().clone(),
                warnings: meter.take_warnings(),
            }
        };
        remember(&run.last, &read.snapshot);
        run.cost.charge_thread_since(since_ns);
        // Answered even when the edge gave up waiting: the sequence number tells it apart from
        // the next request's answer.
        *run.reply.lock() = Reply {
            seq,
            read: Some(read),
        };
        run.busy.store(false, Ordering::Release);
        run.answered.notify_all();
    }
}

/// Reads one run's meter for its window edges on the process's edge thread.
pub(crate) struct EdgeReader {
    queue: Arc<Queue>,
    run: Arc<RunEdges>,
}

impl EdgeReader {
    /// A reader of `meter` whose reads feed `hourly` and are charged to `cost`; `start` is the
    /// first fallback reading.
    pub(crate) fn new(
        meter: &Arc<Mutex<Meter>>,
        hourly: Option<Arc<HourlyRun>>,
        cost: &Arc<CostMeter>,
        start: &Snapshot,
    ) -> std::io::Result<Self> {
        Ok(Self {
            queue: process_queue()?,
            run: Arc::new(RunEdges {
                meter: Arc::clone(meter),
                hourly,
                cost: Arc::clone(cost),
                busy: AtomicBool::new(false),
                reply: Mutex::new(Reply::default()),
                answered: Condvar::new(),
                last: parking_lot::Mutex::new(start.clone()),
            }),
        })
    }

    /// A fresh read, or `None` when none came within the deadline (or one is still stuck).
    pub(crate) fn read(&self) -> Option<EdgeRead> {
        // A read still stuck from an earlier edge: queueing behind it would only wait again.
        if self.run.busy.swap(true, Ordering::AcqRel) {
            return None;
        }
        let deadline = Instant::now() + EDGE_DEADLINE;
        let mut reply = self.run.reply.lock();
        let seq = reply.seq.wrapping_add(1);
        *reply = Reply { seq, read: None };
        self.queue
            .runs
            .lock()
            .push_back((Arc::clone(&self.run), seq));
        self.queue.ready.notify_all();
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
