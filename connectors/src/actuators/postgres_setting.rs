//! The PostgreSQL settings actuator: `parameter = value` on the resource's own database
//! through the shared lifecycle.
//!
//! - **capture**: the parameter's value now (as `SHOW` prints it), where it comes from
//!   (`postgresql.auto.conf` or not) and its context; a `postmaster` parameter is refused
//!   ("needs a restart": a reload silently ignores it).
//! - **apply**: `ALTER SYSTEM SET parameter = 'value'`, then `pg_reload_conf()` (two
//!   statements: `ALTER SYSTEM` cannot share a transaction).
//! - **read back**: a *fresh* connection's `SHOW parameter` must print the value the server
//!   makes of what was asked (a backend applies a reload only between statements, so the
//!   check polls for up to 2 s).
//! - **roll back**: the captured value with `ALTER SYSTEM SET` when it came from
//!   `postgresql.auto.conf`, else `ALTER SYSTEM RESET`; reload; read back the captured value.
//!
//! Only parameters on an allow-list are tuned: reloadable ones whose effect is bounded
//! (no `shared_preload_libraries`, no logging of secrets). The role needs, on
//! PostgreSQL 15: `GRANT ALTER SYSTEM ON PARAMETER <name> TO <role>` and `GRANT EXECUTE ON
//! FUNCTION pg_reload_conf() TO <role>`.

use std::time::{Duration, Instant};

use engine::actions::ActionRequest;
use engine::actuator::{Actuator, Captured, Done, Expect, StepError};
use engine::model::DatabaseSettingAction;
use engine::source::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::sources::postgres::{self, PostgresSettings};
use crate::Refusal;

/// Parameters perfpilot may change: reloadable, bounded in effect.
pub const ALLOWED: &[&str] = &[
    "work_mem",
    "maintenance_work_mem",
    "random_page_cost",
    "seq_page_cost",
    "effective_cache_size",
    "effective_io_concurrency",
    "default_statistics_target",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "jit",
    "checkpoint_completion_target",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_analyze_scale_factor",
];

/// Parameters that only take effect at a server restart (a common subset, so the refusal
/// can be given when the action is saved; the capture checks every parameter's context).
const NEEDS_RESTART: &[&str] = &[
    "shared_buffers",
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "wal_level",
    "shared_preload_libraries",
    "huge_pages",
    "port",
    "listen_addresses",
];

/// Checks an action when it is saved; the error names the field and the rule.
pub fn validate(action: &DatabaseSettingAction) -> Result<(), Refusal> {
    if NEEDS_RESTART.contains(&action.parameter.as_str()) {
        return Err(Refusal::new(
            "settings.action.parameter",
            format!(
                "{} needs a restart of PostgreSQL to change; perfpilot only changes settings a reload applies (PostgreSQL would silently ignore it until then)",
                action.parameter
            ),
        ));
    }
    if !ALLOWED.contains(&action.parameter.as_str()) {
        return Err(Refusal::new(
            "settings.action.parameter",
            format!(
                "{} is not one perfpilot tunes (allowed: {})",
                action.parameter,
                ALLOWED.join(", ")
            ),
        ));
    }
    if action.value.contains('\'') {
        return Err(Refusal::new(
            "settings.action.value",
            "must not contain a quote",
        ));
    }
    Ok(())
}

/// What the capture found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Prior {
    /// As `SHOW` prints it, e.g. `4MB`.
    shown: String,
    /// The value came from `postgresql.auto.conf` (an earlier `ALTER SYSTEM`).
    from_auto_conf: bool,
}

pub struct PostgresSetting {
    action: DatabaseSettingAction,
    /// The resource's source settings: where the database is and how to log in.
    source: Result<PostgresSettings, String>,
}

impl PostgresSetting {
    pub fn new(
        action: DatabaseSettingAction,
        source: Result<PostgresSettings, String>,
    ) -> PostgresSetting {
        PostgresSetting { action, source }
    }

    async fn client(&self) -> Result<tokio_postgres::Client, StepError> {
        let settings = self
            .source
            .as_ref()
            .map_err(|err| StepError::new(err.clone()))?;
        postgres::connect_fresh(settings)
            .await
            .map_err(StepError::new)
    }

    /// `SHOW parameter` on a fresh connection.
    async fn show(&self) -> Result<String, StepError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT current_setting($1)", &[&self.action.parameter])
            .await
            .map_err(|err| StepError::new(err.to_string()))?;
        Ok(row.get(0))
    }

    /// Waits (at most 2 s) until a fresh connection shows `expected`.
    async fn shown_within(&self, expected: &str) -> Result<Done, StepError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let shown = self.show().await?;
            if shown == expected {
                return Ok(Done {
                    detail: format!("{} = {shown} on a new connection", self.action.parameter),
                    attempts: 1,
                });
            }
            if Instant::now() >= deadline {
                return Err(StepError::new(format!(
                    "{} shows {shown} on a new connection, expected {expected}",
                    self.action.parameter
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the server makes of `value` for the parameter (`65536kB` → `64MB`): set in a
    /// transaction that is rolled back, so nothing changes.
    async fn canonical(&self, value: &str) -> Result<String, StepError> {
        let client = self.client().await?;
        let sql = format!(
            "BEGIN; SET LOCAL {} = '{}'; SELECT current_setting('{}'); ROLLBACK;",
            self.action.parameter, value, self.action.parameter
        );
        let messages = client.simple_query(&sql).await.map_err(|err| {
            StepError::new(format!(
                "{} = {value} is not accepted: {}",
                self.action.parameter,
                db_message(&err)
            ))
        })?;
        messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .ok_or_else(|| StepError::new("the server did not answer SHOW"))
    }

    async fn alter(&self, statement: String) -> Result<(), StepError> {
        let client = self.client().await?;
        client
            .simple_query(&statement)
            .await
            .map_err(|err| StepError::new(db_message(&err)))?;
        client
            .simple_query("SELECT pg_reload_conf()")
            .await
            .map_err(|err| StepError::new(db_message(&err)))?;
        Ok(())
    }
}

fn db_message(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => err.to_string(),
    }
}

impl Actuator for PostgresSetting {
    fn kind(&self) -> &'static str {
        "database_setting"
    }

    fn describe(&self, _: &ActionRequest) -> String {
        format!(
            "ALTER SYSTEM SET {} = '{}' and reload",
            self.action.parameter, self.action.value
        )
    }

    fn capture<'a>(&'a self, _: &'a ActionRequest) -> BoxFuture<'a, Result<Captured, StepError>> {
        Box::pin(async move {
            validate(&self.action).map_err(StepError::new)?;
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT current_setting(name), context, coalesce(sourcefile LIKE '%postgresql.auto.conf', false) \
                     FROM pg_settings WHERE name = $1",
                    &[&self.action.parameter],
                )
                .await
                .map_err(|err| StepError::new(db_message(&err)))?;
            let context: String = row.get(1);
            if context == "postmaster" || context == "internal" {
                return Err(StepError::new(format!(
                    "{} needs a restart of PostgreSQL to change (context {context})",
                    self.action.parameter
                )));
            }
            let prior = Prior {
                shown: row.get(0),
                from_auto_conf: row.get(2),
            };
            Ok(Captured {
                summary: format!(
                    "{} = {}{}",
                    self.action.parameter,
                    prior.shown,
                    if prior.from_auto_conf {
                        " (from ALTER SYSTEM)"
                    } else {
                        ""
                    }
                ),
                state: serde_json::to_value(&prior).expect("serializes"),
            })
        })
    }

    fn apply<'a>(
        &'a self,
        _: &'a ActionRequest,
        _: &'a Captured,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            self.alter(format!(
                "ALTER SYSTEM SET {} = '{}'",
                self.action.parameter, self.action.value
            ))
            .await?;
            Ok(Done {
                detail: format!(
                    "ALTER SYSTEM SET {} = '{}'; reloaded",
                    self.action.parameter, self.action.value
                ),
                attempts: 1,
            })
        })
    }

    fn read_back<'a>(
        &'a self,
        _: &'a ActionRequest,
        expect: Expect<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let expected = match expect {
                Expect::Applied(_) => self.canonical(&self.action.value).await?,
                Expect::Restored(captured) => {
                    let prior: Prior =
                        serde_json::from_value(captured.state.clone()).map_err(|err| {
                            StepError::new(format!("the captured state is unreadable: {err}"))
                        })?;
                    prior.shown
                }
            };
            self.shown_within(&expected).await
        })
    }

    fn can_roll_back(&self) -> bool {
        true
    }

    fn roll_back<'a>(
        &'a self,
        _: &'a ActionRequest,
        captured: &'a Captured,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let prior: Prior = serde_json::from_value(captured.state.clone()).map_err(|err| {
                StepError::new(format!("the captured state is unreadable: {err}"))
            })?;
            let statement = if prior.from_auto_conf {
                format!(
                    "ALTER SYSTEM SET {} = '{}'",
                    self.action.parameter,
                    prior.shown.replace('\'', "''")
                )
            } else {
                format!("ALTER SYSTEM RESET {}", self.action.parameter)
            };
            self.alter(statement.clone()).await?;
            Ok(Done {
                detail: format!("{statement}; reloaded"),
                attempts: 1,
            })
        })
    }
}
