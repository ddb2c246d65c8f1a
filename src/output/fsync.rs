//! The fsync that makes rows survive power loss, off the writer's path: one thread per
//! process gathers the files written within half a second and syncs each once.

use std::fs::File;
use std::sync::Arc;

use crate::runtime::ProcessLock;

/// Files written since the fsync thread last looked, one descriptor per file (device and
/// inode), and its wake-up.
struct Syncs {
    files: crate::runtime::locks::Mutex<Vec<Queued>>,
    ready: crate::runtime::locks::Condvar,
}

/// A file waiting for its fsync: its device and inode, and one descriptor open on it.
type Queued = ((u64, u64), Arc<File>);

/// The process's fsync thread, spawned by the first row; `None` again in a forked child (whose
/// first row spawns its own).
static SYNCER: ProcessLock<Option<std::sync::Arc<Syncs>>> = ProcessLock::thread();

/// Queues `file` (device and inode `id`) unless a descriptor of the same file already waits:
/// an fsync covers the file, whichever descriptor it is made through, so one is enough. Rows
/// to more files than are kept open reopen their file for every row, and keeping each of those
/// descriptors for the gathering half second held one per row (1,018 at 2,000 rows/s across
/// five files), enough to make the user's own `open()` fail under `ulimit -n 1024`. Returns
/// whether the queue was empty (the thread asleep) before.
fn enqueue(files: &mut Vec<Queued>, id: (u64, u64), file: Arc<File>) -> bool {
    let asleep = files.is_empty();
    if !files.iter().any(|(queued, _)| *queued == id) {
        files.push((id, file));
    }
    asleep
}

pub(super) fn sync_in_background(id: (u64, u64), file: Arc<File>) {
    // A failure here loses nothing a kill would: the data is already with the OS.
    let syncs = {
        let mut process = SYNCER.lock();
        if let Some(syncs) = process.as_ref() {
            std::sync::Arc::clone(syncs)
        } else {
            let syncs = std::sync::Arc::new(Syncs {
                files: crate::runtime::locks::Mutex::new(Vec::new()),
                ready: crate::runtime::locks::Condvar::new(),
            });
            let served = std::sync::Arc::clone(&syncs);
            if let Err(err) = crate::runtime::spawn("fsync", move || sync_forever(&served)) {
                log::debug!("no fsync thread: {err}");
                return;
            }
            *process = Some(std::sync::Arc::clone(&syncs));
            syncs
        }
    };
    let mut files = syncs.files.lock();
    // Not empty: the thread is awake, gathering.
    let asleep = enqueue(&mut files, id, file);
    drop(files);
    if asleep {
        syncs.ready.notify_all();
    }
}

/// How long the fsync thread gathers rows before it syncs them: rows written in a burst (epoch
/// and window edges) are synced together, and none is appended to a page the kernel is writing
/// back for the last fsync, which on a block device with stable pages waits for it.
const FSYNC_GATHER: std::time::Duration = std::time::Duration::from_millis(500);

fn sync_forever(syncs: &Syncs) {
    loop {
        {
            let mut files = syncs.files.lock();
            while files.is_empty() {
                files = syncs.ready.wait(files);
            }
        }
        std::thread::sleep(FSYNC_GATHER);
        let files = std::mem::take(&mut *syncs.files.lock());
        // One fsync per file covers every row written to it before the fsync began.
        for (_, file) in files {
            let _ = file.sync_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_reopened_for_every_row_waits_with_one_descriptor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = [dir.path().join("a.csv"), dir.path().join("b.csv")];
        let mut files = Vec::new();
        let mut asleep = Vec::new();
        for row in 0..100_u64 {
            let path = &paths[usize::from(row % 2 == 1)];
            let file = File::create(path).expect("open");
            let metadata = file.metadata().expect("metadata");
            let id = (
                std::os::unix::fs::MetadataExt::dev(&metadata),
                std::os::unix::fs::MetadataExt::ino(&metadata),
            );
            asleep.push(enqueue(&mut files, id, Arc::new(file)));
        }
        // 100 descriptors opened, two kept: one per file.
        assert_eq!(files.len(), 2);
        assert_eq!(asleep.iter().filter(|woke| **woke).count(), 1);
    }
}
