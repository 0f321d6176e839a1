//! One module per route.

pub mod changes;
pub mod not_found;
pub mod overview;
pub mod settings;
