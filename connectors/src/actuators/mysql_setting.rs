//! The MySQL/MariaDB settings actuator: `SET GLOBAL variable = value` on the resource's
//! server through the shared lifecycle.
//!
//! - **capture**: the variable's global value now (`@@GLOBAL.variable`) and which server
//!   it is; a variable off the allow-list is refused before anything is read.
//! - **apply**: `SET GLOBAL variable = value` on a fresh connection; the server's warnings
//!   (a value it truncated or rounded) are quoted in the step's detail. MariaDB has no
//!   `SET PERSIST`, nor MySQL before 8.0: the detail says the change does not survive a
//!   restart of the server.
//! - **read back**: a *fresh* connection's `@@GLOBAL.variable` must be the value asked
//!   for; a value the server clamped or rounded is not the change that was asked for, so
//!   it is rolled back at once.
//! - **roll back**: `SET GLOBAL` to the captured value; read back the captured value.
//! - **kept**: on MySQL 8, `SET PERSIST` once the change verified well, so it outlives a
//!   restart (never before: a change under verification must not survive a crash of
//!   perfpilot's host that stops the rollback).
//!
//! Only variables on an allow-list are tuned: dynamic on MariaDB 10.11 and MySQL 8, with
//! a bounded, reversible effect. The user needs SUPER (MariaDB; CONNECTION ADMIN is
//! enough for `max_connections`) or SYSTEM_VARIABLES_ADMIN (MySQL 8).

use engine::actions::ActionRequest;
use engine::actuator::{Actuator, Captured, Done, Expect, StepError};
use engine::model::DatabaseSettingAction;
use engine::source::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::sources::mysql::{self, MysqlSettings, Session};
use crate::Refusal;

/// Variables perfpilot may change: dynamic on both servers, bounded in effect.
/// `innodb_buffer_pool_size` is dynamic too but is left out: the server resizes the pool
/// in the background, in chunks, and rounds the value, so a read-back cannot show the
/// change took effect.
pub const ALLOWED: &[&str] = &[
    "max_connections",
    "table_open_cache",
    "thread_cache_size",
    "tmp_table_size",
    "max_heap_table_size",
    "long_query_time",
    "innodb_io_capacity",
];

/// What a variable's value is, for what `value` may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Count,
    Bytes,
    Seconds,
}

fn unit(variable: &str) -> Unit {
    match variable {
        "tmp_table_size" | "max_heap_table_size" => Unit::Bytes,
        "long_query_time" => Unit::Seconds,
        _ => Unit::Count,
    }
}

/// Checks an action when it is saved; the error names the field and the rule.
pub fn validate(action: &DatabaseSettingAction) -> Result<(), Refusal> {
    sql_value(action).map(drop)
}

/// The value as `SET GLOBAL` takes it: a size's K, M or G multiplied out (SQL takes no
/// suffix), a number with nothing but digits and a decimal point in it, so it can be
/// written into the statement as it is.
fn sql_value(action: &DatabaseSettingAction) -> Result<String, Refusal> {
    let variable = allowed(&action.parameter)?;
    let value = action.value.trim();
    let refused = |rule: &str| {
        Refusal::new(
            "settings.action.value",
            format!("{variable} takes {rule}, got {value:?}"),
        )
    };
    match unit(variable) {
        Unit::Count => whole(value)
            .map(|n| n.to_string())
            .ok_or_else(|| refused("a whole number, e.g. 200")),
        Unit::Bytes => {
            let (digits, factor) = match value.char_indices().last() {
                Some((at, 'K' | 'k')) => (&value[..at], 1u64 << 10),
                Some((at, 'M' | 'm')) => (&value[..at], 1 << 20),
                Some((at, 'G' | 'g')) => (&value[..at], 1 << 30),
                _ => (value, 1),
            };
            whole(digits)
                .and_then(|n| n.checked_mul(factor))
                .map(|n| n.to_string())
                .ok_or_else(|| refused("a size in bytes, optionally with K, M or G (e.g. 64M)"))
        }
        Unit::Seconds => {
            let (int, frac) = value.split_once('.').unwrap_or((value, ""));
            let ok = (1..=9).contains(&int.len())
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.len() <= 6
                && frac.bytes().all(|b| b.is_ascii_digit())
                && !(value.contains('.') && frac.is_empty());
            ok.then(|| value.to_owned())
                .ok_or_else(|| refused("seconds, e.g. 0.5"))
        }
    }
}

/// `variable` when it is on the allow-list (it is written into statements as it is).
fn allowed(variable: &str) -> Result<&str, Refusal> {
    if ALLOWED.contains(&variable) {
        Ok(variable)
    } else {
        Err(Refusal::new(
            "settings.action.parameter",
            format!(
                "{variable} is not one perfpilot tunes on MySQL/MariaDB (allowed: {})",
                ALLOWED.join(", ")
            ),
        ))
    }
}

/// A whole number written with digits only (no sign, no exponent).
fn whole(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whether two readings of a variable are the same value (`0.5` and `0.500000` are).
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    if let (Ok(x), Ok(y)) = (a.parse::<u64>(), b.parse::<u64>()) {
        return x == y;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-6 * x.abs().max(1.0),
        _ => a == b,
    }
}

/// What the capture found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Prior {
    /// As the server prints it, e.g. `151`, `10.000000`.
    value: String,
    /// `MariaDB 10.11.6`, `MySQL 8.0.36`.
    server: String,
}

pub struct MysqlSetting {
    action: DatabaseSettingAction,
    /// The resource's source settings: where the server is and how to log in.
    source: Result<MysqlSettings, String>,
}

impl MysqlSetting {
    pub fn new(
        action: DatabaseSettingAction,
        source: Result<MysqlSettings, String>,
    ) -> MysqlSetting {
        MysqlSetting { action, source }
    }

    /// The variable, checked against the allow-list on every step (a rollback may run
    /// from a record made long before).
    fn variable(&self) -> Result<&str, StepError> {
        allowed(&self.action.parameter).map_err(StepError::new)
    }

    async fn session(&self) -> Result<Session, StepError> {
        let settings = self
            .source
            .as_ref()
            .map_err(|err| StepError::new(err.clone()))?;
        mysql::connect_fresh(settings).await.map_err(StepError::new)
    }

    /// `@@GLOBAL.variable` on a fresh connection, and the server's name.
    async fn show(&self) -> Result<(String, String), StepError> {
        let variable = self.variable()?;
        let mut session = self.session().await?;
        let rows = session
            .rows(&format!("SELECT @@GLOBAL.{variable}"))
            .await
            .map_err(|err| StepError::new(err.message))?;
        let value = rows
            .first()
            .and_then(|row| row.get_opt::<Option<String>, usize>(0))
            .and_then(Result::ok)
            .flatten()
            .ok_or_else(|| {
                StepError::new(format!("the server did not answer @@GLOBAL.{variable}"))
            })?;
        Ok((value, session.server.name()))
    }

    /// `SET GLOBAL variable = value` on a fresh connection, with the server's warnings.
    async fn set(&self, value: &str) -> Result<(String, Session), StepError> {
        let variable = self.variable()?;
        let mut session = self.session().await?;
        let statement = format!("SET GLOBAL {variable} = {value}");
        session
            .run(&statement)
            .await
            .map_err(|err| StepError::new(err.message))?;
        let warnings = session
            .warnings()
            .await
            .map_err(|err| StepError::new(err.message))?;
        let detail = if warnings.is_empty() {
            statement
        } else {
            format!("{statement}; the server warned: {}", warnings.join("; "))
        };
        Ok((detail, session))
    }

    /// Whether a fresh connection shows `expected`: no waiting, as `SET GLOBAL` is in
    /// effect for every new connection at once.
    async fn shown(&self, expected: &str) -> Result<Done, StepError> {
        let variable = self.variable()?;
        let (shown, _) = self.show().await?;
        if same(&shown, expected) {
            Ok(Done {
                detail: format!("{variable} = {shown} on a new connection"),
                attempts: 1,
            })
        } else {
            Err(StepError::new(format!(
                "{variable} shows {shown} on a new connection, expected {expected} (the server adjusted the value)"
            )))
        }
    }
}

fn prior_of(captured: &Captured) -> Result<Prior, StepError> {
    let prior: Prior = serde_json::from_value(captured.state.clone())
        .map_err(|err| StepError::new(format!("the captured state is unreadable: {err}")))?;
    // It goes back into a statement as it is: a number, nothing else.
    let numeric = !prior.value.is_empty()
        && prior.value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && prior.value.bytes().filter(|b| *b == b'.').count() <= 1;
    if !numeric {
        return Err(StepError::new(format!(
            "the captured value {:?} is not a number",
            prior.value
        )));
    }
    Ok(prior)
}

impl Actuator for MysqlSetting {
    fn kind(&self) -> &'static str {
        "database_setting"
    }

    fn describe(&self, _: &ActionRequest) -> String {
        let value = sql_value(&self.action).unwrap_or_else(|_| self.action.value.clone());
        format!("SET GLOBAL {} = {value}", self.action.parameter)
    }

    fn capture<'a>(&'a self, _: &'a ActionRequest) -> BoxFuture<'a, Result<Captured, StepError>> {
        Box::pin(async move {
            validate(&self.action).map_err(StepError::new)?;
            let (value, server) = self.show().await?;
            let prior = Prior { value, server };
            Ok(Captured {
                summary: format!(
                    "{} = {} ({})",
                    self.action.parameter, prior.value, prior.server
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
            let value = sql_value(&self.action).map_err(StepError::new)?;
            let (detail, session) = self.set(&value).await?;
            let server = &session.server;
            let lasting = if server.has_set_persist() {
                "SET PERSIST follows once the change is kept".to_owned()
            } else {
                format!(
                    "{} has no SET PERSIST: the change does not survive a restart of the server",
                    server.name()
                )
            };
            Ok(Done {
                detail: format!("{detail}; {lasting}"),
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
                Expect::Applied(_) => sql_value(&self.action).map_err(StepError::new)?,
                Expect::Restored(captured) => prior_of(captured)?.value,
            };
            self.shown(&expected).await
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
            let prior = prior_of(captured)?;
            let (detail, _) = self.set(&prior.value).await?;
            Ok(Done {
                detail,
                attempts: 1,
            })
        })
    }

    fn kept<'a>(&'a self, _: &'a ActionRequest) -> BoxFuture<'a, Option<Result<Done, StepError>>> {
        Box::pin(async move {
            let value = sql_value(&self.action).ok()?;
            let variable = self.variable().ok()?;
            let mut session = match self.session().await {
                Ok(session) => session,
                Err(err) => return Some(Err(err)),
            };
            if !session.server.has_set_persist() {
                // Said in the apply step's detail already.
                return None;
            }
            let statement = format!("SET PERSIST {variable} = {value}");
            Some(
                session
                    .run(&statement)
                    .await
                    .map(|()| Done {
                        detail: statement.clone(),
                        attempts: 1,
                    })
                    .map_err(|err| StepError::new(err.message)),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(parameter: &str, value: &str) -> DatabaseSettingAction {
        DatabaseSettingAction {
            parameter: parameter.into(),
            value: value.into(),
        }
    }

    #[test]
    fn a_variable_off_the_allow_list_is_refused_naming_the_field() {
        let err = validate(&action("innodb_flush_log_at_trx_commit", "2"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "settings.action.parameter: innodb_flush_log_at_trx_commit is not one perfpilot tunes on MySQL/MariaDB (allowed: max_connections, "
            ),
            "{err}"
        );
        assert!(validate(&action("innodb_buffer_pool_size", "1G")).is_err());
        assert!(validate(&action("max_connections", "200")).is_ok());
    }

    #[test]
    fn values_are_numbers_the_statement_can_carry() {
        let value = |p: &str, v: &str| sql_value(&action(p, v));
        assert_eq!(value("max_connections", " 200 ").unwrap(), "200");
        assert_eq!(value("tmp_table_size", "64M").unwrap(), "67108864");
        assert_eq!(value("max_heap_table_size", "16k").unwrap(), "16384");
        assert_eq!(value("tmp_table_size", "1G").unwrap(), "1073741824");
        assert_eq!(value("long_query_time", "0.5").unwrap(), "0.5");
        assert_eq!(value("long_query_time", "2").unwrap(), "2");
        for (p, v) in [
            ("max_connections", "200; DROP TABLE users"),
            ("max_connections", "-1"),
            ("max_connections", "2e3"),
            ("max_connections", "64M"),
            ("tmp_table_size", "64MB"),
            ("tmp_table_size", "99999999999999999G"),
            ("long_query_time", "0.5s"),
            ("long_query_time", "1."),
            ("long_query_time", ".5"),
            ("long_query_time", "0.0000001"),
        ] {
            let err = value(p, v).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("settings.action.value: {p} takes ")),
                "{p} = {v}: {err}"
            );
        }
    }

    #[test]
    fn readings_compare_as_numbers() {
        assert!(same("0.500000", "0.5"));
        assert!(same("151", " 151"));
        assert!(
            !same("16776192", "16777215"),
            "a rounded size is not the value asked"
        );
        assert!(!same("10.000000", "1"));
    }

    #[test]
    fn a_captured_value_goes_back_only_as_a_number() {
        let captured = |value: &str| Captured {
            summary: String::new(),
            state: serde_json::json!({"value": value, "server": "MariaDB 10.11.6"}),
        };
        assert_eq!(prior_of(&captured("10.000000")).unwrap().value, "10.000000");
        assert!(prior_of(&captured("1; SET GLOBAL read_only = 1")).is_err());
        assert!(prior_of(&captured("")).is_err());
    }

    #[tokio::test]
    async fn a_resource_without_a_server_refuses_at_capture_in_words() {
        let actuator = MysqlSetting::new(
            action("max_connections", "200"),
            Err("this resource is not a MySQL/MariaDB database".into()),
        );
        let request = engine::actions::ActionRequest::new(
            &crate::sources::mysql::resource(
                "shop",
                &crate::sources::mysql::MysqlSettings::from_spec(&engine::model::SourceSpec {
                    kind: "mysql".into(),
                    settings: serde_json::json!({"url": "mysql://perf@127.0.0.1:1/app"}),
                })
                .unwrap(),
                &engine::model::ResourceSettings::default(),
            )
            .unwrap(),
            &[120.0f64; 10],
            120.0,
            1_700_000_000_000,
        )
        .unwrap();
        let err = actuator.capture(&request).await.unwrap_err();
        assert_eq!(err.error, "this resource is not a MySQL/MariaDB database");
        assert_eq!(
            actuator.describe(&request),
            "SET GLOBAL max_connections = 200"
        );
    }
}
