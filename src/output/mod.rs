//! What a run produces: the row type and the CSV file it is appended to.

mod beside;
pub mod build;
pub mod csv;
pub mod footprint;
pub mod formula;
mod fsync;
pub mod job;
pub mod methods;
pub mod row;

pub use row::EmissionsRow;

/// Where a tracker's rows go: the `save_to_file`, `output_dir`, `output_file` and
/// `on_csv_write` settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    /// The CSV file, when rows are saved.
    pub path: Option<std::path::PathBuf>,
    /// Append or update.
    pub on_csv_write: csv::WriteMode,
}
