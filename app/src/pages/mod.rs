//! One module per route.

pub mod audit;
pub mod changes;
pub mod not_found;
pub mod overview;
pub mod proof;
pub mod resource;
pub mod resource_cache;
pub mod resource_chart;
pub mod resource_queries;
pub mod resource_settings;
pub mod settings;
