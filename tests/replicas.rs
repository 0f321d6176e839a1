//! Two replicas on one PostgreSQL (`--database-url`): the store scenarios every store
//! passes, the lease fence refusing a stale leader's writes, and two real perfpilot
//! processes handing leadership over on `kill -9`, SIGTERM and SIGSTOP, with edits taken
//! by the leader only and followed by the other.

use std::time::{Duration, Instant};

use server::persist::conformance as scenario;
use server::persist::{Fence, Location, Persist};
use tests::{
    body_json, eventually_text, horizontal_overflow, http_post_json, http_request, Browser,
    Perfpilot, Postgres, TempDir,
};

const PASSWORD: &str = "state-secret-K3v9";

/// A role that owns one fresh database per name, and its password in a file.
struct Shared {
    pg: Postgres,
    dir: TempDir,
}

impl Shared {
    fn start() -> Shared {
        let pg = Postgres::start();
        pg.psql(
            "postgres",
            &format!("CREATE ROLE perfpilot LOGIN PASSWORD '{PASSWORD}'"),
        );
        let dir = TempDir::new("perfpilot-replicas");
        std::fs::write(dir.0.join("db.password"), format!("{PASSWORD}\n")).unwrap();
        Shared { pg, dir }
    }

    fn database(&self, name: &str) -> String {
        self.pg.psql(
            "postgres",
            &format!("CREATE DATABASE {name} OWNER perfpilot"),
        );
        format!("postgresql://perfpilot@127.0.0.1:{}/{name}", self.pg.port)
    }

    fn password_file(&self) -> String {
        self.dir.0.join("db.password").display().to_string()
    }

    fn location(&self, name: &str) -> Location {
        let settings: connectors::sources::postgres::PostgresSettings =
            serde_json::from_value(serde_json::json!({
                "url": self.database(name),
                "password_file": self.password_file(),
            }))
            .unwrap();
        Location::Postgres(Box::new(settings))
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The SQLite unit tests' scenarios, each on a fresh PostgreSQL database; then the fence.
#[test]
fn the_store_scenarios_pass_on_postgresql_and_the_fence_refuses_a_stale_leader() {
    let shared = Shared::start();
    block_on(async {
        scenario::tokens_are_saved_revoked_listed_and_audited(shared.location("s_tokens")).await;
        scenario::a_failed_write_is_reported_and_refuses_everything_after_it(
            shared.location("s_failed"),
        )
        .await;
        scenario::only_the_newest_before_afters_are_kept_and_loaded(shared.location("s_events"))
            .await;
        scenario::pruning_removes_only_audit_entries_older_than_the_cut(shared.location("s_prune"))
            .await;
        scenario::pruning_more_than_a_batch_takes_several_statements_and_removes_all(
            shared.location("s_prune_batch"),
        )
        .await;
        scenario::the_audit_query_selects_exactly_the_asked_change_numbers(
            shared.location("s_query"),
        )
        .await;
        scenario::changes_are_durable_in_order_and_reload_into_the_same_store(
            shared.location("s_reload"),
        )
        .await;
        scenario::snapshots_taken_survive_a_restart(shared.location("s_taken")).await;
    });

    // The alert store's scenarios on the shared tables.
    {
        use server::persist::alerts::{conformance as alerts, AlertDb};
        let fresh = |name: &str| {
            let location = shared.location(name);
            // Persist creates the shared schema, the alert tables with it.
            drop(Persist::open(&location).unwrap());
            let Location::Postgres(settings) = location else {
                unreachable!()
            };
            AlertDb::shared(&settings).unwrap()
        };
        alerts::a_waiting_firing_notification_is_counted_until_it_is_done(fresh("a_counted"));
        alerts::an_acknowledgement_names_its_episode(fresh("a_ack"));
        alerts::active_silences_are_never_cut_by_the_recent_list(fresh("a_silences"));
        alerts::resolving_ends_the_episode_and_queues_in_one_step(fresh("a_resolve"));
    }

    // The fence: replica "a" believes it leads in epoch 1, but "b" took the lease in
    // epoch 2 (as after a SIGSTOP past the lease).
    let location = shared.location("s_fence");
    block_on(async {
        let fence = std::sync::Arc::new(Fence::new("a"));
        let (persist, _) = Persist::open_fenced(&location, Some(fence.clone())).unwrap();
        shared.pg.psql(
            "s_fence",
            "INSERT INTO lease VALUES ('leader', 'b', 'http://b', 2, now() + interval '1 hour', now())",
        );
        fence.set(1);
        let store = scenario::cpu_store(Default::default());
        let record = store
            .apply_with(
                engine::changes::Mutation::ClearTarget {
                    id: engine::model::ResourceId::new("cpu").unwrap(),
                },
                |r, s| persist.enqueue_change(r, s, &scenario::admin()),
            )
            .unwrap();
        let refused = persist.durable(record.change).await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("led in epoch 1, but b leads in epoch 2"),
            "{refused}"
        );
        persist.audit_mark("cpu", "stale", &scenario::admin(), 1_000);
        // A token is not an act: any replica saves it, and nothing failed for good.
        persist
            .save_token(scenario::token("t1", 'a'), &scenario::admin())
            .await
            .unwrap();
        assert!(persist.check().is_ok(), "the fence does not fail the store");
        persist.flush().await;
    });
    let journal = shared.pg.psql(
        "s_fence",
        "SELECT count(*) FROM audit WHERE change IS NOT NULL OR kind = 'mark'",
    );
    assert_eq!(journal, "0", "no refused write reached the store");

    // Once the lease is "a"'s in epoch 3, the same replica writes again.
    block_on(async {
        let fence = std::sync::Arc::new(Fence::new("a"));
        let (persist, _) = Persist::open_fenced(&location, Some(fence.clone())).unwrap();
        shared.pg.psql(
            "s_fence",
            "UPDATE lease SET holder = 'a', epoch = 3, expires_at = now() + interval '1 hour'",
        );
        fence.set(3);
        persist.audit_mark("cpu", "fresh", &scenario::admin(), 2_000);
        persist.flush().await;
    });
    assert_eq!(
        shared
            .pg
            .psql("s_fence", "SELECT count(*) FROM audit WHERE kind = 'mark'"),
        "1"
    );
}

fn readyz(server: &Perfpilot) -> String {
    server.get("/readyz").1
}

/// Polls both replicas every 50 ms until `leader` says it leads; answers how long it took.
fn until_leads(leader: &Perfpilot, name: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let said = readyz(leader);
        if said.contains(&format!("ready (leader {name} in epoch")) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{name} did not lead within {limit:?}; /readyz says {said:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn overview(server: &Perfpilot) -> serde_json::Value {
    let (_, body) = http_request(server.addr, "POST", "/api/overview", &[], "");
    body_json(&body)
}

fn cpu_target(server: &Perfpilot) -> Option<f64> {
    overview(server)["cards"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == "cpu")?["target"]["value"]
        .as_f64()
}

fn set_cpu_target(server: &Perfpilot, value: f64) -> (u16, String) {
    http_post_json(
        server.addr,
        "/api/v1/resources/cpu/target",
        &format!(r#"{{"metric":"utilization","value":{value},"for_secs":60}}"#),
    )
}

fn start_replica(shared: &Shared, url: &str, name: &str, data: &TempDir) -> Perfpilot {
    start_replica_with(shared, url, name, data, &[])
}

/// A shorter lease than the default 8 s: where a test is about what happens after a
/// failover, not how long it takes, it waits less.
const SHORT_LEASE: [&str; 2] = ["--lease-ms", "3000"];

fn start_replica_with(
    shared: &Shared,
    url: &str,
    name: &str,
    data: &TempDir,
    extra: &[&str],
) -> Perfpilot {
    let password_file = shared.password_file();
    let mut args = vec![
        "--database-url",
        url,
        "--database-password-file",
        &password_file,
        "--replica-name",
        name,
        "--metrics-on-main-listener",
    ];
    args.extend_from_slice(extra);
    Perfpilot::start_with_data(&data.0, &args)
}

/// Polls `server` until it follows `leader` (at most 10 s).
fn follows(server: &Perfpilot, leader: &str) {
    let started = Instant::now();
    loop {
        let said = readyz(server);
        if said.contains(&format!("follower of {leader} (")) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{said:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Replica a (leading) and replica b (following) on `url`, each with its own data
/// directory and `extra` arguments.
struct Pair {
    a: Perfpilot,
    b: Perfpilot,
    data_a: TempDir,
    data_b: TempDir,
}

impl Pair {
    fn start(shared: &Shared, url: &str, extra: &[&str]) -> Pair {
        let (data_a, data_b) = (TempDir::new("replica-a"), TempDir::new("replica-b"));
        let a = start_replica_with(shared, url, "a", &data_a, extra);
        until_leads(&a, "a", Duration::from_secs(15));
        let b = start_replica_with(shared, url, "b", &data_b, extra);
        follows(&b, "a");
        Pair {
            a,
            b,
            data_a,
            data_b,
        }
    }
}

/// Pushes `custom:9`'s `metric` at the value it is set to, four times a second, to every
/// replica that answers (as an application behind a load balancer would), until dropped.
struct Pusher {
    value: std::sync::Arc<std::sync::atomic::AtomicU32>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    addrs: std::sync::Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>>,
}

impl Pusher {
    fn start(addrs: Vec<std::net::SocketAddr>, metric: &'static str, value: u32) -> Pusher {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        use std::sync::Arc;
        let pusher = Pusher {
            value: Arc::new(AtomicU32::new(value)),
            stop: Arc::new(AtomicBool::new(false)),
            addrs: Arc::new(std::sync::Mutex::new(addrs)),
        };
        let (value, stop, to) = (
            pusher.value.clone(),
            pusher.stop.clone(),
            pusher.addrs.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let addrs = to.lock().unwrap().clone();
                let body = format!(
                    r#"{{"samples":[{{"resource":"custom:9","metric":"{metric}","value":{}}}]}}"#,
                    value.load(Ordering::Relaxed)
                );
                for addr in &addrs {
                    try_push(*addr, &body);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        pusher
    }

    /// The replicas pushed to from now on (a restarted one listens on a new port).
    fn send_to(&self, addrs: Vec<std::net::SocketAddr>) {
        *self.addrs.lock().unwrap() = addrs;
    }

    fn set(&self, value: u32) {
        self.value
            .store(value, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn two_replicas_hand_over_on_kill_term_and_stop_and_either_takes_edits() {
    let shared = Shared::start();
    let url = shared.database("state");
    let Pair {
        a,
        b,
        data_a,
        data_b,
    } = Pair::start(&shared, &url, &[]);

    // Every page's top bar says which replica you are on and who leads.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let browser = runtime.block_on(async {
        let browser = Browser::start().await;
        browser.client.goto(&b.url("/")).await.unwrap();
        browser.wait_for_hydration().await;
        eventually_text(&browser.client, "#replica", "the follower's chip", |t| {
            t == "b · follows a"
        })
        .await;
        for (width, mobile) in [(1280, false), (390, true)] {
            browser.emulate_viewport(width, 900, mobile).await;
            let (overflow, what) = horizontal_overflow(&browser.client).await;
            assert_eq!(overflow, 0, "sideways scroll at {width} px: {what}");
        }
        browser.screenshots_of(".topbar", "replica-follower").await;
        browser
    });

    either_replica_takes_edits_as_the_caller(&a, &b);
    let (status, answer) = set_cpu_target(&a, 71.0);
    assert_eq!(status, 200, "{answer}");
    let started = Instant::now();
    while cpu_target(&b) != Some(71.0) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "b never showed a's edit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, metrics) = a.get("/metrics");
    assert!(
        metrics.contains("perfpilot_leader{replica=\"a\"} 1"),
        "{metrics:.2000}"
    );
    assert!(
        metrics.contains("perfpilot_lease_age_seconds "),
        "{metrics:.2000}"
    );
    let (_, metrics) = b.get("/metrics");
    assert!(metrics.contains("perfpilot_leader{replica=\"b\"} 0"));

    // kill -9 of the leader: b leads within a lease and a retry, and takes edits.
    a.kill_9();
    let took = until_leads(&b, "b", Duration::from_secs(12));
    println!("failover after kill -9: {took:?}");
    // The page open on b says so by itself, without a reload.
    runtime.block_on(async {
        eventually_text(&browser.client, "#replica", "the new leader's chip", |t| {
            t == "b · leads"
        })
        .await;
        browser.screenshots_of(".topbar", "replica-leader").await;
        browser.close().await;
    });
    let (status, answer) = set_cpu_target(&b, 73.0);
    assert_eq!(status, 200, "{answer}");
    let change_after_kill = overview(&b)["change"].as_u64().unwrap();

    // a comes back as a follower and catches up with what b changed meanwhile.
    let a = start_replica(&shared, &url, "a", &data_a);
    follows(&a, "b");
    let started = Instant::now();
    while cpu_target(&a) != Some(73.0) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a never caught up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGTERM: b gives the lease up on its way out; a leads within 2 s.
    let sent = Instant::now();
    let stopping = std::thread::spawn(move || b.terminate());
    let took = until_leads(&a, "a", Duration::from_secs(2));
    println!(
        "handover on SIGTERM: {took:?} (from the signal: {:?})",
        sent.elapsed()
    );
    assert!(stopping.join().unwrap().success());

    // SIGSTOP of the leader past its lease: b (restarted) takes over; a, resumed, finds
    // the lease gone, steps down and follows, and the change counter has one history.
    let b = start_replica(&shared, &url, "b", &data_b);
    follows(&b, "a");
    a.signal("STOP");
    let took = until_leads(&b, "b", Duration::from_secs(12));
    println!("failover after SIGSTOP: {took:?}");
    let (status, answer) = set_cpu_target(&b, 74.0);
    assert_eq!(status, 200, "{answer}");
    a.signal("CONT");
    follows(&a, "b");
    let started = Instant::now();
    while cpu_target(&a) != Some(74.0) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a never caught up after resuming"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let journal = shared.pg.psql(
        "state",
        "SELECT count(*), count(DISTINCT change), max(change) FROM audit WHERE change IS NOT NULL",
    );
    let change_now = overview(&b)["change"].as_u64().unwrap();
    assert_eq!(change_now, change_after_kill + 1);
    assert_eq!(
        journal,
        format!("{change_now}|{change_now}|{change_now}"),
        "every change number once, none lost"
    );
    // The password is nowhere a client or the log could see it.
    for server in [&a, &b] {
        for path in ["/readyz", "/metrics"] {
            assert!(!server.get(path).1.contains(PASSWORD));
        }
    }
}

/// The leader takes edits, and so does the follower, which passes them to the leader with
/// who asked and answers once it holds them itself; a token minted and revoked through the
/// follower holds on both; an edit claiming to be passed on without the store's key is
/// refused.
fn either_replica_takes_edits_as_the_caller(a: &Perfpilot, b: &Perfpilot) {
    let (status, answer) = set_cpu_target(a, 71.0);
    assert_eq!(status, 200, "{answer}");
    let before = overview(a)["change"].as_u64().unwrap();
    let (status, answer) = set_cpu_target(b, 72.0);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(cpu_target(b), Some(72.0), "b shows its own edit at once");
    assert_eq!(cpu_target(a), Some(72.0), "a made it");
    assert_eq!(overview(b)["change"].as_u64(), Some(before + 1));
    // Who asked travels with the edit: a token minted through b works on both replicas,
    // the edit it makes through b is audited as the token's, and its revocation through
    // b holds on both within a couple of seconds.
    let (status, minted) = http_request(
        b.addr,
        "POST",
        "/api/create_token",
        &[],
        "name=ci&role=editor",
    );
    assert_eq!(status, 200, "{minted}");
    let minted = body_json(&minted);
    let bearer = format!("Bearer {}", minted["secret"].as_str().unwrap());
    let token_id = minted["info"]["id"].as_str().unwrap().to_owned();
    let edit = r#"{"metric":"utilization","value":75,"for_secs":60}"#;
    let (status, answer) = http_request(
        b.addr,
        "POST",
        "/api/v1/resources/cpu/target",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        edit,
    );
    assert_eq!(status, 200, "{answer}");
    let (_, audit) = a.get("/api/audit?limit=1");
    let last = &body_json(&audit)["entries"][0];
    assert_eq!(
        (last["user"].as_str(), last["source"].as_str()),
        (Some("token:ci"), Some("token")),
        "{last}"
    );
    let (status, _) = http_request(
        b.addr,
        "POST",
        "/api/revoke_token",
        &[],
        &format!("id={token_id}"),
    );
    assert_eq!(status, 200);
    for server in [a, b] {
        let started = Instant::now();
        loop {
            let (status, _) = http_request(
                server.addr,
                "GET",
                "/api/whoami",
                &[("Authorization", &bearer)],
                "",
            );
            if status == 401 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "a revoked token still works on {}",
                server.addr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Only a replica can pass an edit on: a request that says it was passed on but is not
    // signed with the shared store's key is refused, and changes nothing.
    let (status, answer) = http_request(
        a.addr,
        "POST",
        "/api/v1/resources/cpu/target",
        &[
            ("x-perfpilot-forwarded-by", "b"),
            ("x-perfpilot-identity", "7b7d"),
            ("x-perfpilot-forwarded-at", "0"),
            ("x-perfpilot-forwarded-signature", "00"),
            ("Content-Type", "application/json"),
        ],
        edit,
    );
    assert_eq!(status, 401, "{answer}");
}

/// A change in effect and being verified when its leader is `kill -9`ed is not orphaned:
/// the new leader finds it in the action journal and rolls it back. The service sees the
/// apply once and the rollback once.
#[test]
fn a_change_left_in_verification_by_a_killed_leader_is_rolled_back_by_the_next() {
    let shared = Shared::start();
    let url = shared.database("acting");
    let work = TempDir::new("replicas-acting");
    let log = work.0.join("service.log");
    let script = recording_script(&work.0);
    let Pair { a, b, .. } = Pair::start(
        &shared,
        &url,
        &[
            SHORT_LEASE[0],
            SHORT_LEASE[1],
            "--allow-program",
            &script,
            "--push-create-resources",
        ],
    );
    let load = Pusher::start(vec![a.addr], "load", 20);
    act_through_commands(&a, &script, &log);

    // The breach: a applies the change, and it is in effect, being verified for 10 min.
    load.set(90);
    let lines = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    while shared.psql_state("acting") != "in_effect" {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never in effect; service log {:?}",
            lines()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(lines(), "apply\n");

    // a dies mid-verification; b leads and undoes the change nobody can verify now.
    a.kill_9();
    drop(load);
    until_leads(&b, "b", Duration::from_secs(12));
    let started = Instant::now();
    while shared.psql_state("acting") != "rolled_back" {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not rolled back; service log {:?}",
            lines()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(lines(), "apply\nrollback\n", "each step once");
    let (_, audit) = b.get("/api/audit?kind=action");
    assert!(
        audit.contains("perfpilot stopped or lost the lead while this change was being verified"),
        "{audit:.3000}"
    );
}

/// Gives `custom:9` on `server` a target of load ≤ 50, short windows, a 10-minute
/// verification and a command action: `script <log> apply`, rolled back by
/// `script <log> rollback`.
fn act_through_commands(server: &Perfpilot, script: &str, log: &std::path::Path) {
    let a = server;
    let started = Instant::now();
    let settings = loop {
        let (status, body) = a.get("/api/resource_settings?resource=custom%3A9");
        if status == 200 {
            break body_json(&body);
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut settings = settings;
    for (key, value) in [
        ("window_secs", 2),
        ("baseline_secs", 2),
        ("verify_secs", 600),
        ("cooldown_secs", 1),
        ("stabilization_secs", 1),
    ] {
        settings[key] = value.into();
    }
    settings["dry_run"] = false.into();
    let log_path = log.to_str().unwrap();
    settings["action"] = serde_json::json!({
        "kind": "command",
        "program": script,
        "args": [log_path, "apply"],
        "rollback": {"program": script, "args": [log_path, "rollback"]},
    });
    let form = format!(
        "resource=custom%3A9&settings={}",
        tests::urlencode(&settings.to_string())
    );
    let (status, body) = http_request(a.addr, "POST", "/api/set_resource_settings", &[], &form);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_request(
        a.addr,
        "POST",
        "/api/set_target",
        &[],
        "resource=custom%3A9&metric=load&value=50&for_secs=0",
    );
    assert_eq!(status, 200, "{body}");
}

impl Shared {
    /// The state of the one action in `db`'s journal.
    fn psql_state(&self, db: &str) -> String {
        self.pg.psql(
            db,
            "SELECT coalesce(string_agg(state, ','), '') FROM action_journal",
        )
    }
}

/// `docs/haproxy-two-replicas.cfg`, addresses replaced, in front of two replicas: a page
/// opened through it on the leader stays live when the leader is `kill -9`ed (its
/// websocket reconnects to the other replica), and says who leads once b does.
#[test]
fn a_browser_through_the_documented_haproxy_stays_live_across_a_failover() {
    let shared = Shared::start();
    let url = shared.database("behind");
    let Pair { a, b, .. } = Pair::start(&shared, &url, &SHORT_LEASE);
    let port = tests::free_port();
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/haproxy-two-replicas.cfg"
    ))
    .unwrap()
    .replace("10.0.0.11:3000", &a.addr.to_string())
    .replace("10.0.0.12:3000", &b.addr.to_string())
    .replace("bind :80", &format!("bind 127.0.0.1:{port}"));
    let haproxy = tests::Haproxy::start_config(&config, port);
    let front = format!("http://127.0.0.1:{}/", haproxy.port);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = Browser::start().await;
        let client = &browser.client;
        // HAProxy marks a up as leader after its first check.
        let started = Instant::now();
        loop {
            client.goto(&front).await.unwrap();
            browser.wait_for_hydration().await;
            let chip = tests::text_of(client, "#replica").await;
            if chip == "a · leads" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{chip:?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let banner = "#reconnect-banner";
        let killed = Instant::now();
        a.kill_9();
        // The websocket drops with a; the page says so, then is live again through b.
        let started = Instant::now();
        while client.find(fantoccini::Locator::Css(banner)).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no reconnecting banner"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        while client.find(fantoccini::Locator::Css(banner)).await.is_ok() {
            assert!(
                killed.elapsed() < Duration::from_secs(15),
                "the page never reconnected"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let live_again = killed.elapsed();
        println!("live again through HAProxy {live_again:?} after the leader's kill -9");
        // The page's first retries come at 0.5 and 1.5 s; HAProxy serves from the other
        // replica about a second after the kill. A bound with room for a loaded machine.
        assert!(live_again < Duration::from_secs(5), "{live_again:?}");
        eventually_text(client, "#replica", "b leading, on the same page", |t| {
            t == "b · leads"
        })
        .await;
        println!("b · leads shown {:?} after the kill", killed.elapsed());
        browser.close().await;
    });
    drop(b);
}

/// A firing alert outlives its leader: a fires it and notifies once; after a's `kill -9`,
/// b carries on from the shared store (no second "firing" of its own) and sends the
/// "resolved" when the metric recovers. The receiver sees each notification once, by key.
#[test]
fn an_alert_fired_by_a_killed_leader_is_resolved_by_the_next_without_a_duplicate() {
    let shared = Shared::start();
    let url = shared.database("alerting");
    let rx = tests::Receiver::start();
    let work = TempDir::new("replicas-alerting");
    let config = work.0.join("perfpilot.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nresolve_margin_pct = 10\n\n[[alert_channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\n",
            rx.port
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let Pair { a, b, .. } = Pair::start(
        &shared,
        &url,
        &[
            SHORT_LEASE[0],
            SHORT_LEASE[1],
            "--config",
            &config,
            "--push-create-resources",
        ],
    );
    // Both replicas get the samples, as an application behind a load balancer would
    // send them to whichever answers.
    let value = Pusher::start(vec![a.addr, b.addr], "latency", 20);
    a.card("custom:9", 20, "the pushed resource", |_| true);
    tests::set_window(&a, "custom:9", 1);
    tests::set_target(&a, "custom:9", "latency", 50.0, 0);

    value.set(90);
    let kind = |r: &tests::Request| body_json(&r.body)["kind"].as_str().unwrap_or("").to_owned();
    rx.wait_for("/hook", 30, "a's firing notification", |got| {
        got.iter().any(|r| kind(r) == "firing")
    });
    a.kill_9();
    until_leads(&b, "b", Duration::from_secs(12));
    // b judges the same breach for a few seconds: it must not announce it again.
    std::thread::sleep(Duration::from_secs(3));
    value.set(10);
    rx.wait_for("/hook", 30, "b's resolved notification", |got| {
        got.iter().any(|r| kind(r) == "resolved")
    });
    std::thread::sleep(Duration::from_secs(2));
    drop(value);
    let got = rx.on("/hook");
    // Delivery is at least once: a killed between the receiver's answer and recording it
    // leaves the row undelivered, and b sends it again under the same key (what the
    // receiver deduplicates by). By key, each notification arrived once.
    let mut seen = std::collections::BTreeSet::new();
    let kinds: Vec<String> = got
        .iter()
        .filter(|r| seen.insert(r.header("Idempotency-Key").unwrap_or_default().to_owned()))
        .map(kind)
        .collect();
    assert_eq!(kinds, ["firing", "resolved"], "{got:#?}");
    assert!(
        got.iter().all(|r| r.header("Idempotency-Key").is_some()),
        "every notification carries its key: {got:#?}"
    );
    drop(b);
}

/// Posts `body` to `/api/push`, ignoring a replica that is down (killed on purpose).
fn try_push(addr: std::net::SocketAddr, body: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "POST /api/push HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
}

/// Both replicas watch the same HAProxy pool with failover on; when a server dies only
/// the leader drains it. The follower's pool log says whose failover it is.
#[test]
fn only_the_leader_fails_a_load_balancer_over() {
    let shared = Shared::start();
    let url = shared.database("pool");
    let backends: Vec<tests::TestBackend> = (0..2).map(|_| tests::TestBackend::start()).collect();
    let haproxy = tests::Haproxy::start(&[("a", backends[0].port), ("b", backends[1].port)]);
    let work = TempDir::new("replicas-pool");
    let config = work.0.join("perfpilot.toml");
    std::fs::write(
        &config,
        format!(
            "[[haproxy]]\nname = \"web\"\nsocket = \"{}\"\nbackend = \"web\"\ndrain_ms = 300\ncheck = {{ path = \"/health\", interval_ms = 200, timeout_ms = 300, rise = 2, fall = 2 }}\n",
            haproxy.socket.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let Pair {
        a: leader,
        b: follower,
        ..
    } = Pair::start(
        &shared,
        &url,
        &[SHORT_LEASE[0], SHORT_LEASE[1], "--config", &config],
    );
    let events = |server: &Perfpilot| -> Vec<String> {
        let (_, body) = server.get("/api/lb_report?resource=lb%3Aweb");
        body_json(&body)["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .filter_map(|e| e["what"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Both check the pool before b dies.
    std::thread::sleep(Duration::from_secs(2));
    backends[1].kill();
    let started = Instant::now();
    loop {
        let on_leader = events(&leader);
        let on_follower = events(&follower);
        let drained = on_leader.iter().any(|e| e.starts_with("b drained"));
        let left = on_follower.iter().any(|e| {
            e.contains("b fails its checks") && e.ends_with("failover is the leading replica's")
        });
        if drained && left {
            assert!(
                !on_follower.iter().any(|e| e.starts_with("b drained")),
                "{on_follower:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "leader {on_leader:?}; follower {on_follower:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = Instant::now();
    while haproxy.status("b") != "MAINT" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "drained, then out of the pool, by the leader: {}",
            haproxy.status("b")
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The leader dies with b out of the pool; b's server comes back. The new leader knows
    // from the shared store that perfpilot took b out, so it brings b back after `rise`.
    leader.kill_9();
    backends[1].revive();
    until_leads(&follower, "b", Duration::from_secs(12));
    let started = Instant::now();
    while !events(&follower)
        .iter()
        .any(|e| e.starts_with("b ready again"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "b never brought back: {:?}; HAProxy says {}",
            events(&follower),
            haproxy.status("b")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_ne!(haproxy.status("b"), "MAINT");
}

/// Edits made through either replica from another thread, each remembered with the
/// change number its answer gave, as a client behind a load balancer would make them.
struct Editor {
    acknowledged: std::sync::Arc<std::sync::Mutex<Vec<(u64, f64)>>>,
    targets: std::sync::Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Editor {
    fn start(targets: Vec<std::net::SocketAddr>) -> Editor {
        use std::sync::atomic::Ordering;
        let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let targets = std::sync::Arc::new(std::sync::Mutex::new(targets));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (acked, to, stopping) = (acknowledged.clone(), targets.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                n += 1;
                let addrs = to.lock().unwrap().clone();
                let addr = addrs[n as usize % addrs.len()];
                let value = 50.0 + (n % 40) as f64;
                let body = format!(r#"{{"metric":"utilization","value":{value},"for_secs":60}}"#);
                if let Some((200, answer)) =
                    try_post_json(addr, "/api/v1/resources/cpu/target", &body)
                {
                    let change = body_json(&answer)["change"].as_u64().unwrap();
                    acked.lock().unwrap().push((change, value));
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        });
        Editor {
            acknowledged,
            targets,
            stop,
            thread: Some(thread),
        }
    }

    /// Where the next edits go (the replicas alive now).
    fn send_to(&self, targets: Vec<std::net::SocketAddr>) {
        *self.targets.lock().unwrap() = targets;
    }

    fn finish(mut self) -> Vec<(u64, f64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.acknowledged.lock().unwrap().clone()
    }
}

/// POSTs JSON to `addr`; `None` when the replica is down or the answer did not arrive.
fn try_post_json(addr: std::net::SocketAddr, path: &str, body: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Failovers while a target breaches and recovers, its action is mid-verification, an
/// alert fires and resolves and edits arrive through both replicas: the leader is killed
/// (`kill -9`) or stopped (SIGTERM), in turn, `PERFPILOT_FAILOVER_ROUNDS` times (4 here;
/// `scripts/bench-failover-chaos.sh` runs 100), and comes back as the follower. Then:
/// no notification sent twice under two keys, no action applied twice, none left open, no
/// acknowledged edit lost, and one change history with its Nth-change snapshots.
#[test]
fn failovers_mid_action_lose_no_edit_and_repeat_no_notification_or_action() {
    let rounds: usize = std::env::var("PERFPILOT_FAILOVER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(4);
    let shared = Shared::start();
    let url = shared.database("chaos");
    let rx = tests::Receiver::start();
    let work = TempDir::new("replicas-chaos");
    let log = work.0.join("service.log");
    let script = recording_script(&work.0);
    let config = webhook_channel_config(&work.0, rx.port);
    let extra = [
        SHORT_LEASE[0],
        SHORT_LEASE[1],
        "--config",
        &config,
        "--allow-program",
        &script,
        "--push-create-resources",
    ];
    let Pair {
        a,
        b,
        data_a,
        data_b,
    } = Pair::start(&shared, &url, &extra);
    let load = Pusher::start(vec![a.addr, b.addr], "load", 20);
    act_through_commands(&a, &script, &log);
    let editor = Editor::start(vec![a.addr, b.addr]);
    let open = || {
        shared.pg.psql(
            "chaos",
            "SELECT count(*) FROM action_journal WHERE state NOT IN ('rolled_back', 'kept', 'failed')",
        )
    };
    let in_effect = || {
        shared.pg.psql(
            "chaos",
            "SELECT count(*) FROM action_journal WHERE state = 'in_effect'",
        ) != "0"
    };

    // (replica, its name, its data directory), leader first.
    let mut leader = (a, "a", data_a);
    let mut follower = (b, "b", data_b);
    for round in 0..rounds {
        // The breach: the leader acts, and the change is in effect, being verified.
        load.set(90);
        let started = Instant::now();
        while !in_effect() {
            assert!(
                started.elapsed() < Duration::from_secs(40),
                "round {round}: no change in effect; journal {:?}; {} says {}",
                shared.psql_state("chaos"),
                leader.1,
                overview(&leader.0)["cards"]
                    .as_array()
                    .and_then(|cards| cards.iter().find(|c| c["id"] == "custom:9"))
                    .map(|c| c.to_string())
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // The failover, mid-verification; the load recovers as it happens.
        let (old, old_name, old_data) = leader;
        editor.send_to(vec![follower.0.addr]);
        if round % 2 == 0 {
            old.kill_9();
        } else {
            assert!(old.terminate().success());
        }
        load.set(10);
        let took = until_leads(&follower.0, follower.1, Duration::from_secs(12));
        println!("round {round}: {old_name} → {} in {took:?}", follower.1);
        let back = start_replica_with(&shared, &url, old_name, &old_data, &extra);
        follows(&back, follower.1);
        editor.send_to(vec![follower.0.addr, back.addr]);
        load.send_to(vec![follower.0.addr, back.addr]);
        leader = follower;
        follower = (back, old_name, old_data);
    }

    // Settle: nothing breaches any more; a last failover makes the last change in
    // verification (10 minutes) one the next leader finds open and rolls back.
    load.set(10);
    let acknowledged = editor.finish();
    std::thread::sleep(Duration::from_secs(4));
    leader.0.kill_9();
    until_leads(&follower.0, follower.1, Duration::from_secs(12));
    let leader = follower;
    let started = Instant::now();
    while open() != "0" {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a change left open: {:?}",
            shared.psql_state("chaos")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    drop(load);

    // Each action applied once by the service, each rollback once.
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    let applies = lines.lines().filter(|l| *l == "apply").count();
    let rollbacks = lines.lines().filter(|l| *l == "rollback").count();
    let journal = shared.pg.psql(
        "chaos",
        "SELECT count(*) || '|' || count(*) FILTER (WHERE state = 'rolled_back') FROM action_journal",
    );
    assert_eq!(
        journal,
        format!("{applies}|{rollbacks}"),
        "the journal's actions and rollbacks are the service's: {lines}"
    );
    assert!(applies >= rounds, "an action per round at least: {lines}");

    one_history_holds_every_acknowledged_edit(&shared, "chaos", &acknowledged, rounds, &leader.0);
    let (kinds, deliveries) = no_notification_repeated_under_a_new_key(&rx);
    println!(
        "{rounds} failovers: {} edits acknowledged, {applies} actions, {rollbacks} rolled back, {} notifications ({} deliveries)",
        acknowledged.len(),
        kinds,
        deliveries
    );
}

/// PostgreSQL crashes and comes back: while it is away edits are refused with 503 (none
/// half-applied), and once it is back both replicas carry on by themselves, with no
/// restart: edits through either are taken, and the change history has no gap.
#[test]
fn both_replicas_carry_on_when_postgresql_restarts() {
    let shared = Shared::start();
    let url = shared.database("restart");
    let Pair { a, b, .. } = Pair::start(&shared, &url, &SHORT_LEASE);
    let (status, answer) = set_cpu_target(&a, 61.0);
    assert_eq!(status, 200, "{answer}");

    shared.pg.kill();
    let (status, answer) = set_cpu_target(&a, 62.0);
    assert_eq!(status, 503, "{answer}");
    std::thread::sleep(Duration::from_secs(1));
    shared.pg.restart();

    // Either replica may lead once the lease can be kept again; edits through both work.
    let started = Instant::now();
    for (server, value) in [(&a, 63.0), (&b, 64.0)] {
        loop {
            let (status, answer) = set_cpu_target(server, value);
            if status == 200 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} never took an edit again: {status} {answer}; /readyz {:?}",
                server.addr,
                readyz(server)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    for server in [&a, &b] {
        let started = Instant::now();
        while cpu_target(server) != Some(64.0) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{} did not catch up",
                server.addr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(readyz(server).contains("ready"), "{}", readyz(server));
    }
    let journal = shared.pg.psql(
        "restart",
        "SELECT count(*) || '|' || max(change) FROM audit WHERE change IS NOT NULL",
    );
    let change = overview(&a)["change"].as_u64().unwrap();
    assert_eq!(
        journal,
        format!("{change}|{change}"),
        "no gap, nothing twice"
    );
    assert_eq!(overview(&b)["change"].as_u64(), Some(change));
}

/// Every edit acknowledged with a change number is in the store's audit under that number
/// with its value; the numbers run 1…N, each once; a snapshot was taken at every 20th.
fn one_history_holds_every_acknowledged_edit(
    shared: &Shared,
    db: &str,
    acknowledged: &[(u64, f64)],
    rounds: usize,
    leader: &Perfpilot,
) {
    // Every acknowledged edit is in the one history, under the number it was given.
    let audited = shared.pg.psql(
        db,
        "SELECT string_agg(change::text || '=' || coalesce(after::json #>> '{value}', ''), ',' ORDER BY change) FROM audit WHERE change IS NOT NULL",
    );
    let audited: std::collections::BTreeMap<u64, String> = audited
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(change, value)| (change.parse().unwrap(), value.to_owned()))
        .collect();
    assert!(acknowledged.len() >= rounds, "{acknowledged:?}");
    for (change, value) in acknowledged {
        let stored = audited
            .get(change)
            .map(|v| v.parse::<f64>().unwrap_or(f64::NAN));
        assert_eq!(
            stored,
            Some(*value),
            "acknowledged edit {change} lost or changed"
        );
    }
    let last = *audited.keys().last().unwrap();
    assert_eq!(
        audited.keys().copied().collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "every change number once"
    );
    let snapshots = shared.pg.psql(
        db,
        "SELECT coalesce(string_agg(change::text, ',' ORDER BY change), '') FROM snapshots",
    );
    let every_20th: Vec<String> = (1..=last / 20).map(|n| (n * 20).to_string()).collect();
    assert_eq!(
        snapshots,
        every_20th.join(","),
        "a snapshot at every 20th change"
    );
    assert_eq!(
        overview(leader)["change"].as_u64(),
        Some(last),
        "the leader's counter"
    );
}

/// By key, a firing is never announced twice without a resolve between; answers how many
/// notifications (distinct keys) and deliveries arrived.
fn no_notification_repeated_under_a_new_key(rx: &tests::Receiver) -> (usize, usize) {
    // Notifications: by key, a firing is never announced twice without a resolve between.
    let got = rx.on("/hook");
    let mut seen = std::collections::BTreeSet::new();
    let kinds: Vec<String> = got
        .iter()
        .filter(|r| seen.insert(r.header("Idempotency-Key").unwrap_or_default().to_owned()))
        .map(|r| body_json(&r.body)["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(kinds.first().is_some_and(|k| k == "firing"), "{kinds:?}");
    for pair in kinds.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "a notification repeated under a new key: {kinds:?}"
        );
    }
    (kinds.len(), got.len())
}

/// `record.sh <log> <word>`: appends the word to the log, as a service would record each
/// apply and rollback it saw.
fn recording_script(dir: &std::path::Path) -> String {
    let script = dir.join("record.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"$2\" >> \"$1\"\n").unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&script)
        .status()
        .unwrap();
    script.to_str().unwrap().to_owned()
}

/// A configuration file whose one alert channel is a webhook on `port`.
fn webhook_channel_config(dir: &std::path::Path, port: u16) -> String {
    let config = dir.join("perfpilot.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nresolve_margin_pct = 10\n\n[[alert_channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"
        ),
    )
    .unwrap();
    config.to_str().unwrap().to_owned()
}
