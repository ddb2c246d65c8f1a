//! Appends rows to `emissions.csv` so that a crash or a kill loses nothing already returned.
//!
//! Each row is encoded in memory and handed to the OS in one `write` on a file opened for
//! append before the call returns: a killed process leaves every row it reported, whole. The
//! fsync that also survives power loss runs on one thread of the process, off the caller's
//! path, batched: rows written within half a second are synced together, once per file.
//!
//! Every write holds an exclusive `flock` on the file, so processes sharing it write one header
//! and whole rows: a fragment a dead writer left at the end is cut before the next row, and a
//! write that fails part-way is cut back.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::row::{EmissionsRow, columns};
use crate::error::{Error, Result};
use crate::runtime::{Causes, ProcessLock};

/// What to do with the row of a run already in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Add a row per `flush()` / `stop()` (CodeCarbon's default).
    #[default]
    Append,
    /// Keep one row per run, replaced on each write.
    Update,
}

// Trackers in one process serialise here before taking the file lock: `flock` excludes other
// processes, and this keeps two threads of one process from contending through the kernel.
static FILE_LOCK: ProcessLock<()> = ProcessLock::new(());

/// How many times a write reopens the file when another process renamed it between our open
/// and our lock (update mode, a foreign file set aside) before giving up on this row.
const REOPEN_ATTEMPTS: u32 = 16;

/// Writes [`EmissionsRow`]s to one CSV file.
#[derive(Debug)]
pub struct CsvSink {
    path: PathBuf,
    mode: WriteMode,
    // Causes of failed writes already reported: a full disk says so once, not once per row.
    reported: Mutex<Causes>,
    /// The buffer rows are encoded into, reused from row to row (taken out while a row is
    /// written, so the lock is held only for the swap; a second writer meanwhile makes its own).
    encoded: Mutex<Vec<u8>>,
}

fn header_line() -> &'static str {
    static HEADER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HEADER.get_or_init(|| {
        let mut line = columns().join(",");
        line.push('\n');
        line
    })
}

/// Encodes `row` into `buffer`, emptied first.
fn encode(buffer: &mut Vec<u8>, path: &Path, row: &EmissionsRow) -> Result<()> {
    buffer.clear();
    // A small staging buffer: the encoder's default is 8 KiB, allocated per row.
    let mut writer = ::csv::WriterBuilder::new()
        .has_headers(false)
        .buffer_capacity(256)
        .from_writer(&mut *buffer);
    let csv_error = |source| Error::Csv {
        path: path.to_owned(),
        source,
    };
    writer.serialize(row).map_err(csv_error)?;
    writer.flush().map_err(|err| Error::io(path, err))
}

/// `path` exists and is not a regular file (a FIFO would block the write, a device or a folder
/// would take rows it cannot keep).
fn not_regular(path: &Path, file_type: std::fs::FileType) -> Error {
    let kind = if file_type.is_dir() {
        "a folder"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Error::invalid(
        "output_file",
        format!("{:?} ({kind})", path.display().to_string()),
        "expected a regular file or a name not yet taken",
    )
}

/// A file this process appended a row to, kept open for the next row: a row then costs the
/// lock, a check that the path still names the file, its length and the write, where opening
/// it again cost six more system calls.
struct Kept {
    path: PathBuf,
    file: Arc<File>,
    /// Its device and inode.
    id: (u64, u64),
    /// The file's length just after our last row: the same length at the next row means no
    /// other writer came in between, so the header and the last row are still ours and whole.
    end: u64,
}

/// Files kept open, newest last: as many as runs of one process commonly write to. A forked
/// child closes its copies: a `flock` belongs to the open file, which a copied descriptor
/// shares with the parent, so the child locking it would not exclude the parent.
static KEPT: ProcessLock<Vec<Kept>> = ProcessLock::with_reset(Vec::new(), Vec::clear);
const KEPT_FILES: usize = 4;

/// The file at `path`, opened for appending and locked against every other writer, in this
/// process and others. The lock is on the inode: one renamed away while we waited is reopened.
/// Dropping it releases the `flock` (a kept file is not closed, which would release it).
struct Locked {
    file: Arc<File>,
    /// The file's device and inode, which the path named once it was locked.
    id: (u64, u64),
    len: u64,
    /// The length our own last row left, when the file was kept open from it.
    our_end: Option<u64>,
    _guard: parking_lot::MutexGuard<'static, ()>,
}

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl Locked {
    fn open(path: &Path) -> Result<Self> {
        let guard = FILE_LOCK.lock();
        let kept = {
            let mut kept = KEPT.lock();
            kept.iter()
                .position(|kept| kept.path == path)
                .map(|index| kept.remove(index))
        };
        if let Some(kept) = kept
            && kept.file.lock().is_ok()
        {
            // The path's length is the file's: it names the same inode, and every writer that
            // could change it takes the lock we hold.
            let still_there = std::fs::metadata(path)
                .ok()
                .filter(|now| now.file_type().is_file() && (now.dev(), now.ino()) == kept.id);
            if let Some(now) = still_there {
                return Ok(Self {
                    file: kept.file,
                    id: kept.id,
                    len: now.len(),
                    our_end: Some(kept.end),
                    _guard: guard,
                });
            }
            let _ = kept.file.unlock();
        }
        for _ in 0..REOPEN_ATTEMPTS {
            if let Ok(metadata) = std::fs::metadata(path)
                && !metadata.file_type().is_file()
            {
                return Err(not_regular(path, metadata.file_type()));
            }
            // Non-blocking, so a FIFO put there after the check above cannot stall the open.
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(path)
                .map_err(|err| Error::io(path, err))?;
            let opened = file.metadata().map_err(|err| Error::io(path, err))?;
            if !opened.file_type().is_file() {
                return Err(not_regular(path, opened.file_type()));
            }
            file.lock().map_err(|err| Error::io(path, err))?;
            let still_there = std::fs::metadata(path)
                .is_ok_and(|now| now.ino() == opened.ino() && now.dev() == opened.dev());
            if still_there {
                let len = file.metadata().map_err(|err| Error::io(path, err))?.len();
                return Ok(Self {
                    file: Arc::new(file),
                    id: (opened.dev(), opened.ino()),
                    len,
                    our_end: None,
                    _guard: guard,
                });
            }
        }
        Err(Error::io(
            path,
            std::io::Error::other("replaced by other processes faster than it could be locked"),
        ))
    }

    /// Keeps the file open for the next row, which ends it at `end`.
    fn keep(&self, path: &Path, end: u64) {
        let mut kept = KEPT.lock();
        if kept.len() >= KEPT_FILES {
            kept.remove(0);
        }
        kept.push(Kept {
            path: path.to_owned(),
            file: Arc::clone(&self.file),
            id: self.id,
            end,
        });
    }

    fn read_at(&self, offset: u64, length: usize) -> std::io::Result<Vec<u8>> {
        let mut buffer = vec![0; length];
        let mut filled = 0;
        while filled < length {
            let read = self
                .file
                .read_at(&mut buffer[filled..], offset + filled as u64)?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        buffer.truncate(filled);
        Ok(buffer)
    }

    /// Offset just past the last newline, 0 when there is none.
    fn end_of_last_line(&self) -> std::io::Result<u64> {
        const CHUNK: u64 = 8192;
        // The common case, a file ending on a whole row: one byte read, not a chunk.
        if self.len > 0 && self.read_at(self.len - 1, 1)? == b"\n" {
            return Ok(self.len);
        }
        let mut end = self.len;
        while end > 0 {
            let start = end.saturating_sub(CHUNK);
            let chunk = self.read_at(start, (end - start) as usize)?;
            if let Some(position) = chunk.iter().rposition(|byte| *byte == b'\n') {
                return Ok(start + position as u64 + 1);
            }
            end = start;
        }
        Ok(0)
    }
}

/// What the file at the path holds, as far as appending to it goes.
enum Contents {
    /// Nothing, or only a torn header of ours: write the header first.
    Empty,
    /// Our header: append.
    Ours,
    /// Another header: set aside.
    Foreign,
}

fn contents(locked: &Locked) -> std::io::Result<Contents> {
    if locked.len == 0 {
        return Ok(Contents::Empty);
    }
    let header = header_line();
    let start = locked.read_at(0, header.len())?;
    if start == header.as_bytes() {
        return Ok(Contents::Ours);
    }
    // A writer killed inside the header (or a disk full there) leaves a prefix of it alone.
    let torn_header = !start.contains(&b'\n')
        && locked.len == start.len() as u64
        && header.as_bytes().starts_with(&start);
    Ok(if torn_header {
        Contents::Empty
    } else {
        Contents::Foreign
    })
}

impl CsvSink {
    /// A sink for `path`. Refuses now what would fail every write: a folder that does not
    /// exist or cannot be written, and a path that is not a regular file (a FIFO, a folder).
    pub fn new(path: PathBuf, mode: WriteMode) -> Result<Self> {
        match std::fs::metadata(&path) {
            Ok(metadata) if !metadata.file_type().is_file() => {
                return Err(not_regular(&path, metadata.file_type()));
            }
            Ok(_) => check_writable(&path, "output_file")?,
            Err(_) => {
                let folder = match path.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => Path::new("."),
                };
                check_writable(folder, "output_dir")?;
            }
        }
        Ok(Self {
            path,
            mode,
            reported: Mutex::new(Causes::new()),
            encoded: Mutex::new(Vec::new()),
        })
    }

    /// The file written.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `row`; returns once the OS has it.
    pub fn write(&self, row: &EmissionsRow) -> Result<()> {
        // A text cell that a spreadsheet would run as a formula gets a `'` (see `formula`).
        let row = row.for_spreadsheets();
        let mut encoded = std::mem::take(&mut *self.encoded.lock());
        let written = encode(&mut encoded, &self.path, &row).and_then(|()| match self.mode {
            WriteMode::Append => self.append(&encoded),
            WriteMode::Update => self.replace_run(&row.run_id, &encoded),
        });
        *self.encoded.lock() = encoded;
        written
    }

    /// Writes `row` and logs a failure as an error once per cause: losing the file must not
    /// lose the user's training, nor flood their log with one line per row.
    pub fn write_or_report(&self, row: &EmissionsRow) {
        if let Err(err) = self.write(row) {
            let cause = match &err {
                Error::Io { source, .. } => format!("{:?}", source.kind()),
                other => other.to_string(),
            };
            let first = self.reported.lock().first(&cause);
            if first {
                log::error!(
                    "could not write the emissions row: {err} (said once per cause; rows are \
                     still returned)"
                );
            }
        }
    }

    fn append(&self, encoded: &[u8]) -> Result<()> {
        let io_error = |err| Error::io(&self.path, err);
        let mut locked = Locked::open(&self.path)?;
        if locked.our_end == Some(locked.len) {
            return self.write_locked(&locked, encoded);
        }
        match contents(&locked).map_err(io_error)? {
            Contents::Foreign => {
                self.set_aside("has another header (not written by this carbonmeter version)")?;
                drop(locked);
                locked = Locked::open(&self.path)?;
            }
            Contents::Empty if locked.len > 0 => {
                locked.file.set_len(0).map_err(io_error)?;
                locked.len = 0;
            }
            Contents::Empty | Contents::Ours => {}
        }
        // Writes happen under the lock and one row is one write, so bytes after the last
        // newline are a row torn by a writer that died or ran out of disk: nobody was handed
        // it, and appending after it would merge the next row into it.
        let whole_len = locked.end_of_last_line().map_err(io_error)?;
        if whole_len < locked.len {
            log::warn!(
                "{}: cut {} bytes of a row torn by an earlier writer",
                self.path.display(),
                locked.len - whole_len
            );
            locked.file.set_len(whole_len).map_err(io_error)?;
            locked.len = whole_len;
        }
        self.write_locked(&locked, encoded)
    }

    /// Appends `encoded` (after the header, to an empty file) to the locked file, which ends
    /// on a whole row of ours.
    fn write_locked(&self, locked: &Locked, encoded: &[u8]) -> Result<()> {
        // One write either way: a header and its first row are never torn apart by a kill.
        let with_header;
        let bytes = if locked.len == 0 {
            with_header = [header_line().as_bytes(), encoded].concat();
            &with_header
        } else {
            encoded
        };
        if let Err(err) = (&*locked.file).write_all(bytes) {
            // A full disk leaves part of the row: cut it, so the file ends on a whole row.
            let _ = locked.file.set_len(locked.len);
            return Err(Error::io(&self.path, err));
        }
        locked.keep(&self.path, locked.len + bytes.len() as u64);
        super::fsync::sync_in_background(locked.id, Arc::clone(&locked.file));
        Ok(())
    }

    /// Rewrites the file with this run's rows replaced by `encoded` (or it appended), through a
    /// temporary file of this process renamed over the old one while the old one is locked, so
    /// a crash leaves either file whole and no process's rewrite undoes another's.
    fn replace_run(&self, run_id: &str, encoded: &[u8]) -> Result<()> {
        let mut locked = Locked::open(&self.path)?;
        let existing = loop {
            let set_aside = match contents(&locked).map_err(|err| Error::io(&self.path, err))? {
                Contents::Ours => match self.other_runs(&locked.file, run_id, encoded) {
                    Ok(rows) => break Some(rows),
                    // One bad line would otherwise fail every later write of every run.
                    Err(err) => format!("cannot be read back ({err})"),
                },
                Contents::Foreign => {
                    "has another header (not written by this carbonmeter version)".to_owned()
                }
                Contents::Empty => break None,
            };
            self.set_aside(&set_aside)?;
            // The lock went with the old file: lock whatever is at the path now.
            drop(locked);
            locked = Locked::open(&self.path)?;
        };
        let mut output = header_line().as_bytes().to_vec();
        output.extend_from_slice(&existing.unwrap_or_else(|| encoded.to_vec()));
        // Under the lock: no rewrite of this file is under way, so a temporary file of a writer
        // that is gone is one it was killed in.
        super::beside::remove_stale_temporaries(&self.path);
        let temporary = super::beside::temporary_path(&self.path);
        let written = File::create(&temporary).and_then(|mut file| {
            file.write_all(&output)?;
            file.sync_data()
        });
        if let Err(err) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(Error::io(&temporary, err));
        }
        // Renamed while the old file is still locked: a process waiting on it finds the
        // path changed when it gets the lock, and reads the new file instead.
        let renamed = std::fs::rename(&temporary, &self.path);
        drop(locked);
        renamed.map_err(|err| {
            let _ = std::fs::remove_file(&temporary);
            Error::io(&self.path, err)
        })
    }

    /// The rows of the file with this run's replaced by `encoded` (appended if it had none).
    fn other_runs(&self, file: &File, run_id: &str, encoded: &[u8]) -> Result<Vec<u8>> {
        let csv_error = |source| Error::Csv {
            path: self.path.clone(),
            source,
        };
        let run_id_column = columns().iter().position(|c| *c == "run_id").unwrap_or(2);
        let mut output = Vec::new();
        let mut replaced = false;
        let mut reader = ::csv::Reader::from_reader(file);
        for record in reader.records() {
            let record = record.map_err(csv_error)?;
            if record.get(run_id_column) != Some(run_id) {
                let mut writer = ::csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(Vec::new());
                writer.write_record(&record).map_err(csv_error)?;
                let line = writer
                    .into_inner()
                    .map_err(|err| Error::io(&self.path, err.into_error()))?;
                output.extend_from_slice(&line);
            } else if !replaced {
                output.extend_from_slice(encoded);
                replaced = true;
            }
        }
        if !replaced {
            output.extend_from_slice(encoded);
        }
        Ok(output)
    }

    /// Renames the file aside as CodeCarbon does (`emissions.csv.bak`, then
    /// `emissions.csv_0.bak`, ...): nothing is overwritten. Called with the file locked.
    fn set_aside(&self, why: &str) -> Result<()> {
        let backup = super::beside::backup_path(&self.path);
        log::warn!(
            "{} {why}: renamed to {}, starting a new file",
            self.path.display(),
            backup.display()
        );
        std::fs::rename(&self.path, &backup).map_err(|err| Error::io(&self.path, err))
    }
}

/// Refuses a folder or file this process cannot write (a read-only mount, no permission).
fn check_writable(path: &Path, setting: &str) -> Result<()> {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return Err(Error::invalid(
            setting,
            format!("{:?}", path.display().to_string()),
            "expected a path without NUL bytes",
        ));
    };
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::access(c_path.as_ptr(), libc::W_OK) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    Err(Error::invalid(
        setting,
        format!("{:?}", path.display().to_string()),
        format!("expected a location this process can write ({err})"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run_id: &str, duration: f64) -> EmissionsRow {
        EmissionsRow {
            run_id: run_id.to_owned(),
            duration,
            project_name: "p, with \"quotes\"".to_owned(),
            ..EmissionsRow::default()
        }
    }

    fn read_rows(path: &Path) -> Vec<::csv::StringRecord> {
        ::csv::Reader::from_path(path)
            .expect("open")
            .records()
            .map(|r| r.expect("record"))
            .collect()
    }

    #[test]
    fn appends_one_row_per_write_under_one_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = CsvSink::new(dir.path().join("emissions.csv"), WriteMode::Append).expect("sink");
        sink.write(&row("a", 1.0)).expect("write");
        sink.write(&row("a", 2.0)).expect("write");
        let rows = read_rows(sink.path());
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[1][4], "2.0");
        assert_eq!(&rows[1][1], "p, with \"quotes\"");
    }

    #[test]
    fn update_keeps_one_row_per_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = CsvSink::new(dir.path().join("emissions.csv"), WriteMode::Update).expect("sink");
        sink.write(&row("a", 1.0)).expect("write");
        sink.write(&row("b", 1.0)).expect("write");
        sink.write(&row("a", 5.0)).expect("write");
        let rows = read_rows(sink.path());
        assert_eq!(rows.len(), 2);
        assert_eq!((&rows[0][2], &rows[0][4]), ("a", "5.0"));
        assert_eq!(&rows[1][2], "b");
    }

    #[test]
    fn foreign_header_is_renamed_aside_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("emissions.csv");
        std::fs::write(&path, "timestamp,emissions\nx,1\n").expect("seed");
        std::fs::write(dir.path().join("emissions.csv.bak"), "older").expect("seed");
        CsvSink::new(path.clone(), WriteMode::Append)
            .expect("sink")
            .write(&row("a", 1.0))
            .expect("write");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("emissions.csv_0.bak")).expect("backup"),
            "timestamp,emissions\nx,1\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("emissions.csv.bak")).expect("kept"),
            "older"
        );
        assert_eq!(read_rows(&path).len(), 1);
    }

    #[test]
    fn a_torn_row_is_cut_before_the_next_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = CsvSink::new(dir.path().join("emissions.csv"), WriteMode::Append).expect("sink");
        sink.write(&row("a", 1.0)).expect("write");
        let mut file = OpenOptions::new()
            .append(true)
            .open(sink.path())
            .expect("open");
        file.write_all(b"2026-01-01T00:00:00,torn row with no end")
            .expect("tear");
        sink.write(&row("b", 2.0)).expect("write");
        let rows = read_rows(sink.path());
        assert_eq!(rows.len(), 2);
        assert_eq!((&rows[0][2], &rows[1][2]), ("a", "b"));
    }

    #[test]
    fn a_file_moved_away_between_rows_is_left_whole_and_a_new_one_started() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = CsvSink::new(dir.path().join("emissions.csv"), WriteMode::Append).expect("sink");
        sink.write(&row("a", 1.0)).expect("write");
        let moved = dir.path().join("moved.csv");
        std::fs::rename(sink.path(), &moved).expect("rename");
        sink.write(&row("b", 2.0)).expect("write");
        // The kept descriptor still names the moved file: it must not get the second row.
        let (old, new) = (read_rows(&moved), read_rows(sink.path()));
        assert_eq!((old.len(), &old[0][2]), (1, "a"));
        assert_eq!((new.len(), &new[0][2]), (1, "b"));
        // Replaced by another file of the same name: that one is appended to, under our header.
        std::fs::write(sink.path(), header_line()).expect("replace");
        sink.write(&row("c", 3.0)).expect("write");
        let rows = read_rows(sink.path());
        assert_eq!((rows.len(), &rows[0][2]), (1, "c"));
    }

    #[test]
    fn the_lock_is_released_when_a_row_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = CsvSink::new(dir.path().join("emissions.csv"), WriteMode::Append).expect("sink");
        for run_id in ["a", "b"] {
            sink.write(&row(run_id, 1.0)).expect("write");
            // Another open file of the same inode, as another process has: its lock must be
            // free at once, though our descriptor stays open for the next row.
            let other = File::open(sink.path()).expect("open");
            assert!(other.try_lock().is_ok(), "still locked after row {run_id}");
            other.unlock().expect("unlock");
        }
        assert_eq!(read_rows(sink.path()).len(), 2);
    }

    #[test]
    fn a_torn_header_is_written_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("emissions.csv");
        std::fs::write(&path, &header_line()[..20]).expect("seed");
        let sink = CsvSink::new(path.clone(), WriteMode::Append).expect("sink");
        sink.write(&row("a", 1.0)).expect("write");
        assert_eq!(read_rows(&path).len(), 1);
        assert!(!dir.path().join("emissions.csv.bak").exists());
    }

    #[test]
    fn a_fifo_is_refused_at_construction_and_at_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("emissions.csv");
        let mkfifo = |path: &Path| {
            let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        };
        mkfifo(&path);
        let err = CsvSink::new(path.clone(), WriteMode::Append).expect_err("fifo");
        assert!(err.to_string().contains("a FIFO"), "{err}");
        std::fs::remove_file(&path).expect("remove");
        let sink = CsvSink::new(path.clone(), WriteMode::Append).expect("sink");
        mkfifo(&path);
        let err = sink.write(&row("a", 1.0)).expect_err("fifo");
        assert!(err.to_string().contains("a FIFO"), "{err}");
    }

    #[test]
    fn a_malformed_file_in_update_mode_is_set_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("emissions.csv");
        let mut seeded = header_line().to_owned();
        seeded.push_str("only,three,fields\n");
        std::fs::write(&path, &seeded).expect("seed");
        let sink = CsvSink::new(path.clone(), WriteMode::Update).expect("sink");
        sink.write(&row("a", 1.0)).expect("write");
        sink.write(&row("a", 2.0)).expect("write");
        let rows = read_rows(&path);
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][4], "2.0");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("emissions.csv.bak")).expect("backup"),
            seeded
        );
    }

    #[test]
    fn a_missing_folder_is_refused_at_construction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = CsvSink::new(dir.path().join("no/such/emissions.csv"), WriteMode::Append)
            .expect_err("missing");
        assert!(err.to_string().contains("output_dir"), "{err}");
    }
}
