//! What happens to running trackers when the process is told to end or forks.
//!
//! **SIGTERM and SIGHUP** (Slurm's time limit, `docker stop`, pod eviction, a closed terminal)
//! end a process without unwinding, so no `stop()` would run and the run's row and its open
//! windows' rows would be lost. While a tracker runs, and only where the signal's handler is
//! the default one, a handler of ours is installed: it only writes the signal's number to a
//! pipe (all a handler may safely do), and a watcher thread then stops every running tracker,
//! which writes their rows, restores the default handler and raises the signal again, so the
//! process ends with the signal's usual status. A handler the user or a framework installed is
//! never replaced (CodeCarbon's is, and breaks KeyboardInterrupt there, their #1310), and the
//! default comes back when the last tracker stops.
//!
//! **fork()** copies only the forking thread. The list of trackers is one of the process-wide
//! locks of [`crate::runtime`], whose at-fork handler releases it and, in the child, forgets
//! (never joins nor writes) the runs it copied: the child starts a run of its own or is told,
//! by a `TrackerStateError`, that none is open. The signal handlers go back to the defaults and
//! the child closes its copy of the watcher's pipe.

use std::os::raw::c_int;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Weak};

use crate::runtime::ProcessLock;

/// What a signal or a fork does to a tracker; implemented by the tracker, so this module
/// depends on nothing that depends on it.
pub(crate) trait Managed: Send + Sync {
    /// Writes the rows of a running run and ends it; nothing when idle.
    fn stop_for_signal(&self);
    /// In a forked child: drops a copied run without joining or writing it.
    fn forget_after_fork(&self);
}

/// The signals whose default action ends the process and that schedulers send before a kill.
const SIGNALS: [c_int; 2] = [libc::SIGTERM, libc::SIGHUP];

/// Trackers that can be stopped on a signal; a forked child forgets their runs.
static TRACKERS: ProcessLock<Vec<Weak<dyn Managed>>> =
    ProcessLock::with_reset(Vec::new(), forget_runs);

/// Write end of the pipe from the signal handler to the watcher; -1 before the first run.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

struct Armed {
    running: usize,
    installed: Vec<c_int>,
    read_fd: c_int,
    watcher: bool,
}

/// The handlers and the watcher; a forked child starts disarmed, with no watcher.
static ARMED: ProcessLock<Armed> = ProcessLock::with_reset(
    Armed {
        running: 0,
        installed: Vec::new(),
        read_fd: -1,
        watcher: false,
    },
    disarm,
);

/// Keeps `tracker` where a signal or a fork can find it.
pub(crate) fn register(tracker: &Arc<dyn Managed>) {
    let mut trackers = TRACKERS.lock();
    trackers.retain(|weak| weak.strong_count() > 0);
    trackers.push(Arc::downgrade(tracker));
}

/// A tracker started: arms the handlers if it is the first running one.
pub(crate) fn run_started() {
    let mut armed = ARMED.lock();
    armed.running += 1;
    if armed.running > 1 {
        return;
    }
    if !armed.watcher {
        match start_watcher(armed.read_fd) {
            Ok(read_fd) => {
                armed.read_fd = read_fd;
                armed.watcher = true;
            }
            Err(err) => {
                crate::runtime::warn_once(&format!(
                    "cannot watch for SIGTERM/SIGHUP ({err}): a run ended by one loses its rows"
                ));
                return;
            }
        }
    }
    for signal in SIGNALS {
        // SAFETY: a zeroed sigaction is a valid out-parameter; `on_signal` is async-signal-safe.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &raw mut current) != 0
                || current.sa_sigaction != libc::SIG_DFL
            {
                continue;
            }
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            ours.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&raw mut ours.sa_mask);
            if libc::sigaction(signal, &raw const ours, std::ptr::null_mut()) == 0 {
                armed.installed.push(signal);
            }
        }
    }
}

/// A tracker stopped: gives the default handlers back after the last running one.
pub(crate) fn run_stopped() {
    let mut armed = ARMED.lock();
    armed.running = armed.running.saturating_sub(1);
    if armed.running == 0 {
        restore_defaults(&mut armed.installed);
    }
}

/// Puts back the default handler of each signal in `installed` still handled by us: one the
/// user installed since is theirs.
fn restore_defaults(installed: &mut Vec<c_int>) {
    for signal in installed.drain(..) {
        // SAFETY: plain sigaction calls on valid, zero-initialised structures.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &raw mut current) == 0
                && current.sa_sigaction == on_signal as *const () as libc::sighandler_t
            {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&raw mut default.sa_mask);
                libc::sigaction(signal, &raw const default, std::ptr::null_mut());
            }
        }
    }
}

extern "C" fn on_signal(signal: c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    let byte = u8::try_from(signal).unwrap_or(0);
    // SAFETY: write(2) is async-signal-safe; the pipe is non-blocking, so a full pipe (signals
    // faster than the watcher) drops a byte rather than stalling the handler.
    unsafe {
        libc::write(fd, (&raw const byte).cast(), 1);
    }
}

/// Opens the pipe (unless `read_fd` is already one) and starts the watcher thread on it.
fn start_watcher(read_fd: c_int) -> std::io::Result<c_int> {
    let read_fd = if read_fd >= 0 {
        read_fd
    } else {
        let mut fds = [-1 as c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fds[1] was just opened by pipe2.
        unsafe {
            let flags = libc::fcntl(fds[1], libc::F_GETFL);
            libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        PIPE_WRITE.store(fds[1], Ordering::Relaxed);
        fds[0]
    };
    crate::runtime::spawn("signals", move || watch(read_fd))?;
    Ok(read_fd)
}

fn watch(read_fd: c_int) {
    loop {
        let mut byte = 0_u8;
        // SAFETY: reads one byte into a local.
        let read = unsafe { libc::read(read_fd, (&raw mut byte).cast(), 1) };
        if read == 1 {
            end_process(c_int::from(byte));
        } else if read == 0
            || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            return;
        }
    }
}

/// Writes every running tracker's rows, then ends the process as `signal` would have.
fn end_process(signal: c_int) {
    let trackers: Vec<Arc<dyn Managed>> =
        TRACKERS.lock().iter().filter_map(Weak::upgrade).collect();
    for tracker in trackers {
        tracker.stop_for_signal();
    }
    // SAFETY: restores the default action and raises the signal on this thread, which does
    // not block it: the process ends with the signal's status.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
        libc::kill(libc::getpid(), signal);
    }
}

/// In a forked child: forgets the copied runs.
fn forget_runs(trackers: &mut Vec<Weak<dyn Managed>>) {
    for tracker in trackers.iter().filter_map(Weak::upgrade) {
        tracker.forget_after_fork();
    }
}

/// In a forked child: the default handlers back, and no watcher (the thread was not copied).
fn disarm(armed: &mut Armed) {
    armed.running = 0;
    restore_defaults(&mut armed.installed);
    // The pipe is shared with the parent: a signal to the child must not wake its watcher.
    let write_fd = PIPE_WRITE.swap(-1, Ordering::Relaxed);
    // SAFETY: closing descriptors this module opened; close(2) is async-signal-safe.
    unsafe {
        if write_fd >= 0 {
            libc::close(write_fd);
        }
        if armed.read_fd >= 0 {
            libc::close(armed.read_fd);
        }
    }
    armed.read_fd = -1;
    armed.watcher = false;
}
