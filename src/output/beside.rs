//! The files a CSV writer makes beside the CSV: backups of files it sets aside, and the
//! temporary files update mode rewrites through (named with the writer's pid, so a later writer
//! can tell those of writers killed mid-rewrite and remove them).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A name of this write's own beside `path`: processes rewriting one file never share one.
pub(super) fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    PathBuf::from(name)
}

/// The pid of the writer that made `candidate`, when it is a temporary file of a rewrite of the
/// file called `name` (`{name}.{pid}.{uuid}.tmp`, as [`temporary_path`] makes them).
fn temporary_writer(name: &OsStr, candidate: &OsStr) -> Option<u32> {
    let rest = candidate
        .as_bytes()
        .strip_prefix(name.as_bytes())?
        .strip_prefix(b".")?
        .strip_suffix(b".tmp")?;
    let (pid, id) = std::str::from_utf8(rest).ok()?.split_once('.')?;
    let hyphenated = id.len() == uuid::fmt::Hyphenated::LENGTH;
    if !hyphenated || uuid::Uuid::parse_str(id).is_err() {
        return None;
    }
    pid.parse().ok()
}

/// Whether a process `pid` exists in this pid namespace (ours or another user's).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 sends nothing; the call only checks that the process exists.
    let status = unsafe { libc::kill(pid, 0) };
    status == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes the temporary files of rewrites of `path` whose writer is gone: a writer killed
/// between making its temporary file and renaming it over `path` leaves it behind (16 to 28 of
/// 40 kills left one, up to 7.6 MB in all). Called with `path` locked, when no rewrite of it is
/// under way in any process that locks it; the pid in the name is checked too, so a file whose
/// writer still runs (in this pid namespace) is left alone, and this process's own are removed
/// (a process given the pid of one killed earlier, as a container's first process is).
pub(super) fn remove_stale_temporaries(path: &Path) {
    let (Some(folder), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let own = std::process::id();
    let (mut removed, mut removed_bytes) = (0_u32, 0_u64);
    for entry in entries.flatten() {
        let Some(pid) = temporary_writer(name, &entry.file_name()) else {
            continue;
        };
        if pid != own && alive(pid) {
            continue;
        }
        let bytes = entry.metadata().map_or(0, |metadata| metadata.len());
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {
                removed += 1;
                removed_bytes += bytes;
            }
            Err(err) => log::debug!("cannot remove {}: {err}", entry.path().display()),
        }
    }
    if removed > 0 {
        log::info!(
            "{}: removed {removed} temporary files ({removed_bytes} bytes) of rewrites whose \
             writer was killed",
            path.display()
        );
    }
}

/// Where a file set aside goes, as CodeCarbon names it: `emissions.csv.bak`, then
/// `emissions.csv_0.bak`, ... (a name not yet taken).
pub(super) fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".bak");
    let first = PathBuf::from(name);
    if !first.exists() {
        return first;
    }
    (0_u32..u32::MAX)
        .map(|index| {
            let mut name = path.as_os_str().to_owned();
            name.push(format!("_{index}.bak"));
            PathBuf::from(name)
        })
        .find(|candidate| !candidate.exists())
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

    #[test]
    fn only_our_files_temporary_names_give_a_writer() {
        let name = OsStr::new("emissions.csv");
        let writer = |candidate: &str| temporary_writer(name, OsStr::new(candidate));
        assert_eq!(writer(&format!("emissions.csv.4242.{ID}.tmp")), Some(4242));
        let made = temporary_path(Path::new("emissions.csv"));
        assert_eq!(
            writer(&made.display().to_string()),
            Some(std::process::id())
        );
        for other in [
            format!("other.csv.4242.{ID}.tmp"),
            format!("emissions.csv.4242.{ID}"),
            "emissions.csv.4242.not-a-uuid.tmp".to_owned(),
            format!("emissions.csv.x.{ID}.tmp"),
            "emissions.csv.bak".to_owned(),
            "emissions.csv".to_owned(),
        ] {
            assert_eq!(writer(&other), None, "{other}");
        }
    }

    #[test]
    fn temporaries_of_gone_writers_and_our_own_are_removed_a_live_writers_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("emissions.csv");
        std::fs::write(&path, "rows").expect("seed");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        child.wait().expect("wait");
        let (gone, ours, live) = (
            child.id(),
            std::process::id(),
            std::os::unix::process::parent_id(),
        );
        let temporary = |pid: u32| dir.path().join(format!("emissions.csv.{pid}.{ID}.tmp"));
        let other = dir.path().join(format!("other.csv.{gone}.{ID}.tmp"));
        for file in [
            temporary(gone),
            temporary(ours),
            temporary(live),
            other.clone(),
        ] {
            std::fs::write(file, "half a rewrite").expect("seed");
        }
        remove_stale_temporaries(&path);
        assert!(!temporary(gone).exists());
        assert!(!temporary(ours).exists());
        assert!(temporary(live).exists());
        assert!(other.exists());
        assert!(path.exists());
    }
}
