//! Appends rows to `emissions.csv` so that a crash or a kill loses nothing already returned.
//!
//! Each row is encoded in memory and handed to the OS in one `write` on a file opened for
//! append before the call returns: a killed process leaves every row it reported, whole. The
//! fsync that also survives power loss runs on a short-lived thread, off the caller's path.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::row::{EmissionsRow, columns};
use crate::error::{Error, Result};

/// What to do with the row of a run already in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Add a row per `flush()` / `stop()` (CodeCarbon's default).
    #[default]
    Append,
    /// Keep one row per run, replaced on each write.
    Update,
}

// Trackers in one process may share a file: creating it, checking its header and rewriting it
// are serialised so two trackers never both write a header or interleave a rewrite.
static FILE_LOCK: Mutex<()> = Mutex::new(());

/// Writes [`EmissionsRow`]s to one CSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvSink {
    path: PathBuf,
    mode: WriteMode,
}

fn header_line() -> String {
    let mut line = columns().join(",");
    line.push('\n');
    line
}

fn encode(path: &Path, row: &EmissionsRow) -> Result<Vec<u8>> {
    let mut writer = ::csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(512));
    let csv_error = |source| Error::Csv {
        path: path.to_owned(),
        source,
    };
    writer.serialize(row).map_err(csv_error)?;
    writer
        .into_inner()
        .map_err(|err| Error::io(path, err.into_error()))
}

impl CsvSink {
    /// A sink for `path` (the folder must exist).
    pub fn new(path: PathBuf, mode: WriteMode) -> Self {
        Self { path, mode }
    }

    /// The file written.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `row`; returns once the OS has it.
    pub fn write(&self, row: &EmissionsRow) -> Result<()> {
        let encoded = encode(&self.path, row)?;
        let _guard = FILE_LOCK.lock();
        self.set_aside_foreign_file()?;
        match self.mode {
            WriteMode::Append => self.append(&encoded),
            WriteMode::Update => self.replace_run(&row.run_id, &encoded),
        }
    }

    fn append(&self, encoded: &[u8]) -> Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|err| Error::io(&self.path, err))?;
        let is_new = file
            .metadata()
            .map_err(|err| Error::io(&self.path, err))?
            .len()
            == 0;
        let mut buffer = Vec::with_capacity(encoded.len() + 1024);
        if is_new {
            buffer.extend_from_slice(header_line().as_bytes());
        }
        buffer.extend_from_slice(encoded);
        file.write_all(&buffer)
            .map_err(|err| Error::io(&self.path, err))?;
        sync_in_background(file);
        Ok(())
    }

    /// Rewrites the file with this run's rows replaced by `encoded` (or it appended), through a
    /// temporary file renamed over the old one, so a crash leaves either file whole.
    fn replace_run(&self, run_id: &str, encoded: &[u8]) -> Result<()> {
        let mut output = header_line().into_bytes();
        let mut replaced = false;
        if let Ok(file) = File::open(&self.path) {
            let run_id_column = columns().iter().position(|c| *c == "run_id").unwrap_or(2);
            let mut reader = ::csv::Reader::from_reader(file);
            for record in reader.records() {
                let record = record.map_err(|source| Error::Csv {
                    path: self.path.clone(),
                    source,
                })?;
                if record.get(run_id_column) != Some(run_id) {
                    let mut writer = ::csv::WriterBuilder::new()
                        .has_headers(false)
                        .from_writer(Vec::new());
                    writer.write_record(&record).map_err(|source| Error::Csv {
                        path: self.path.clone(),
                        source,
                    })?;
                    let line = writer
                        .into_inner()
                        .map_err(|err| Error::io(&self.path, err.into_error()))?;
                    output.extend_from_slice(&line);
                } else if !replaced {
                    output.extend_from_slice(encoded);
                    replaced = true;
                }
            }
        }
        if !replaced {
            output.extend_from_slice(encoded);
        }
        let temporary = self.path.with_extension("csv.tmp");
        let mut file = File::create(&temporary).map_err(|err| Error::io(&temporary, err))?;
        file.write_all(&output)
            .and_then(|()| file.sync_data())
            .map_err(|err| Error::io(&temporary, err))?;
        std::fs::rename(&temporary, &self.path).map_err(|err| Error::io(&self.path, err))
    }

    /// An existing file with another header is renamed aside as CodeCarbon does
    /// (`emissions.csv.bak`, then `emissions.csv_0.bak`, ...): nothing is overwritten.
    fn set_aside_foreign_file(&self) -> Result<()> {
        let Ok(file) = File::open(&self.path) else {
            return Ok(());
        };
        let mut first_line = String::new();
        BufReader::new(file)
            .read_line(&mut first_line)
            .map_err(|err| Error::io(&self.path, err))?;
        if first_line.is_empty() || first_line.trim_end_matches(['\r', '\n']) == columns().join(",")
        {
            return Ok(());
        }
        let backup = backup_path(&self.path);
        log::warn!(
            "{} has another header (not written by this carbonmeter version): renamed to {}, \
             starting a new file",
            self.path.display(),
            backup.display()
        );
        std::fs::rename(&self.path, &backup).map_err(|err| Error::io(&self.path, err))
    }
}

fn backup_path(path: &Path) -> PathBuf {
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

fn sync_in_background(file: File) {
    // A thread per row is cheap next to an fsync, and a failure here loses nothing a kill
    // would: the data is already with the OS.
    let spawned = std::thread::Builder::new()
        .name("carbonmeter-fsync".to_owned())
        .spawn(move || {
            let _ = file.sync_data();
        });
    if let Err(err) = spawned {
        log::debug!("no fsync thread: {err}");
    }
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
        let sink = CsvSink::new(dir.path().join("emissions.csv"), WriteMode::Append);
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
        let sink = CsvSink::new(dir.path().join("emissions.csv"), WriteMode::Update);
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
}
