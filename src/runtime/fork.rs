//! Process-wide locks that a `fork()` cannot leave held, and the at-fork handler that finds them.
//!
//! `fork()` copies only the forking thread: a lock another thread held is copied held, by a
//! thread the child does not have. Each process-wide lock is a [`ProcessLock`], which puts
//! itself in one registry the first time it is taken (a lock never taken cannot be held), with
//! what the child should do with its value: keep it, forget a handle on a thread it has no copy
//! of, or run a reset of the declaring module's. The handler, installed with the first
//! registration, walks that registry in the child: it releases every lock, then runs every
//! reset. Nobody keeps a list by hand.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, MutexGuard};

use super::locks::force_release;

/// What the forked child does with one registered lock.
trait AfterFork: Sync {
    /// Releases the lock if a thread that did not survive the fork held it.
    fn release(&self);
    /// Makes the value right for the child; runs once every registered lock is released, so a
    /// reset may take any of them.
    fn reset(&self);
}

/// One registered lock; leaked, as registered locks are statics and live as long as the process.
struct Node {
    entry: &'static dyn AfterFork,
    next: Option<&'static Node>,
}

/// The newest registration. A push is one store of the head under this lock, which the child
/// forces open first: a push that a fork interrupted leaves the list whole, without that node,
/// and the lock it was registering was not taken yet (it is taken only after it registered).
static REGISTRY: Mutex<Option<&'static Node>> = Mutex::new(None);

/// Whether `pthread_atfork` was called; set under [`REGISTRY`]'s lock.
static HANDLER: AtomicBool = AtomicBool::new(false);

/// A lock on process-wide state, released in a forked child if a vanished thread held it.
///
/// Declare it as a `static`; its first [`ProcessLock::lock`] registers it with the at-fork
/// handler. Like any lock here, hold it only for copies and swaps.
pub(crate) struct ProcessLock<T> {
    mutex: Mutex<T>,
    registered: AtomicBool,
    /// Run on the value in a forked child, after every lock is released; `None` keeps it.
    reset: Option<fn(&mut T)>,
}

impl<T: Send + 'static> ProcessLock<T> {
    /// A lock whose value a forked child keeps as copied.
    pub(crate) const fn new(value: T) -> Self {
        Self {
            mutex: Mutex::new(value),
            registered: AtomicBool::new(false),
            reset: None,
        }
    }

    /// A lock whose value a forked child passes to `reset` (on its only thread).
    pub(crate) const fn with_reset(value: T, reset: fn(&mut T)) -> Self {
        Self {
            mutex: Mutex::new(value),
            registered: AtomicBool::new(false),
            reset: Some(reset),
        }
    }

    /// Takes the lock, registering it with the at-fork handler first if this is its first use.
    pub(crate) fn lock(&'static self) -> MutexGuard<'static, T> {
        if !self.registered.load(Ordering::Acquire) {
            self.register();
        }
        self.mutex.lock()
    }

    #[cold]
    fn register(&'static self) {
        // Allocated before the registry's lock, so that lock covers only the pointer swaps.
        let node = Box::new(Node {
            entry: self,
            next: None,
        });
        let mut head = REGISTRY.lock();
        if self.registered.load(Ordering::Acquire) {
            // Another thread registered it meanwhile.
            drop(head);
            drop(node);
            return;
        }
        if !HANDLER.swap(true, Ordering::AcqRel) {
            install_handler();
        }
        let node = Box::leak(node);
        node.next = *head;
        *head = Some(node);
        self.registered.store(true, Ordering::Release);
    }
}

impl<T: Send + 'static> ProcessLock<Option<T>> {
    /// The process's handle on a background thread, spawned on first use. A forked child has
    /// no copy of the thread, so it forgets the handle (dropping it could wait on or signal
    /// the missing thread) and its first use spawns a thread of its own.
    pub(crate) const fn thread() -> Self {
        Self::with_reset(None, forget)
    }
}

fn forget<T>(slot: &mut Option<T>) {
    if let Some(copied) = slot.take() {
        std::mem::forget(copied);
    }
}

impl<T: Send> AfterFork for ProcessLock<T> {
    fn release(&self) {
        force_release(&self.mutex);
    }

    fn reset(&self) {
        if let Some(reset) = self.reset {
            reset(&mut self.mutex.lock());
        }
    }
}

#[cfg(all(unix, not(carbonmeter_portable)))]
fn install_handler() {
    // SAFETY: the handler is a plain function that lives as long as the process.
    let status = unsafe { libc::pthread_atfork(None, None, Some(in_forked_child)) };
    if status != 0 {
        log::debug!("pthread_atfork failed ({status}): a forked child may find locks held");
    }
}

/// No `fork()` here (Windows, or the portable build that checks that path): nothing to hook.
#[cfg(any(not(unix), carbonmeter_portable))]
fn install_handler() {}

/// Runs in the child right after `fork()`, on its only thread: whoever holds a lock now is
/// gone, so every registered lock is released before anything takes it, and then reset.
#[cfg(all(unix, not(carbonmeter_portable)))]
extern "C" fn in_forked_child() {
    force_release(&REGISTRY);
    let head = *REGISTRY.lock();
    let registered = || std::iter::successors(head, |node| node.next).map(|node| node.entry);
    for entry in registered() {
        entry.release();
    }
    for entry in registered() {
        entry.reset();
    }
}

#[cfg(all(test, unix, not(carbonmeter_portable)))]
mod tests {
    use std::sync::mpsc;
    use std::thread::JoinHandle;

    use super::*;

    /// Another thread holding `lock`'s lock until dropped.
    struct Held(Option<(mpsc::Sender<()>, JoinHandle<()>)>);

    fn hold<T: Send + 'static>(lock: &'static ProcessLock<T>) -> Held {
        let (held_tx, held_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let guard = lock.lock();
            held_tx.send(()).expect("send");
            done_rx.recv().expect("recv");
            drop(guard);
        });
        held_rx.recv().expect("held");
        Held(Some((done_tx, holder)))
    }

    impl Drop for Held {
        fn drop(&mut self) {
            if let Some((done, holder)) = self.0.take() {
                done.send(()).expect("send");
                holder.join().expect("join");
            }
        }
    }

    /// Forks; the child's exit status is 0 when it could take `lock` at once and `check`
    /// accepted its value, 1 when `check` did not, 2 when the lock was held.
    fn fork_and_check<T: Send + 'static>(
        lock: &'static ProcessLock<T>,
        check: impl FnOnce(&mut T) -> bool,
    ) -> i32 {
        // SAFETY: the child only tries a lock without waiting, reads its value and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let status = match lock.mutex.try_lock() {
                Some(mut value) => i32::from(!check(&mut value)),
                None => 2,
            };
            // SAFETY: ends the child without running the test harness's teardown.
            unsafe { libc::_exit(status) };
        }
        // A child stuck on a lock (in the at-fork handler itself, before fork() returns there)
        // fails the test instead of hanging it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut status = 0;
        // SAFETY: polls and, past the deadline, kills the child just forked.
        unsafe {
            while libc::waitpid(pid, &raw mut status, libc::WNOHANG) == 0 {
                if std::time::Instant::now() > deadline {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &raw mut status, 0);
                    panic!("the child hung on a lock held at the fork");
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        assert!(libc::WIFEXITED(status), "child ended by a signal: {status}");
        libc::WEXITSTATUS(status)
    }

    #[test]
    fn a_lock_held_at_fork_is_released_in_the_child() {
        static KEPT: ProcessLock<Vec<u32>> = ProcessLock::new(Vec::new());
        KEPT.lock().push(7);
        let held = hold(&KEPT);
        let status = fork_and_check(&KEPT, |value| *value == [7]);
        drop(held);
        assert_eq!(
            status, 0,
            "2: the child found the lock held; 1: the value changed"
        );
        assert_eq!(*KEPT.lock(), [7], "the parent's value is its own");
    }

    #[test]
    fn a_reset_runs_in_the_child_after_every_lock_is_released() {
        static OTHER: ProcessLock<u32> = ProcessLock::new(1);
        static RESET: ProcessLock<u32> = ProcessLock::with_reset(5, |value| {
            // Takes another registered lock, held too at the fork.
            *value = *OTHER.lock() + 10;
        });
        // RESET registered last, so walked first: its reset takes OTHER, released only if
        // every lock is released before any reset runs.
        let held = (hold(&OTHER), hold(&RESET));
        let status = fork_and_check(&RESET, |value| *value == 11);
        drop(held);
        assert_eq!(
            status, 0,
            "2: the child found the lock held; 1: no reset ran"
        );
        assert_eq!(*RESET.lock(), 5, "the parent's value is its own");
    }

    #[test]
    fn a_thread_handle_is_forgotten_in_the_child() {
        static THREAD: ProcessLock<Option<std::sync::Arc<u32>>> = ProcessLock::thread();
        *THREAD.lock() = Some(std::sync::Arc::new(3));
        let held = hold(&THREAD);
        let status = fork_and_check(&THREAD, |slot| slot.is_none());
        drop(held);
        assert_eq!(
            status, 0,
            "2: the child found the lock held; 1: it kept the handle"
        );
        assert_eq!(THREAD.lock().as_deref(), Some(&3));
    }
}
