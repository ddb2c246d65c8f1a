//! Releasing a lock in a forked child, where the thread that held it no longer exists.

use parking_lot::Mutex;

/// Releases `mutex` if a thread that did not survive the fork held it.
pub(crate) fn force_release<T>(mutex: &Mutex<T>) {
    if mutex.is_locked() {
        // SAFETY: called only in a forked child's at-fork handler, where the one thread
        // running is this one, which holds none of our locks: the holder is gone.
        unsafe { mutex.force_unlock(parking_lot::lock_api::GuardNoSend::new()) };
    }
}
