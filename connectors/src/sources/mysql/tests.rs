use super::statements::{is_own, top, Digest, Reading};
use super::*;

fn settings(url: &str) -> MysqlSettings {
    MysqlSettings {
        url: url.into(),
        password_file: None,
        password_env: None,
        probe_query: None,
        group: None,
        statement_timeout_ms: 2000,
    }
}

#[test]
fn a_password_in_the_url_is_refused_naming_url_and_never_echoed() {
    for url in [
        "mysql://perf:hunter2@127.0.0.1:3306/app",
        "mysql://perf:hunter2@127.0.0.1/app?no_such_parameter=1",
        "mysql://perf:@127.0.0.1/app",
    ] {
        let err = settings(url).validate().unwrap_err().to_string();
        assert!(
            err.starts_with("url: must not contain a password"),
            "{url}: {err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
    assert!(settings("mysql://perf@127.0.0.1:3306/app")
        .validate()
        .is_ok());
    assert!(
        settings("mysql://perf@db.internal/app?socket=/run/mysqld/mysqld.sock")
            .validate()
            .is_ok(),
        "a socket is a way to reach the server, not a secret"
    );
}

#[test]
fn a_url_must_be_mysql_name_a_user_and_keep_the_password_encrypted() {
    let refused = |url: &str| settings(url).validate().unwrap_err().to_string();
    let err = refused("postgresql://perf@127.0.0.1/app");
    assert!(
        err.starts_with("url: is not a MySQL connection URL like mysql://"),
        "{err}"
    );
    let err = refused("mysql://127.0.0.1:3306/app");
    assert!(err.starts_with("url: must name a user"), "{err}");
    let err = refused("mysql://perf@127.0.0.1/app?require_ssl=true");
    assert!(
        err.starts_with("url: require_ssl is not supported"),
        "{err}"
    );
    let err = refused("mysql://perf@127.0.0.1/app?enable_cleartext_plugin=true");
    assert!(err.starts_with("url: enable_cleartext_plugin"), "{err}");
    let err = refused("mysql://perf@127.0.0.1/app?pool_max=many");
    assert!(
        err.starts_with("url: is not a MySQL connection URL"),
        "{err}"
    );
}

#[test]
fn the_other_fields_are_checked_naming_them() {
    let both = MysqlSettings {
        password_file: Some("/x".into()),
        password_env: Some("MYSQL_PASS".into()),
        ..settings("mysql://perf@127.0.0.1/app")
    };
    assert_eq!(both.validate().unwrap_err().field, "password_file");
    let bad_env = MysqlSettings {
        password_env: Some("NOT A NAME".into()),
        ..settings("mysql://perf@127.0.0.1/app")
    };
    assert_eq!(bad_env.validate().unwrap_err().field, "password_env");
    let empty_probe = MysqlSettings {
        probe_query: Some("  ".into()),
        ..settings("mysql://perf@127.0.0.1/app")
    };
    assert_eq!(empty_probe.validate().unwrap_err().field, "probe_query");
    let fast = MysqlSettings {
        statement_timeout_ms: 50,
        ..settings("mysql://perf@127.0.0.1/app")
    };
    assert_eq!(
        fast.validate().unwrap_err().to_string(),
        "statement_timeout_ms: must be between 100 and 60000, got 50"
    );
    let group = MysqlSettings {
        group: Some(String::new()),
        ..settings("mysql://perf@127.0.0.1/app")
    };
    assert_eq!(group.validate().unwrap_err().field, "group");
}

#[test]
fn the_spec_round_trips_and_unknown_fields_are_refused() {
    let s = MysqlSettings {
        probe_query: Some("SELECT count(*) FROM orders".into()),
        password_env: Some("MYSQL_PASSWORD".into()),
        ..settings("mysql://perf@127.0.0.1/app")
    };
    let spec = s.spec();
    assert_eq!(spec.kind, "mysql");
    assert_eq!(MysqlSettings::from_spec(&spec).unwrap(), s);
    let mut spec = s.spec();
    spec.settings["password"] = "x".into();
    let err = MysqlSettings::from_spec(&spec).unwrap_err();
    assert_eq!(err.field, "source.settings");
    assert!(err.rule.contains("unknown field `password`"), "{err}");
    // A stored spec that omits the defaults still loads.
    let minimal = SourceSpec {
        kind: KIND.into(),
        settings: serde_json::json!({"url": "mysql://perf@127.0.0.1/app"}),
    };
    assert_eq!(
        MysqlSettings::from_spec(&minimal).unwrap(),
        settings("mysql://perf@127.0.0.1/app")
    );
    let entry: MysqlEntry = serde_json::from_value(serde_json::json!({
        "name": "shop",
        "url": "mysql://perf@127.0.0.1/app",
        "password_env": "MYSQL_PASSWORD",
        "probe_query": "SELECT count(*) FROM orders",
    }))
    .unwrap();
    assert_eq!(entry.settings(), s);
}

#[test]
fn a_server_is_a_database_resource_with_the_seed_target_and_guardrails() {
    let r = resource(
        "shop",
        &settings("mysql://perf@127.0.0.1/app"),
        &ResourceSettings::default(),
    )
    .unwrap();
    assert_eq!(r.id.as_str(), "database:shop");
    assert_eq!(r.resource_type, engine::model::ResourceType::Database);
    let target = r.target.as_ref().unwrap();
    assert_eq!((target.metric.as_str(), target.value), ("latency", 80.0));
    for metric in [
        "queries",
        "buffer_pool_hit_pct",
        "connections_pct",
        "slow_queries_per_s",
    ] {
        assert!(r.metric(metric).is_some(), "{metric}");
    }
    assert!(
        r.metric("replication_lag_s").is_none(),
        "a gauge without a kind"
    );
    assert_eq!(r.settings.guardrails.len(), 2);
    assert_eq!(r.source.as_ref().unwrap().kind, KIND);
    assert_eq!(MetricDef::series(METRICS, &r).len(), METRICS.len());
    assert!(resource(
        "Shop Floor",
        &settings("mysql://perf@h/app"),
        &ResourceSettings::default()
    )
    .is_err());
}

#[test]
fn the_server_is_told_from_its_version() {
    let maria = Server::of("10.11.6-MariaDB-0+deb12u1");
    assert_eq!(maria.flavor, Flavor::Mariadb);
    assert_eq!(maria.name(), "MariaDB 10.11.6");
    assert!(!maria.has_set_persist(), "no MariaDB has SET PERSIST");
    let mysql = Server::of("8.0.36-0ubuntu0.22.04.1");
    assert_eq!((mysql.flavor, mysql.major), (Flavor::Mysql, 8));
    assert_eq!(mysql.name(), "MySQL 8.0.36");
    assert!(mysql.has_set_persist());
    assert!(!Server::of("5.7.44-log").has_set_persist());
}

fn counters(at: Instant, questions: u64, own: u64, slow: u64, pool: (u64, u64)) -> Counters {
    Counters {
        at,
        questions,
        own,
        slow,
        pool: Some(pool),
    }
}

#[test]
fn rates_are_per_second_without_perfpilots_own_statements_and_survive_a_reset() {
    let t0 = Instant::now();
    let then = counters(t0, 1_000, 10, 2, (10_000, 500));
    let now = counters(t0 + Duration::from_secs(5), 1_530, 40, 7, (20_000, 1_500));
    let r = Rates::between(&then, &now).unwrap();
    assert_eq!(
        r.queries_per_s, 100.0,
        "530 questions less 30 of perfpilot's in 5 s"
    );
    assert_eq!(r.slow_queries_per_s, 1.0);
    assert_eq!(r.buffer_pool_hit_pct(), Some(90.0));
    // Nothing asked of the buffer pool: a gap, not 100 % or 0 %.
    let idle = counters(t0 + Duration::from_secs(5), 1_040, 40, 2, (10_000, 500));
    let r = Rates::between(&then, &idle).unwrap();
    assert_eq!(r.buffer_pool_hit_pct(), None);
    assert_eq!(r.queries_per_s, 2.0);
    // Only perfpilot's own statements: never a negative rate.
    let own_only = counters(t0 + Duration::from_secs(5), 1_020, 40, 2, (10_000, 500));
    assert_eq!(Rates::between(&then, &own_only).unwrap().queries_per_s, 0.0);
    let flushed = counters(t0 + Duration::from_secs(5), 3, 40, 0, (10, 1));
    assert!(
        Rates::between(&then, &flushed).is_none(),
        "FLUSH STATUS is no negative rate"
    );
    assert!(Rates::between(&then, &then).is_none(), "no time, no rate");
}

fn status(connected: u64, max_connections: u64) -> Status {
    Status {
        questions: 0,
        threads_connected: connected,
        threads_running: 1,
        slow_queries: 0,
        pool: None,
        max_connections,
        performance_schema: true,
        sent: 0,
    }
}

#[test]
fn advice_names_the_numbers_behind_it() {
    assert!(advice(&status(10, 151), None).is_empty());
    let crowded = advice(&status(130, 151), None);
    assert_eq!(crowded.len(), 1);
    assert!(
        crowded[0]
            .evidence
            .starts_with("130 of max_connections 151 in use (86 %)"),
        "{}",
        crowded[0].evidence
    );
    let t0 = Instant::now();
    let cold = Rates::between(
        &counters(t0, 0, 0, 0, (0, 0)),
        &counters(t0 + Duration::from_secs(5), 0, 0, 0, (10_000, 2_000)),
    )
    .unwrap();
    let advice = advice(&status(10, 151), Some(&cold));
    assert_eq!(advice.len(), 1);
    assert_eq!(advice[0].title, "Raise innodb_buffer_pool_size");
    assert!(
        advice[0].evidence.starts_with(
            "80.0 % of InnoDB page requests were served from the buffer pool over the last 5 s (2000 of 10000 read from disk)"
        ),
        "{}",
        advice[0].evidence
    );
}

#[test]
fn perfpilots_own_statements_are_left_out_of_the_top_list() {
    // As MariaDB 10.11 and MySQL 8 write their digests.
    for own in [
        "SELECT ? ",
        "SHOW GLOBAL STATUS WHERE `Variable_name` IN (...) ",
        "SHOW SLAVE STATUS ",
        "SHOW REPLICA STATUS",
        "SELECT @@GLOBAL . `max_connections` , @@GLOBAL . `performance_schema` ",
        "SELECT `VERSION` ( ) ",
        "SET SESSION MAX_STATEMENT_TIME = ? ",
        "SET SESSION `max_execution_time` = ?",
        "SELECT @@`max_allowed_packet` , @@`wait_timeout` ",
        "SELECT SCHEMA_NAME , `DIGEST` , LEFT ( `DIGEST_TEXT` , ? ) , `COUNT_STAR` , `SUM_TIMER_WAIT` FROM `performance_schema` . `events_statements_summary_by_digest` WHERE `DIGEST` IS NOT NULL ORDER BY `SUM_TIMER_WAIT` DESC LIMIT ? ",
    ] {
        assert!(is_own(own), "{own}");
    }
    for app in [
        "SELECT SUM ( `qty` ) FROM `orders` WHERE `customer` = ? ",
        "SELECT ? FROM `orders`",
        "SHOW TABLES",
        "UPDATE `orders` SET `qty` = ? WHERE `id` = ?",
    ] {
        assert!(!is_own(app), "{app}");
    }
}

fn digest(calls: u64, total_ms: f64, text: &str) -> Digest {
    Digest {
        calls,
        total_ms,
        text: text.into(),
    }
}

#[test]
fn top_statements_are_deltas_most_time_first() {
    let key = |d: &str| (Some("app".to_owned()), d.to_owned());
    let before: Reading = [
        (key("a"), digest(100, 1_000.0, "SELECT a")),
        (key("b"), digest(10, 50.0, "SELECT b")),
        (key("c"), digest(500, 9_000.0, "SELECT c")),
    ]
    .into_iter()
    .collect();
    let now: Reading = [
        // 10 more calls, 300 ms more.
        (key("a"), digest(110, 1_300.0, "SELECT a")),
        // Not called in the window.
        (key("b"), digest(10, 50.0, "SELECT b")),
        // Truncated since: sits the window out rather than counting backwards.
        (key("c"), digest(3, 20.0, "SELECT c")),
        // New: all of it is in the window.
        (key("d"), digest(4, 100.0, "SELECT d")),
    ]
    .into_iter()
    .collect();
    let top = top(&before, &now, 10.0);
    let queries: Vec<&str> = top.iter().map(|q| q.query.as_str()).collect();
    assert_eq!(queries, ["SELECT a", "SELECT d"]);
    assert_eq!(top[0].calls_per_s, 1.0);
    assert_eq!(top[0].mean_ms, 30.0);
    assert_eq!(top[0].total_ms, 300.0);
    assert_eq!(top[0].share_pct, 75.0);
    assert_eq!(top[1].share_pct, 25.0);
}

#[tokio::test]
async fn a_closed_port_is_refused_in_words() {
    // Port 1 on loopback: nothing listens there.
    let err = check_with(
        &settings("mysql://perf@127.0.0.1:1/app"),
        Some("s3cret-pw".into()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.field, "url");
    assert!(
        err.rule
            .starts_with("cannot reach the server at 127.0.0.1:1: connection refused"),
        "{err}"
    );
    assert!(!err.to_string().contains("s3cret-pw"));
}

#[tokio::test]
async fn the_password_is_read_from_where_the_settings_say() {
    let dir = std::env::temp_dir().join(format!("perfpilot-mysql-pw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mysql.password");
    std::fs::write(&file, "maria-secret\nignored\n").unwrap();
    let s = MysqlSettings {
        password_file: Some(file),
        ..settings("mysql://perf@127.0.0.1:1/app")
    };
    assert_eq!(s.password().await.unwrap().as_deref(), Some("maria-secret"));
    let missing = MysqlSettings {
        password_env: Some("PERFPILOT_TEST_NO_SUCH_MYSQL_PASSWORD".into()),
        ..settings("mysql://perf@127.0.0.1:1/app")
    };
    let err = check(&missing).await.unwrap_err();
    assert_eq!(
        err,
        "password_env: the environment variable PERFPILOT_TEST_NO_SUCH_MYSQL_PASSWORD is not set"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
