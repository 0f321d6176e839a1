//! MySQL/MariaDB databases against a real MariaDB 10.11 (Debian's, a throwaway server each
//! test starts once), driven through the connector itself: the check names the server and
//! what will not work for the user; ticks carry the probe latency, queries/s, connections,
//! the buffer pool hit ratio and slow queries, and a gap, not 0, for the replication lag of
//! a primary; top statements come from performance_schema deltas without perfpilot's own;
//! a wrong password, a password in the URL and a closed port are refused in words with no
//! password in them; the settings actuator sets, reads back and rolls back an allow-listed
//! variable, rolls back at once a value the server adjusted, and refuses one off the list;
//! a server killed mid-run is a reason, then a reconnect.

use std::path::Path;
use std::time::Duration;

use connectors::actuators::mysql_setting::{self, MysqlSetting};
use connectors::sources::mysql::{self, MysqlSettings};
use engine::actions::ActionRequest;
use engine::actuator::{Actuator, Applied, Step};
use engine::database::TopQueries;
use engine::model::{DatabaseSettingAction, Resource, ResourceSettings};
use engine::series::Tick;
use engine::source::Poll;
use tests::{free_port, now_ms, Mariadb, TempDir};

const RESOURCE: &str = "database:shop";
const PERFORMANCE_SCHEMA_OFF: &str = "performance_schema is off: top statements unavailable (start the server with performance_schema=ON; it cannot be switched on while the server runs)";

/// The `app` database with an InnoDB table the probe and the workload read.
fn create_app(db: &Mariadb) {
    db.mysql(
        "CREATE DATABASE app; USE app; \
         CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer INT NOT NULL, \
                              qty INT NOT NULL, KEY (customer)) ENGINE=InnoDB; \
         INSERT INTO orders (customer, qty) SELECT seq % 50, seq % 7 FROM seq_1_to_2000; \
         GRANT ALL ON app.* TO 'perf'@'%'",
    );
}

fn settings_of(url: String, password_file: &Path) -> MysqlSettings {
    MysqlSettings {
        url,
        password_file: Some(password_file.to_owned()),
        password_env: None,
        probe_query: Some("SELECT count(*) FROM orders".into()),
        group: None,
        statement_timeout_ms: 2000,
    }
}

fn password_file(dir: &TempDir, password: &str) -> std::path::PathBuf {
    let file = dir.0.join("mysql.password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    file
}

fn request(resource: &Resource) -> ActionRequest {
    let mut request = ActionRequest::new(resource, &[120.0f64; 10], 120.0, now_ms()).unwrap();
    request.dry_run = false;
    request
}

fn value(tick: &Tick, metric: &str) -> Option<f32> {
    tick.value(RESOURCE, metric)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // 235 lines today; split before it grows
async fn a_mariadb_server_is_checked_watched_tuned_and_refused_in_words() {
    let mut db = Mariadb::start();
    create_app(&db);
    let dir = TempDir::new("perfpilot-mysql");
    let settings = settings_of(db.url("app"), &password_file(&dir, Mariadb::PASSWORD));

    // Connect once: the server's name, and nothing that will not work for this user.
    let report = mysql::check(&settings).await.unwrap();
    assert!(
        report.server_version.starts_with("MariaDB 10.11."),
        "{report:?}"
    );
    assert!(report.statements, "{report:?}");
    assert_eq!(report.tuning_unavailable, None);
    assert!(report.unavailable.is_empty(), "{report:?}");

    // Refusals in words, never with a password in them.
    let wrong = "not-the-password-7Qz";
    let err = mysql::check_with(&settings, Some(wrong.into()))
        .await
        .unwrap_err();
    assert_eq!(err.field, "url", "{err}");
    assert!(
        err.rule
            .starts_with("the server refused our credentials for user \"perf\""),
        "{err}"
    );
    let err = err.to_string();
    assert!(
        !err.contains(wrong) && !err.contains(Mariadb::PASSWORD),
        "{err}"
    );
    let inline = MysqlSettings {
        url: format!(
            "mysql://perf:{}@127.0.0.1:{}/app",
            Mariadb::PASSWORD,
            db.port
        ),
        ..settings.clone()
    };
    let refusal = inline.validate().unwrap_err();
    assert_eq!(refusal.field, "url");
    assert!(
        !refusal.to_string().contains(Mariadb::PASSWORD),
        "{refusal}"
    );
    let err = mysql::check(&inline).await.unwrap_err();
    assert!(err.starts_with("url: must not contain a password"), "{err}");
    let closed = free_port();
    let nowhere = MysqlSettings {
        url: format!("mysql://perf@127.0.0.1:{closed}/app"),
        ..settings.clone()
    };
    let err = mysql::check(&nowhere).await.unwrap_err();
    assert!(
        err.starts_with(&format!(
            "url: cannot reach the server at 127.0.0.1:{closed}: connection refused"
        )),
        "{err}"
    );

    // Watched: the first tick has the probe but no rate yet (rates need two readings),
    // and reads the statement summary for the first time.
    let resource = mysql::resource("shop", &settings, &ResourceSettings::default()).unwrap();
    assert_eq!(resource.id.as_str(), RESOURCE);
    let mut poll = mysql::poll(&resource, settings.clone()).unwrap();
    let first = poll.collect(now_ms()).await.unwrap();
    assert!(value(&first, "latency").is_some_and(|ms| ms > 0.0));
    assert_eq!(value(&first, "queries"), None);
    let first_report: TopQueries =
        serde_json::from_value(poll.details().expect("the first tick reads the summary")).unwrap();
    assert_eq!(
        (first_report.window_s, first_report.unavailable),
        (0.0, None)
    );

    // A workload between two ticks moves the numbers it should.
    let workload: String = (0..20)
        .map(|customer| format!("SELECT SUM(qty) FROM orders WHERE customer = {customer}; "))
        .collect();
    db.mysql(&format!("USE app; {workload}"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = poll.collect(now_ms()).await.unwrap();
    let latency = value(&second, "latency").expect("the probe's latency");
    assert!(latency > 0.0, "{latency}");
    for metric in ["latency_p50", "latency_p95", "latency_p99", "canary_ms"] {
        assert!(
            value(&second, metric).is_some_and(|ms| ms > 0.0),
            "{metric}"
        );
    }
    let connections = value(&second, "connections_pct").unwrap();
    assert!(connections > 0.0 && connections <= 100.0, "{connections}");
    assert!(value(&second, "connections").unwrap() >= 1.0);
    let hit = value(&second, "buffer_pool_hit_pct").expect("the probe asks the buffer pool");
    assert!((0.0..=100.0).contains(&hit), "{hit}");
    let queries = value(&second, "queries").unwrap();
    assert!(queries > 0.0, "the workload's 20 statements: {queries}/s");
    assert!(value(&second, "slow_queries_per_s").unwrap() >= 0.0);
    assert_eq!(
        value(&second, "replication_lag_s"),
        None,
        "a primary has no replication lag: a gap, not 0"
    );

    // The 11th tick reads the summary again: the workload's statement by time, without
    // perfpilot's own statements.
    for _ in 3..=11 {
        poll.collect(now_ms()).await.unwrap();
    }
    let report: TopQueries =
        serde_json::from_value(poll.details().expect("the 11th tick reads the summary")).unwrap();
    assert!(report.window_s > 0.0, "{report:?}");
    let sum = report
        .top
        .iter()
        .find(|q| q.query.contains("SUM") && q.query.contains("customer"))
        .unwrap_or_else(|| panic!("the workload's statement in {:?}", report.top));
    assert!(
        (sum.calls_per_s * report.window_s - 20.0).abs() < 1e-6,
        "{sum:?}"
    );
    assert!(sum.mean_ms > 0.0 && sum.share_pct > 0.0, "{sum:?}");
    for q in &report.top {
        for own in [
            "GLOBAL STATUS",
            "SLAVE STATUS",
            "REPLICA STATUS",
            "@@GLOBAL",
            "events_statements_summary_by_digest",
            "VERSION",
        ] {
            assert!(!q.query.contains(own), "perfpilot's own: {q:?}");
        }
        assert_ne!(q.query.trim(), "SELECT ?", "the canary is perfpilot's own");
    }

    // Tuning an allow-listed variable: captured, set, read back on a new connection,
    // rolled back to the captured value.
    let request = request(&resource);
    let original = db.mysql("SELECT @@GLOBAL.max_connections");
    let raise = DatabaseSettingAction {
        parameter: "max_connections".into(),
        value: "200".into(),
    };
    mysql_setting::validate(&raise).unwrap();
    let actuator = MysqlSetting::new(raise, Ok(settings.clone()));
    let (captured, steps) = match engine::actuator::apply(&actuator, &request).await {
        Applied::InEffect { captured, steps } => (captured, steps),
        other => panic!("{other:?}"),
    };
    assert!(
        captured
            .summary
            .starts_with(&format!("max_connections = {original} (MariaDB 10.11.")),
        "{}",
        captured.summary
    );
    let apply = steps.iter().find(|s| s.step == Step::Apply).unwrap();
    assert!(
        apply
            .detail
            .starts_with("SET GLOBAL max_connections = 200; MariaDB 10.11.")
            && apply.detail.ends_with(
                "has no SET PERSIST: the change does not survive a restart of the server"
            ),
        "{}",
        apply.detail
    );
    assert!(steps.iter().all(|s| s.ok), "{steps:?}");
    assert_eq!(db.mysql("SELECT @@GLOBAL.max_connections"), "200");
    assert!(
        actuator.kept(&request).await.is_none(),
        "MariaDB has no SET PERSIST: nothing to do once kept"
    );
    let back = engine::actuator::roll_back(&actuator, &request, &captured).await;
    assert!(back.restored, "{:?}", back.steps);
    assert_eq!(db.mysql("SELECT @@GLOBAL.max_connections"), original);

    // A value the server rounds is not the change asked for: rolled back at once.
    let heap = db.mysql("SELECT @@GLOBAL.max_heap_table_size");
    let odd = MysqlSetting::new(
        DatabaseSettingAction {
            parameter: "max_heap_table_size".into(),
            value: "16777215".into(),
        },
        Ok(settings.clone()),
    );
    match engine::actuator::apply(&odd, &request).await {
        Applied::Failed {
            error,
            rolled_back,
            steps,
        } => {
            assert!(
                error.starts_with(
                    "the change did not take effect: max_heap_table_size shows 16776192 on a new connection, expected 16777215"
                ),
                "{error}"
            );
            assert_eq!(rolled_back, Some(true), "{steps:?}");
            let apply = steps.iter().find(|s| s.step == Step::Apply).unwrap();
            assert!(
                apply
                    .detail
                    .contains("the server warned: Truncated incorrect max_heap_table_size value"),
                "{}",
                apply.detail
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(db.mysql("SELECT @@GLOBAL.max_heap_table_size"), heap);

    // A variable off the allow-list is refused naming the field, and nothing changes.
    let off_list = DatabaseSettingAction {
        parameter: "innodb_flush_log_at_trx_commit".into(),
        value: "2".into(),
    };
    assert_eq!(
        mysql_setting::validate(&off_list).unwrap_err().field,
        "settings.action.parameter"
    );
    let before = db.mysql("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit");
    match engine::actuator::apply(&MysqlSetting::new(off_list, Ok(settings.clone())), &request)
        .await
    {
        Applied::Failed {
            error,
            rolled_back: None,
            ..
        } => assert!(
            error.starts_with(
                "could not capture the current state: settings.action.parameter: innodb_flush_log_at_trx_commit is not one perfpilot tunes"
            ),
            "{error}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        db.mysql("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit"),
        before
    );

    // The server goes away: the tick fails with the reason, the next one says why it
    // cannot reconnect; once the server is back a tick reconnects.
    db.kill();
    let lost = poll.collect(now_ms()).await.unwrap_err();
    let refused = format!(
        "cannot reach the server at 127.0.0.1:{}: connection refused",
        db.port
    );
    assert!(
        lost.reason == "the connection to the server was lost" || lost.reason.starts_with(&refused),
        "{lost}"
    );
    let down = poll.collect(now_ms()).await.unwrap_err();
    assert!(down.reason.starts_with(&refused), "{down}");
    db.restart();
    let back = poll.collect(now_ms()).await.unwrap();
    assert!(value(&back, "latency").is_some_and(|ms| ms > 0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_will_not_work_is_said_before_a_server_is_added() {
    let db = Mariadb::start_with(&["--performance-schema=OFF"]);
    create_app(&db);
    let plain_password = "plain-secret-4Hw";
    db.mysql(&format!(
        "CREATE USER 'plain'@'%' IDENTIFIED BY '{plain_password}'; GRANT SELECT ON app.* TO 'plain'@'%'"
    ));
    let dir = TempDir::new("perfpilot-mysql-off");
    let file = password_file(&dir, Mariadb::PASSWORD);

    // performance_schema off: watched all the same, the Queries panel says why it is empty.
    let settings = settings_of(db.url("app"), &file);
    let report = mysql::check(&settings).await.unwrap();
    assert!(!report.statements);
    assert_eq!(report.unavailable, [PERFORMANCE_SCHEMA_OFF]);
    let resource = mysql::resource("shop", &settings, &ResourceSettings::default()).unwrap();
    let mut poll = mysql::poll(&resource, settings).unwrap();
    let tick = poll.collect(now_ms()).await.unwrap();
    assert!(value(&tick, "latency").is_some_and(|ms| ms > 0.0));
    assert!(value(&tick, "connections_pct").is_some_and(|pct| pct > 0.0));
    let details: TopQueries = serde_json::from_value(poll.details().unwrap()).unwrap();
    assert_eq!(details.unavailable.as_deref(), Some(PERFORMANCE_SCHEMA_OFF));
    assert!(details.top.is_empty());

    // A user without monitoring or tuning privileges: each thing that will not work is
    // named with the grant that fixes it.
    let plain_dir = TempDir::new("perfpilot-mysql-plain");
    let plain = settings_of(
        format!("mysql://plain@127.0.0.1:{}/app", db.port),
        &password_file(&plain_dir, plain_password),
    );
    let report = mysql::check(&plain).await.unwrap();
    assert_eq!(report.unavailable.len(), 3, "{report:?}");
    assert_eq!(report.unavailable[0], PERFORMANCE_SCHEMA_OFF);
    assert!(
        report.unavailable[1].starts_with(
            "user \"plain\" may not read the replication status: replication lag unavailable"
        ),
        "{report:?}"
    );
    let tuning = report.tuning_unavailable.as_deref().unwrap();
    assert!(
        tuning.starts_with(
            "unavailable: user \"plain\" holds neither SUPER nor SYSTEM_VARIABLES_ADMIN"
        ),
        "{tuning}"
    );
    assert_eq!(report.unavailable[2], format!("tuning {tuning}"));
    assert!(report
        .unavailable
        .iter()
        .all(|why| !why.contains(plain_password)));
}

/// Through perfpilot itself: a `[[mysql]]` table in the configuration file is the whole
/// setup; the database gets its card with a probe latency, Settings lists it as
/// MySQL/MariaDB with its health, and the password is in no page or answer.
#[test]
fn a_mysql_table_in_the_configuration_file_watches_the_database() {
    let db = Mariadb::start();
    create_app(&db);
    let dir = TempDir::new("perfpilot-mysql-e2e");
    let secret = password_file(&dir, Mariadb::PASSWORD);
    let config = dir.0.join("perfpilot.toml");
    std::fs::write(
        &config,
        format!(
            "[[mysql]]\nname = \"shop\"\nurl = \"{}\"\npassword_file = \"{}\"\nprobe_query = \"SELECT count(*) FROM orders\"\n",
            db.url("app"),
            secret.display()
        ),
    )
    .unwrap();
    let log = dir.0.join("perfpilot.log");
    // Its own data directory: the default (`data` under the working directory) would be
    // the repository's tests/ folder.
    let data = dir.0.join("data");
    let server = tests::Perfpilot::start_logged(
        &log,
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--metrics-on-main-listener",
        ],
    );
    let card = server.card(RESOURCE, 30, "the MySQL database's card", |card| {
        card["value"].as_f64().is_some_and(|v| v > 0.0)
    });
    assert_eq!(card["metric"], "latency", "{card}");
    let (status, sources) = server.get("/api/sources");
    assert_eq!(status, 200, "{sources}");
    assert!(sources.contains("MySQL/MariaDB"), "{sources:.2000}");
    assert!(sources.contains("database:shop"), "{sources:.2000}");
    // The same kind from the UI's database form and the API: the form offers the
    // server's database kinds; a MySQL one is added with its password kept on the
    // server, its connection shown without it and edited generically.
    let (status, kinds) = server.get("/api/database_kinds");
    assert_eq!(status, 200, "{kinds}");
    let kinds: serde_json::Value = serde_json::from_str(&tests::body_of(&kinds)).unwrap();
    let names: Vec<&str> = kinds
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["postgres", "mysql"], "{kinds}");
    let add = |kind: &str, name: &str| {
        tests::http_post_json(
            server.addr,
            "/api/v1/databases",
            &serde_json::json!({
                "kind": kind,
                "name": name,
                "url": db.url("app"),
                "password": Mariadb::PASSWORD,
            })
            .to_string(),
        )
    };
    let (status, refused) = add("redis", "orders");
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused.contains("kind") && refused.contains("not a database kind"),
        "{refused}"
    );
    let (status, added) = add("mysql", "orders");
    assert_eq!(status, 200, "{added}");
    assert!(added.contains("\"database:orders\""), "{added}");
    assert!(added.contains("MariaDB"), "{added}");
    let (status, connection) = server.get("/api/database_connection?resource=database%3Aorders");
    assert_eq!(status, 200, "{connection}");
    assert!(connection.contains("stored on the server"), "{connection}");
    let (status, changed) = tests::http_post_form(
        server.addr,
        "/api/update_database",
        &format!(
            "resource=database%3Aorders&url={}&probe_query=SELECT%202",
            tests::urlencode(&db.url("app"))
        ),
    );
    assert_eq!(status, 200, "{changed}");
    let (_, connection) = server.get("/api/database_connection?resource=database%3Aorders");
    assert!(connection.contains("SELECT 2"), "{connection}");
    assert!(connection.contains("stored on the server"), "{connection}");
    // The password is nowhere perfpilot writes or answers.
    let (status, page) = server.get("/settings");
    assert_eq!(status, 200);
    let (_, resource_page) = server.get("/resource?id=database%3Ashop");
    let (_, snapshots) = server.get("/api/snapshots");
    let (_, audit) = server.get("/api/audit?limit=500");
    let (_, metrics) = server.get("/metrics");
    let (_, overview) = tests::http_request(server.addr, "POST", "/api/overview", &[], "");
    drop(server);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    for (what, text) in [
        ("/api/sources", &sources),
        ("/settings", &page),
        ("the resource page", &resource_page),
        ("snapshots", &snapshots),
        ("audit", &audit),
        ("/metrics", &metrics),
        ("overview", &overview),
        ("log", &log_text),
    ] {
        assert!(
            !text.contains(Mariadb::PASSWORD),
            "the password leaked into {what}"
        );
    }
    assert!(
        metrics.contains("database:shop"),
        "/metrics names the database"
    );
}
