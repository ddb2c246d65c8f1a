//! Locks that survive `fork()`: releasing a lock in a forked child, where the thread that held
//! it no longer exists (for a run's own locks; process-wide ones are [`super::ProcessLock`]s),
//! and the mutex and condvar that background threads wait on.

use std::sync::PoisonError;
use std::time::Instant;

/// Releases `mutex` if a thread that did not survive the fork held it.
pub(crate) fn force_release<T>(mutex: &parking_lot::Mutex<T>) {
    if mutex.is_locked() {
        // SAFETY: called only in a forked child's at-fork handler, where the one thread
        // running is this one, which holds none of our locks: the holder is gone.
        unsafe { mutex.force_unlock(parking_lot::lock_api::GuardNoSend::new()) };
    }
}

/// A mutex for state that threads wait on together with a [`Condvar`]: std's, whose futex lives
/// in the mutex itself. parking_lot parks a waiting thread in one process-wide table whose bucket
/// locks a `fork()` can copy held; a sampler ticking in the parent parks every period, and a
/// forked child that then waited on a condvar of its own hung on such a bucket (1 run in 6 of
/// the fork-method pool test). Poison is ignored: nothing here panics while holding the lock.
#[derive(Debug, Default)]
#[expect(
    clippy::disallowed_types,
    reason = "the one fork-safe wrapper of std's mutex"
)]
pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

/// A guard of [`Mutex`].
pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    #[expect(
        clippy::disallowed_types,
        reason = "the one fork-safe wrapper of std's mutex"
    )]
    pub(crate) const fn new(value: T) -> Self {
        Self(std::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A condvar for [`Mutex`], fork-safe for the same reason.
#[derive(Debug, Default)]
pub(crate) struct Condvar(std::sync::Condvar);

impl Condvar {
    pub(crate) const fn new() -> Self {
        Self(std::sync::Condvar::new())
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }

    /// Waits for a notification (or a spurious wake-up).
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a notification until `deadline`; `true` with the guard when the deadline passed.
    pub(crate) fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Instant,
    ) -> (MutexGuard<'a, T>, bool) {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return (guard, true);
        };
        let (guard, _) = self
            .0
            .wait_timeout(guard, left)
            .unwrap_or_else(PoisonError::into_inner);
        (guard, Instant::now() >= deadline)
    }
}
