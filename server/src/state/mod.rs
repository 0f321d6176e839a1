//! The running state around the engine: the change path ([`change`]), the monitor task
//! that owns history and the optimizer loop ([`monitor`]), the hub that serializes live
//! frames once ([`hub`]), the overview ([`overview`]), before/after proof ([`proof`]) and
//! the optimizer's hands ([`actuate`]). [`app_state`] is what every request handler gets.

pub mod actuate;
pub mod alerting;
pub mod app_state;
pub mod change;
mod forecasts;
pub mod hub;
pub mod lease;
pub mod monitor;
pub mod overview;
pub mod proof;
pub mod sources;
pub mod stored;

pub use app_state::AppState;
pub use monitor::{start, Monitor};
