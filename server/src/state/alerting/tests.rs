//! Alerting on a clock moved by hand: what the end-to-end tests would wait minutes for
//! (a silence that ends, quiet hours that end, repeats every interval) happens at exact
//! milliseconds here. Deliveries are real: a local webhook receiver answers 200.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use app::alerts::{Acknowledgement, NewSilence};
use app::identity::{Identity, Role};
use engine::changes::StoreOptions;
use engine::model::{ResourceId, ResourceType};

use super::delivery::{wait_until, SWEEP_EVERY};
use super::*;
use crate::persist::Location;

/// 2026-01-01 00:00 UTC.
const T0: i64 = 1_767_225_600_000;
const HOUR_MS: i64 = 3_600_000;
/// The test channels' repeat interval.
const REPEAT_MS: i64 = 600_000;

/// Wall time that moves only when told.
struct ManualClock(AtomicI64);

impl ManualClock {
    fn at(ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(ms)))
    }

    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn wall_unix_ms(&self) -> i64 {
        self.now()
    }

    fn mono_ns(&self) -> u64 {
        u64::try_from(self.now()).unwrap_or(0) * 1_000_000
    }
}

/// The bodies a receiver got, in order.
type Received = Arc<Mutex<Vec<serde_json::Value>>>;

/// A webhook receiver answering 200: its URL, and what it got.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let seen = seen.clone();
            async move {
                lock(&seen).push(serde_json::from_str(&body).unwrap_or_default());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), received)
}

fn keys(received: &Received) -> Vec<String> {
    lock(received)
        .iter()
        .map(|body| body["key"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn webhook(name: &str, url: &str, quiet_hours: Option<&str>) -> ChannelEntry {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "kind": "webhook",
        "url": url,
        "repeat_interval_secs": REPEAT_MS / 1000,
        "quiet_hours": quiet_hours,
    }))
    .unwrap()
}

fn admin() -> Identity {
    Identity::anonymous(Role::Admin, None)
}

/// Alerting on `clock` (the store's clock too) for the resource `cpu`; nothing on disk.
fn open(channels: Vec<ChannelEntry>, clock: &Arc<ManualClock>) -> Alerting {
    let cpu = Resource::new(ResourceId::new("cpu").unwrap(), ResourceType::Cpu, "CPU");
    let options = StoreOptions {
        clock: clock.clone(),
        ..StoreOptions::default()
    };
    let store = Arc::new(ChangeStore::with_resources(vec![cpu], options).unwrap());
    let (persist, _) = Persist::open(&Location::Memory).unwrap();
    let settings = crate::config::AlertSettings {
        channels,
        ..Default::default()
    };
    Alerting::open(
        None,
        &settings,
        &BTreeMap::new(),
        Wiring {
            store,
            persist,
            public_url: None,
            clock: clock.clone(),
            leadership: crate::state::lease::Leadership::alone(),
            shared: None,
        },
    )
    .unwrap()
}

/// One round of the delivery task at the clock's time: starts what is due and waits for
/// those sends to finish; answers when the next waiting notification is due.
async fn deliver(alerting: &Alerting, clock: &ManualClock) -> Option<i64> {
    let next = alerting.deliver_due(clock.now()).await;
    for _ in 0..500 {
        let idle = lock(&alerting.inner.in_flight).is_empty();
        if idle {
            return next;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("deliveries still running after 5 s");
}

#[tokio::test]
async fn a_silence_holds_notifications_back_until_it_ends_then_they_go_at_once() {
    let (url, received) = receiver().await;
    let clock = ManualClock::at(T0);
    let alerting = open(vec![webhook("hook", &url, None)], &clock);
    let silence = NewSilence {
        matcher: "cpu".into(),
        duration: "1m".into(),
        comment: "load test in progress".into(),
    };
    let id = alerting.silence(silence, &admin()).unwrap();
    clock.set(T0 + 1000);
    alerting.fired("cpu", T0 + 1000, "p95 90 > target 50");
    let view = alerting.view().unwrap();
    assert_eq!(view.firing[0].silenced_by, Some(id));
    assert!(view.deliveries.is_empty(), "{:?}", view.deliveries);

    // Sweeps while it lasts queue nothing, to its last millisecond.
    for at in [T0 + 30_000, T0 + 59_999] {
        clock.set(at);
        alerting.sweep(at);
        assert_eq!(deliver(&alerting, &clock).await, None, "at {at}");
    }
    assert!(alerting.view().unwrap().deliveries.is_empty());
    assert!(lock(&received).is_empty());

    // It ends: the next sweep owes the firing notification, due at once, and it goes.
    let end = T0 + 60_000;
    clock.set(end);
    alerting.sweep(end);
    let view = alerting.view().unwrap();
    assert_eq!(view.firing[0].silenced_by, None);
    assert!(!view.silences[0].active, "{:?}", view.silences);
    let owed = &view.deliveries[0];
    assert_eq!(
        (owed.kind.as_str(), owed.state.as_str(), owed.due_ms),
        ("firing", "pending", end)
    );
    assert_eq!(deliver(&alerting, &clock).await, None);
    let view = alerting.view().unwrap();
    let sent = &view.deliveries[0];
    assert_eq!((sent.state.as_str(), sent.sent_ms), ("sent", Some(end)));
    let keys = keys(&received);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with("/hook/firing/0"), "{keys:?}");
    assert_eq!(lock(&received)[0]["kind"], "firing");
}

#[tokio::test]
async fn quiet_hours_hold_a_notification_to_their_end_without_piling_up_repeats() {
    let (url, received) = receiver().await;
    // 01:00 UTC, inside quiet hours 00:00–06:00.
    let start = T0 + HOUR_MS;
    let release = T0 + 6 * HOUR_MS;
    let clock = ManualClock::at(start);
    let alerting = open(vec![webhook("night", &url, Some("00:00-06:00"))], &clock);
    alerting.fired("cpu", start, "p95 90 > target 50");
    let held = alerting.view().unwrap().deliveries;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        (held[0].state.as_str(), held[0].due_ms),
        ("pending", release)
    );
    // The delivery task sends nothing yet; its next wake-up is the release.
    assert_eq!(deliver(&alerting, &clock).await, Some(release));

    // The repeat interval passes many times over: no repeat queues up behind the held one.
    let mut at = start;
    while at + REPEAT_MS < release {
        at += REPEAT_MS;
        clock.set(at);
        alerting.sweep(at);
        assert_eq!(deliver(&alerting, &clock).await, Some(release), "at {at}");
    }
    clock.set(release - 1);
    alerting.sweep(release - 1);
    assert_eq!(deliver(&alerting, &clock).await, Some(release));
    let held = alerting.view().unwrap().deliveries;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].state, "pending");
    assert!(lock(&received).is_empty(), "sent before the release");

    // At the end of the quiet hours it goes.
    clock.set(release);
    assert_eq!(deliver(&alerting, &clock).await, None);
    let view = alerting.view().unwrap();
    assert_eq!(view.deliveries.len(), 1, "{:?}", view.deliveries);
    let sent = &view.deliveries[0];
    assert_eq!((sent.state.as_str(), sent.sent_ms), ("sent", Some(release)));
    let keys = keys(&received);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with("/night/firing/0"), "{keys:?}");

    // Its repeat counts from the release, not from when it was queued hours before.
    clock.set(release + 1);
    alerting.sweep(release + 1);
    assert_eq!(alerting.view().unwrap().deliveries.len(), 1);
    clock.set(release + REPEAT_MS);
    alerting.sweep(release + REPEAT_MS);
    assert_eq!(alerting.view().unwrap().deliveries.len(), 2);
}

#[tokio::test]
async fn an_alert_repeats_every_interval_until_it_is_acknowledged() {
    let (url, received) = receiver().await;
    let clock = ManualClock::at(T0);
    let alerting = open(vec![webhook("hook", &url, None)], &clock);
    alerting.fired("cpu", T0, "p95 90 > target 50");
    assert_eq!(deliver(&alerting, &clock).await, None);
    assert_eq!(keys(&received).len(), 1);

    // Not acknowledged: sent again once the interval has passed since the last, not before.
    clock.set(T0 + REPEAT_MS - 1);
    alerting.sweep(T0 + REPEAT_MS - 1);
    assert_eq!(alerting.view().unwrap().deliveries.len(), 1);
    clock.set(T0 + REPEAT_MS);
    alerting.sweep(T0 + REPEAT_MS);
    let view = alerting.view().unwrap();
    assert_eq!(view.deliveries.len(), 2, "{:?}", view.deliveries);
    assert_eq!(
        (view.deliveries[0].state.as_str(), view.deliveries[0].due_ms),
        ("pending", T0 + REPEAT_MS)
    );
    assert_eq!(deliver(&alerting, &clock).await, None);
    let keys_now = keys(&received);
    assert!(
        keys_now.len() == 2
            && keys_now[0].ends_with("/hook/firing/0")
            && keys_now[1].ends_with("/hook/firing/1"),
        "{keys_now:?}"
    );

    // Acknowledged: no more repeats, however long it keeps firing.
    let ack = Acknowledgement {
        comment: "looking into it".into(),
        started_ms: Some(T0),
    };
    alerting.acknowledge("cpu", &ack, &admin()).unwrap();
    for i in 2..=6 {
        let at = T0 + i * REPEAT_MS;
        clock.set(at);
        alerting.sweep(at);
        assert_eq!(deliver(&alerting, &clock).await, None, "at {at}");
    }
    let view = alerting.view().unwrap();
    assert_eq!(view.firing[0].acked_by.as_deref(), Some("anonymous"));
    assert_eq!(view.deliveries.len(), 2, "{:?}", view.deliveries);
    assert_eq!(
        keys(&received).len(),
        2,
        "repeated after the acknowledgement"
    );
}

#[test]
fn the_delivery_task_sleeps_until_the_next_due_but_sweeps_at_least_every_few_seconds() {
    assert_eq!(wait_until(Some(T0 + 1200), T0), Duration::from_millis(1200));
    assert_eq!(wait_until(Some(T0 - 10), T0), Duration::ZERO);
    assert_eq!(wait_until(Some(T0 + HOUR_MS), T0), SWEEP_EVERY);
    assert_eq!(wait_until(None, T0), SWEEP_EVERY);
}
