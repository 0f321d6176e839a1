//! Test harness for the end-to-end suites: starts the real `perfpilot` binary on a free
//! port and a real headless Chromium through chromedriver, and cleans both up on drop.
//!
//! Nothing is installed here: `scripts/test.sh` installs Chromium and builds the binary
//! and site, then passes their paths in `PERFPILOT_BIN` and `PERFPILOT_SITE_ROOT`.
//!
//! One file per concern, everything re-exported here so a test names it `tests::X`:
//!
//! - `server.rs`: the `perfpilot` process (`Perfpilot`), its binary and site, API settings.
//! - `http.rs`: hand-written HTTP requests (`http_get`, `http_request`, …), `body_json`.
//! - `browser.rs`: Chromium through chromedriver (`Browser`) and page helpers (`click`, …).
//! - `fs.rs`: the artefact directory, `TempDir`, `copy_dir`.
//! - `sys.rs`: free loopback ports, child processes, `now_ms`.
//! - `receiver.rs`: webhook receivers (`Receiver`, `webhook_receiver`) and `SmtpSink`.
//! - `postgres.rs`: a throwaway PostgreSQL cluster (`Postgres`, `PG_BIN`).
//! - `mariadb.rs`: a throwaway MariaDB server (`Mariadb`).
//! - `redis.rs`: throwaway `Redis` and `Memcached`, and their `Load`.
//! - `lb.rs`: `TestBackend`s, a throwaway `Haproxy`, and `HttpLoad` through it.
//! - `alertmanager.rs`: a throwaway Prometheus `Alertmanager`.
//! - `fleet_support.rs` (`tests::fleet_support`): Prometheus, node exporters, `FleetSim`.

mod alertmanager;
mod browser;
pub mod fleet_support;
mod fs;
mod http;
mod lb;
mod mariadb;
mod postgres;
mod receiver;
mod redis;
mod server;
mod sys;

pub use alertmanager::*;
pub use browser::*;
pub use fs::*;
pub use http::*;
pub use lb::*;
pub use mariadb::*;
pub use postgres::*;
pub use receiver::*;
pub use redis::*;
pub use server::*;
pub use sys::*;
