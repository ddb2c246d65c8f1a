//! What happens to running trackers when the process is told to end, exits or forks.
//!
//! **SIGTERM and SIGHUP** (Slurm's time limit, `docker stop`, pod eviction, a closed terminal)
//! end a process without unwinding, so no `stop()` would run and the run's row and its open
//! windows' rows would be lost. While a tracker runs, and only where the signal's handler is
//! the default one, a handler of ours is installed: it only writes the signal's number to a
//! pipe (all a handler may safely do), and a watcher thread then stops every running tracker,
//! waits (at most [`SIGNAL_STOP_WAIT`]) for stops already under way on other threads to write
//! their last row, restores the default handler and raises the signal again, so the process
//! ends with the signal's usual status. A run holds the handlers until its last row is written
//! ([`Running`]), so a signal in the middle of a `stop()` waits for that stop's rows. A handler
//! the user or a framework installed is never replaced (CodeCarbon's is, and breaks
//! KeyboardInterrupt there, their #1310). Once installed, ours stays when the last run stops:
//! with no run in progress it ends the process at once, as the default would (the watcher
//! finds nothing to stop and raises the signal again with the default action), and a warm
//! `start()`+`stop()` then pays 4 `sigaction` queries rather than 10 calls that installed,
//! checked and restored both handlers each time. A forked child gets the defaults back.
//!
//! A framework that saves `signal.getsignal(SIGTERM)` (Python reports `SIG_DFL` for a handler
//! installed below it), installs its own and later restores the saved value, as Lightning's
//! signal connector does around `fit()`, puts the default back under a running tracker. The
//! default coming back is the one change we undo: [`rearm`] installs ours again when a window
//! or epoch opens, at `flush()` and at `stop()`; the watcher checks every [`REARM_PERIOD_MS`]
//! while a handler of ours is displaced by another (a framework's, which it may take back),
//! and the sampler thread every [`SLOW_REARM_PERIOD_MS`] otherwise, on a tick of its own
//! registered by the process's first run: it falls in the same wake-up as a run's tick at the
//! default period (15 s), so a process whose handlers no framework touches pays no wake-up of
//! its own for it (the watcher did, twice a minute), and none at a `start()`. Registering
//! through Python's `signal` instead, so that what frameworks save and restore is ours, would
//! need the interpreter: a Python handler runs only on the main thread between bytecodes (not
//! while it waits in a CUDA call or a detached `stop()`), can be installed only from the main
//! thread, and a framework that finds a handler chains it, so ours would end the process in the
//! middle of Lightning's own graceful SIGTERM handling.
//!
//! **Interpreter exit**: [`stop_all`] is what the package's `atexit` hook calls, so a run still
//! going when the interpreter exits (an uncaught exception, `sys.exit`) writes its rows before
//! modules are torn down, rather than when (and whether) garbage collection drops the tracker.
//!
//! **fork()** copies only the forking thread. The list of trackers is one of the process-wide
//! locks of [`crate::runtime`], whose at-fork handler releases it and, in the child, forgets
//! (never joins nor writes) the runs it copied: the child starts a run of its own or is told,
//! by a `TrackerStateError`, that none is open. The signal handlers go back to the defaults and
//! the child closes its copy of the watcher's pipe.

use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::runtime::ProcessLock;

/// What a signal, the interpreter's exit or a fork does to a tracker; implemented by the
/// tracker, so this module depends on nothing that depends on it.
pub(crate) trait Managed: Send + Sync {
    /// Writes the rows of a running run and ends it; nothing when idle.
    fn stop_running(&self);
    /// In a forked child: drops a copied run without joining or writing it.
    fn forget_after_fork(&self);
}

/// The signals whose default action ends the process and that schedulers send before a kill.
const SIGNALS: [c_int; 2] = [libc::SIGTERM, libc::SIGHUP];

/// How long a signal waits for stops under way on other threads to write their rows before it
/// ends the process: well inside the grace before the SIGKILL that follows (`docker stop`
/// gives 10 s, Slurm's `KillWait` and Kubernetes 30 s); a stop's own waits (the sampler, a
/// sensor read) are bounded at 0.5 s each.
pub(crate) const SIGNAL_STOP_WAIT: Duration = Duration::from_secs(5);

/// While another handler holds a signal ours was installed for (a framework's, during its
/// `fit()`), the watcher checks this often (ms) whether the default came back; opening a
/// window, `flush()` and `stop()` check at once.
pub(crate) const REARM_PERIOD_MS: c_int = 1000;

/// Otherwise the sampler thread checks this often (ms): a displacement and restore that no
/// window opening saw. A multiple of the default `measure_power_secs` (15 s), so the check
/// shares a run's wake-ups rather than adding its own (one costs some 40 µs of CPU on a VM).
pub(crate) const SLOW_REARM_PERIOD_MS: u64 = 30_000;

/// Whether the watcher polls every [`REARM_PERIOD_MS`] now.
static POLLING_FAST: AtomicBool = AtomicBool::new(false);

/// The byte that wakes the watcher without a signal (signal numbers start at 1).
const WAKE: u8 = 0;

/// Trackers that can be stopped on a signal; a forked child forgets their runs.
static TRACKERS: ProcessLock<Vec<Weak<dyn Managed>>> =
    ProcessLock::with_reset(Vec::new(), forget_runs);

/// Write end of the pipe from the signal handler to the watcher; -1 before the first run.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// Set once a signal is ending the process: nothing installs our handler any more, so the
/// signal raised again ends it.
static ENDING: AtomicBool = AtomicBool::new(false);

struct Armed {
    /// Runs started whose last row is not written yet.
    running: usize,
    installed: Vec<c_int>,
    read_fd: c_int,
    watcher: bool,
    /// The sampler's tick that checks every [`SLOW_REARM_PERIOD_MS`], from the first run on.
    check: Option<crate::sampler::Sampler>,
}

/// The handlers and the watcher; a forked child starts disarmed, with no watcher.
static ARMED: ProcessLock<Armed> = ProcessLock::with_reset(
    Armed {
        running: 0,
        installed: Vec::new(),
        read_fd: -1,
        watcher: false,
        check: None,
    },
    disarm,
);

/// A run's hold on the handlers, from its start until its last row is written: a signal
/// ending the process waits for it. Our handlers stay after the last one (see the module's
/// notes): with nothing running they end the process as the default would.
#[must_use = "a signal ending the process waits for the run until this is dropped"]
pub(crate) struct Running(());

impl Drop for Running {
    fn drop(&mut self) {
        let mut armed = ARMED.lock();
        armed.running = armed.running.saturating_sub(1);
    }
}

/// Keeps `tracker` where a signal, the interpreter's exit or a fork can find it.
pub(crate) fn register(tracker: &Arc<dyn Managed>) {
    let mut trackers = TRACKERS.lock();
    trackers.retain(|weak| weak.strong_count() > 0);
    trackers.push(Arc::downgrade(tracker));
}

/// A run started: arms the handlers if it is the first running one. The handlers stay while
/// the returned hold lives.
pub(crate) fn run_started() -> Running {
    let mut armed = ARMED.lock();
    armed.running += 1;
    if armed.running > 1 {
        return Running(());
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
                return Running(());
            }
        }
    }
    arm(&mut armed.installed);
    if armed.check.is_none() {
        // Up to half a period early where a run's tick wakes the thread anyway: checked every
        // 15 to 30 s, and at the default measure_power_secs with no wake-up of its own.
        let period = Duration::from_millis(SLOW_REARM_PERIOD_MS);
        match crate::sampler::Sampler::register_with_slack(period, period / 2, rearm) {
            Ok(check) => armed.check = Some(check),
            Err(err) => log::debug!("no periodic SIGTERM/SIGHUP check: {err}"),
        }
    }
    Running(())
}

/// Installs our handler again where a framework put the default back under a running run, and
/// has the watcher poll often while a framework's handler holds a signal that was ours.
/// Two `sigaction` queries (0.3 µs each here) when nothing changed: called where a window
/// opens, at `flush()` and `stop()`, not where one closes, so an epoch boundary pays it once.
pub(crate) fn rearm() {
    let ours = ours();
    let (mut default, mut foreign) = (false, false);
    for signal in SIGNALS {
        match handler_of(signal) {
            Some(libc::SIG_DFL) => default = true,
            Some(handler) if handler != ours && handler != libc::SIG_IGN => foreign = true,
            _ => {}
        }
    }
    if !default && !foreign {
        return;
    }
    let mut armed = ARMED.lock();
    if armed.running == 0 || !armed.watcher {
        return;
    }
    if default {
        arm(&mut armed.installed);
    }
    if foreign && !POLLING_FAST.load(Ordering::SeqCst) && displaced(&armed.installed) {
        wake_watcher();
    }
}

/// Stops every running tracker, writing its rows: what the package's `atexit` hook calls.
pub(crate) fn stop_all() {
    let trackers: Vec<Arc<dyn Managed>> =
        TRACKERS.lock().iter().filter_map(Weak::upgrade).collect();
    for tracker in trackers {
        tracker.stop_running();
    }
}

fn ours() -> libc::sighandler_t {
    on_signal as *const () as libc::sighandler_t
}

/// `signal`'s handler now (`SIG_DFL`, `SIG_IGN` or a function); `None` if it cannot be read.
fn handler_of(signal: c_int) -> Option<libc::sighandler_t> {
    // SAFETY: a zeroed sigaction is a valid out-parameter of a query.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(signal, std::ptr::null(), &raw mut current) == 0)
            .then_some(current.sa_sigaction)
    }
}

/// Whether `signal`'s action is the default one.
fn is_default(signal: c_int) -> bool {
    handler_of(signal) == Some(libc::SIG_DFL)
}

/// Whether a handler other than ours now holds a signal ours was installed for: a framework's,
/// which it may later replace with the default it saved.
fn displaced(installed: &[c_int]) -> bool {
    installed.iter().any(|&signal| {
        handler_of(signal).is_some_and(|handler| {
            handler != ours() && handler != libc::SIG_DFL && handler != libc::SIG_IGN
        })
    })
}

/// Installs our handler for each signal whose action is the default one, noting it in
/// `installed`. Nothing once a signal is ending the process.
fn arm(installed: &mut Vec<c_int>) {
    for signal in SIGNALS {
        if ENDING.load(Ordering::SeqCst) || !is_default(signal) {
            continue;
        }
        // SAFETY: a zeroed sigaction with an empty mask is valid; `on_signal` is
        // async-signal-safe.
        let done = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ours();
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&raw mut action.sa_mask);
            libc::sigaction(signal, &raw const action, std::ptr::null_mut()) == 0
        };
        if done && !installed.contains(&signal) {
            installed.push(signal);
        }
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
                && current.sa_sigaction == ours()
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
    let byte = u8::try_from(signal).unwrap_or(WAKE);
    if byte != WAKE {
        send(byte);
    }
}

fn wake_watcher() {
    send(WAKE);
}

/// Writes `byte` to the watcher's pipe.
fn send(byte: u8) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
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

/// The watcher: ends the process on a signal's byte, and re-arms every [`REARM_PERIOD_MS`]
/// while a handler of ours is displaced; otherwise it sleeps until a byte comes (the sampler's
/// tick checks every [`SLOW_REARM_PERIOD_MS`]; a start never wakes it).
fn watch(read_fd: c_int) {
    // Its start and each wake-up are charged to the runs in progress (`crate::cost`).
    let mut account = crate::cost::ThreadAccount::default();
    loop {
        account.publish();
        let timeout_ms = if displaced(&ARMED.lock().installed) {
            REARM_PERIOD_MS
        } else {
            -1
        };
        POLLING_FAST.store(timeout_ms == REARM_PERIOD_MS, Ordering::SeqCst);
        let mut ready = libc::pollfd {
            fd: read_fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polls one valid pollfd.
        match unsafe { libc::poll(&raw mut ready, 1, timeout_ms) } {
            0 => rearm(),
            1.. => {
                let mut byte = WAKE;
                // SAFETY: reads one byte into a local; poll said one is there.
                match unsafe { libc::read(read_fd, (&raw mut byte).cast(), 1) } {
                    1 if byte != WAKE => end_process(c_int::from(byte)),
                    1 => {}
                    0 => return,
                    _ if interrupted() => {}
                    _ => return,
                }
            }
            _ if interrupted() => {}
            _ => return,
        }
    }
}

fn interrupted() -> bool {
    std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
}

/// Writes every running tracker's rows, waits (bounded) for stops under way on other threads,
/// then ends the process as `signal` would have.
fn end_process(signal: c_int) {
    ENDING.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + SIGNAL_STOP_WAIT;
    loop {
        // Again at each turn: a run started meanwhile is stopped too.
        stop_all();
        if ARMED.lock().running == 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
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
    ENDING.store(false, Ordering::SeqCst);
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
    // The parent's sampler thread was not copied: its registration is forgotten, not undone.
    std::mem::forget(armed.check.take());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_put_back_under_a_running_run_is_armed_again_at_the_next_check() {
        let ours = Some(ours());
        // Held for the whole test, so no other test's last stop gives the default back.
        let running = run_started();
        assert_eq!(handler_of(libc::SIGTERM), ours);
        // What Lightning's connector does after fit(): puts back the SIG_DFL Python reported.
        // SAFETY: setting a signal's action to the default.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
        assert_eq!(handler_of(libc::SIGTERM), Some(libc::SIG_DFL));
        rearm();
        assert_eq!(handler_of(libc::SIGTERM), ours);
        drop(running);
    }

    #[test]
    fn the_handlers_stay_between_runs_so_a_warm_start_installs_nothing() {
        let ours = Some(ours());
        drop(run_started());
        // Kept after the last run (no restore): the next start finds ours and only queries.
        assert_eq!(handler_of(libc::SIGTERM), ours);
        assert_eq!(handler_of(libc::SIGHUP), ours);
        let again = run_started();
        assert_eq!(handler_of(libc::SIGTERM), ours);
        // The periodic check rides on the sampler thread, registered once per process.
        assert!(ARMED.lock().check.is_some());
        drop(again);
    }
}
