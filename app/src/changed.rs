//! "What changed" around a moment, as the server ranks it ([`engine::changed`]): the
//! series whose level moved the most, each with a link to its chart.

use serde::{Deserialize, Serialize};

/// One series that moved around the moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    pub resource: String,
    pub resource_name: String,
    pub metric: String,
    pub unit: String,
    pub shift: engine::changed::Shift,
}

/// The series that moved the most around `at_ms`, largest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatChanged {
    pub at_ms: i64,
    pub moved: Vec<Moved>,
}
