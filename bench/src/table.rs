//! The one way every report writes a table: markdown, with each column padded to its widest
//! cell, so the same text reads in a terminal and pastes into BENCHMARKS.md. A table can also
//! be written a row at a time as its rows come (the soak's samples), padded to widths given
//! up front.

use std::fmt;

/// How a column's cells sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Figures.
    Right,
}

/// A table: its columns, then its rows.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns (title, alignment), and no rows yet.
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            columns: columns.iter().map(|(t, a)| ((*t).to_owned(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty, extra ones dropped).
    pub fn row<I, S>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: ToString,
    {
        let mut row: Vec<String> = cells.into_iter().map(|c| c.to_string()).collect();
        row.resize(self.columns.len(), String::new());
        self.rows.push(row);
        self
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The widths its cells need: each column's widest cell or title.
    fn widths(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, (title, _))| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([title.chars().count(), 3])
                    .max()
                    .unwrap_or(3)
            })
            .collect()
    }

    /// The title and rule lines, padded to `widths` (for a table written as its rows come).
    pub fn head(&self, widths: &[usize]) -> String {
        let titles: Vec<String> = self.columns.iter().map(|(t, _)| t.clone()).collect();
        let rule = self
            .columns
            .iter()
            .zip(widths)
            .map(|((_, align), w)| match align {
                Align::Left => "-".repeat(*w),
                Align::Right => format!("{}:", "-".repeat(w.saturating_sub(1))),
            })
            .collect::<Vec<_>>()
            .join(" | ");
        format!("{}\n| {rule} |", self.line(&titles, widths))
    }

    /// One row's line, padded to `widths`.
    pub fn line(&self, cells: &[String], widths: &[usize]) -> String {
        let padded: Vec<String> = self
            .columns
            .iter()
            .zip(widths)
            .zip(cells)
            .map(|(((_, align), w), cell)| {
                let pad = w.saturating_sub(cell.chars().count());
                match align {
                    Align::Left => format!("{cell}{}", " ".repeat(pad)),
                    Align::Right => format!("{}{cell}", " ".repeat(pad)),
                }
            })
            .collect();
        format!("| {} |", padded.join(" | "))
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.widths();
        writeln!(f, "{}", self.head(&widths))?;
        for row in &self.rows {
            writeln!(f, "{}", self.line(row, &widths))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_markdown_padded_to_its_widest_cells() {
        let mut table = Table::new(&[("call", Align::Left), ("µs", Align::Right)]);
        table.row(["send", "5.1"]).row(["sendmsg", "12.25"]);
        assert_eq!(
            table.to_string(),
            "| call    |    µs |\n| ------- | ----: |\n| send    |   5.1 |\n| sendmsg | 12.25 |\n"
        );
    }
}
