//! Performance reports: one period (the last 24 h, 7 days, or any `from`–`to`) as a
//! self-contained HTML page (inline SVG charts drawn by plotters, inline CSS, print
//! friendly, so the browser's "Save as PDF" gives a clean document) and as one CSV of the
//! same numbers.
//!
//! Everything comes from what really happened: history (memory for the last day, the disk
//! beyond), the before/afters that completed in the period, alert episodes, audited
//! optimizer actions. [`gather()`] reads; [`html()`] and [`csv()`] only format, so the same
//! numbers are in both.
//!
//! - `period`: [`Period`], parsed and checked from the query (at most [`MAX_PERIOD_MS`]).
//! - `gather`: what a report contains, read from the monitor ([`ReportData`]).
//! - `html`: the HTML rendering.
//! - `csv`: the CSV rendering, with formula defusing.
//! - `schedule`: scheduled reports sent to alert channels ([`run_schedule`]).

mod csv;
mod gather;
mod html;
mod period;
mod schedule;

pub use self::csv::csv;
pub use self::gather::{actions_filter, gather, Compliance, ReportData, ResourceReport};
pub use self::html::html;
pub use self::period::{parse_time, Period, MAX_PERIOD_MS};
pub use self::schedule::run_schedule;

#[cfg(test)]
mod tests;
