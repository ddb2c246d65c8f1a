//! Warnings that are said once per process per cause, however many trackers run into them.

use std::collections::HashSet;
use std::sync::LazyLock;

use parking_lot::Mutex;

static SAID: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// Logs `message` as a warning unless this process already logged it.
pub fn warn_once(message: &str) {
    if SAID.lock().insert(message.to_owned()) {
        log::warn!(target: "carbonmeter", "{message}");
    }
}

/// In a forked child: releases the lock a logging thread of the parent held.
pub(crate) fn release_after_fork() {
    crate::locks::force_release(&SAID);
}

/// Logs `message` at info level unless this process already logged it.
pub fn info_once(message: &str) {
    if SAID.lock().insert(message.to_owned()) {
        log::info!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_remembered() {
        warn_once("once-test");
        assert!(SAID.lock().contains("once-test"));
        assert!(!SAID.lock().insert("once-test".to_owned()));
    }
}
