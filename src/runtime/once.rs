//! Warnings said once per cause: a full disk says so once, not once per row.
//!
//! [`Causes`] is the one record of what was said, kept by whoever decides the scope: the
//! process ([`warn_once`], also Python's through `_core._warn_once`), one meter, one exporter,
//! one CSV file or one run.

use std::collections::BTreeSet;

use super::ProcessLock;

/// Causes already said.
#[derive(Debug, Default)]
pub(crate) struct Causes(BTreeSet<String>);

impl Causes {
    /// Nothing said yet.
    pub(crate) const fn new() -> Self {
        Self(BTreeSet::new())
    }

    /// Whether `cause` is said for the first time here; remembers it.
    pub(crate) fn first(&mut self, cause: &str) -> bool {
        !self.0.contains(cause) && self.0.insert(cause.to_owned())
    }
}

/// What this process said, however many trackers ran into it; a child keeps what its parent
/// said.
static SAID: ProcessLock<Causes> = ProcessLock::new(Causes::new());

/// Logs `message` as a warning unless this process already logged it.
pub fn warn_once(message: &str) {
    warn_once_for(message, message);
}

/// Logs `message` as a warning unless this process already said something for `cause`.
/// Returns whether it logged.
pub fn warn_once_for(cause: &str, message: &str) -> bool {
    let first = SAID.lock().first(cause);
    if first {
        log::warn!(target: "carbonmeter", "{message}");
    }
    first
}

/// Logs `message` at info level unless this process already logged it.
pub fn info_once(message: &str) {
    let first = SAID.lock().first(message);
    if first {
        log::info!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_remembered() {
        warn_once("once-test");
        assert!(SAID.lock().0.contains("once-test"));
        assert!(!SAID.lock().first("once-test"));
    }

    #[test]
    fn a_cause_is_said_once_whatever_its_message() {
        assert!(warn_once_for("once-test-cause", "first"));
        assert!(!warn_once_for("once-test-cause", "second"));
    }

    #[test]
    fn each_keeper_has_its_own_causes() {
        let (mut one, mut other) = (Causes::new(), Causes::new());
        assert!(one.first("disk full"));
        assert!(!one.first("disk full"));
        assert!(other.first("disk full"));
    }
}
