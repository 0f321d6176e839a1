//! Reusable pieces of UI shared by several pages.

pub mod access;
pub mod theme;
