//! CodeCarbon's API rules that carbonmeter keeps: task names for `start_task`/`stop_task`, and
//! the location an `OfflineEmissionsTracker` must be given.

use crate::error::{Error, Result};
use crate::run::Tracker;

impl Tracker {
    /// The window CodeCarbon's `start_task(task_name)` opens: the name given, or a unique one,
    /// as CodeCarbon names an unnamed task.
    pub fn task_name(task_name: Option<String>) -> String {
        task_name.unwrap_or_else(|| format!("task-{}", uuid::Uuid::new_v4()))
    }

    /// The window CodeCarbon's `stop_task(task_name)` closes: the one named, else the last one
    /// opened; `None`, warned with CodeCarbon's words, when no window is open.
    pub fn task_to_stop(&self, task_name: Option<String>) -> Option<String> {
        let name = task_name.or_else(|| self.open_windows().pop());
        if name.is_none() {
            log::warn!("stop_task : No active task to stop.");
        }
        name
    }

    /// The rule of CodeCarbon's `OfflineEmissionsTracker`, which never goes online to locate a
    /// run: a location must be set (`country_iso_code`, `region` or
    /// `cloud_provider`/`cloud_region`, from an argument, the environment or the config file),
    /// so the emissions use that grid and not the world average nor a time-zone guess.
    pub fn require_set_location(&self) -> Result<()> {
        let source = self.location_source();
        if source == "none" || source.starts_with("timezone:") {
            return Err(Error::invalid(
                "country_iso_code",
                "None",
                "OfflineEmissionsTracker needs the country of the grid, e.g. \
                 country_iso_code=\"FRA\" (or CARBONMETER_COUNTRY_ISO_CODE)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unnamed_task_gets_a_unique_name_and_a_named_one_keeps_it() {
        let first = Tracker::task_name(None);
        assert!(first.starts_with("task-"), "{first}");
        assert_ne!(first, Tracker::task_name(None));
        assert_eq!(Tracker::task_name(Some("load".to_owned())), "load");
    }
}
