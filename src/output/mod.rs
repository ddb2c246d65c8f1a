//! What a run produces: the row type and the CSV file it is appended to.

pub mod build;
pub mod csv;
pub mod row;

pub use row::EmissionsRow;
