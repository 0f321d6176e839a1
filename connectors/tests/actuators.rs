//! The action runner against real local endpoints: webhook delivery, signature, retries,
//! timeouts, and commands with env values, allow-list and timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use connectors::actuators::webhook::sign as sign_body;
use connectors::actuators::{Actuators, RunnerConfig};
use engine::actions::{ActionEvent, ActionOutcome, ActionRequest};
use engine::model::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn request(dry_run: bool) -> ActionRequest {
    let cpu = Resource::new(ResourceId::new("cpu").unwrap(), ResourceType::Cpu, "CPU");
    let mut r = ActionRequest::new(&cpu, &[72.1; 10], 72.1, 1_700_000_000_000).unwrap();
    r.dry_run = dry_run;
    r
}

struct Runner(Actuators);

impl Runner {
    async fn execute(&self, request: &ActionRequest, action: &ActionConfig) -> ActionEvent {
        self.0.execute(request, action, None).await.event
    }
}

fn runner() -> Runner {
    Runner(Actuators::new(
        RunnerConfig {
            allowed_programs: BTreeSet::from([
                "/bin/sh".to_owned(),
                "/bin/sleep".to_owned(),
                "/bin/true".to_owned(),
                "/bin/false".to_owned(),
            ]),
            secrets: BTreeMap::from([("hook".to_owned(), "s3cret".to_owned())]),
        },
        connectors::Registries::default(),
    ))
}

/// A minimal HTTP/1.1 server answering each request with the next status of `statuses`
/// (or never answering, for `0`), reporting each request's head and body.
async fn server(statuses: Vec<u16>) -> (String, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for status in statuses {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let (head, body) = loop {
                let mut chunk = [0u8; 4096];
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        let n = sock.read(&mut chunk).await.unwrap();
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    break (head, buf[end + 4..end + 4 + len].to_vec());
                }
                assert!(n > 0, "client closed early");
            };
            tx.send((head, body)).unwrap();
            if status == 0 {
                // Hold the connection open without answering.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(sock);
                });
                continue;
            }
            let resp =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            sock.write_all(resp.as_bytes()).await.unwrap();
        }
    });
    (url, rx)
}

fn webhook(url: &str, retries: u32, secret: Option<&str>) -> ActionConfig {
    ActionConfig::Webhook(WebhookAction {
        url: url.into(),
        timeout_ms: 300,
        max_retries: retries,
        secret: secret.map(Into::into),
        rollback_url: None,
    })
}

#[tokio::test]
async fn webhook_posts_signed_json_describing_the_breach() {
    let (url, mut rx) = server(vec![200]).await;
    let ev = runner()
        .execute(&request(false), &webhook(&url, 0, Some("hook")))
        .await;
    assert_eq!(
        ev.outcome,
        ActionOutcome::Succeeded {
            detail: "HTTP 200: ok".into()
        }
    );
    assert_eq!(
        (ev.attempts, ev.action.as_str(), ev.dry_run),
        (1, "webhook", false)
    );
    let (head, body) = rx.recv().await.unwrap();
    assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
    let sig = head
        .lines()
        .find_map(|l| l.strip_prefix("x-perfpilot-signature: "))
        .expect("signature header");
    assert_eq!(sig, format!("sha256={}", sign_body(b"s3cret", &body)));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["resource"], "cpu");
    assert_eq!(json["observed"], 72.1);
    assert_eq!(json["target"]["value"], 65.0);
    assert_eq!(json["recommendation"]["desired_replicas"], 2);
}

#[tokio::test]
async fn webhook_retries_server_errors_then_succeeds() {
    let (url, mut rx) = server(vec![503, 500, 204]).await;
    let ev = runner()
        .execute(&request(false), &webhook(&url, 2, None))
        .await;
    assert_eq!(ev.attempts, 3);
    assert_eq!(
        ev.outcome,
        ActionOutcome::Succeeded {
            detail: "HTTP 204".into()
        }
    );
    let (head, _) = rx.recv().await.unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("x-perfpilot-signature"),
        "unsigned without a secret"
    );
}

#[tokio::test]
async fn webhook_gives_up_on_client_errors_and_after_bounded_retries() {
    let (url, _rx) = server(vec![404]).await;
    let ev = runner()
        .execute(&request(false), &webhook(&url, 3, None))
        .await;
    assert_eq!(
        (ev.attempts, ev.outcome),
        (
            1,
            ActionOutcome::Failed {
                error: "HTTP 404: ok".into(),
                rolled_back: None,
            }
        )
    );

    let (url, _rx) = server(vec![0, 0]).await;
    let ev = runner()
        .execute(&request(false), &webhook(&url, 1, None))
        .await;
    assert_eq!(ev.attempts, 2);
    let ActionOutcome::Failed { error, .. } = ev.outcome else {
        panic!("{:?}", ev.outcome)
    };
    assert!(
        error.contains("no response within 300 ms (after 2 attempts)"),
        "{error}"
    );

    let ev = runner()
        .execute(
            &request(false),
            &webhook("http://127.0.0.1:1/x", 0, Some("missing")),
        )
        .await;
    assert_eq!(
        ev.outcome,
        ActionOutcome::Failed {
            error: "signing secret `missing` is not configured on the server".into(),
            rolled_back: None,
        }
    );
}

#[tokio::test]
async fn dry_run_and_recommend_execute_nothing() {
    let (url, mut rx) = server(vec![200]).await;
    let ev = runner()
        .execute(&request(true), &webhook(&url, 0, None))
        .await;
    let ActionOutcome::DryRun { would } = &ev.outcome else {
        panic!("{:?}", ev.outcome)
    };
    assert!(
        would.starts_with(&format!("POST {url} (scale 1 → 2 replicas")),
        "{would}"
    );
    assert_eq!(ev.attempts, 0);
    let ev = runner()
        .execute(&request(false), &ActionConfig::Recommend)
        .await;
    assert_eq!(ev.outcome, ActionOutcome::Recommended);
    assert!(rx.try_recv().is_err(), "nothing was posted");
}

fn command(program: &str, args: &[&str], timeout_ms: u32) -> ActionConfig {
    ActionConfig::Command(CommandAction {
        program: program.into(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        timeout_ms,
        rollback: None,
    })
}

#[tokio::test]
async fn command_gets_values_as_env_without_a_shell_in_between() {
    let script = r#"echo "$PERFPILOT_RESOURCE $PERFPILOT_OBSERVED $PERFPILOT_TARGET $PERFPILOT_COMPARATOR $PERFPILOT_DESIRED_REPLICAS $1 ${HOME:-nohome}""#;
    // `$(...)` in an argument reaches the program verbatim: no shell expands it.
    let ev = runner()
        .execute(
            &request(false),
            &command("/bin/sh", &["-c", script, "sh", "$(id)"], 5_000),
        )
        .await;
    assert_eq!(
        ev.outcome,
        ActionOutcome::Succeeded {
            detail: "exit status: 0: cpu 72.1 65 le 2 $(id) nohome".into()
        }
    );
}

/// A fleet's breach: its hosts past their targets, worst first.
fn fleet_request() -> ActionRequest {
    let mut r = request(false);
    r.hosts = vec![
        engine::actions::HostBreach {
            instance: "web-7:9100".into(),
            group: "env=prod".into(),
            metric: "cpu".into(),
            observed: 97.0,
            target: 65.0,
        },
        engine::actions::HostBreach {
            instance: "db-2:9100".into(),
            group: "env=prod".into(),
            metric: "memory".into(),
            observed: 71.0,
            target: 60.0,
        },
    ];
    r
}

#[tokio::test]
async fn a_fleet_action_is_told_its_hosts() {
    let script = r#"echo "$PERFPILOT_HOST $PERFPILOT_HOST_METRIC $PERFPILOT_HOSTS""#;
    let ev = runner()
        .execute(
            &fleet_request(),
            &command("/bin/sh", &["-c", script], 5_000),
        )
        .await;
    assert_eq!(
        ev.outcome,
        ActionOutcome::Succeeded {
            detail: "exit status: 0: web-7:9100 cpu web-7:9100,db-2:9100".into()
        }
    );
    let (url, mut rx) = server(vec![200]).await;
    runner()
        .execute(&fleet_request(), &webhook(&url, 0, None))
        .await;
    let (_, body) = rx.recv().await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["hosts"][0]["instance"], "web-7:9100");
    assert_eq!(json["hosts"][1]["metric"], "memory");
    // A local resource's action carries no hosts at all.
    let (url, mut rx) = server(vec![200]).await;
    runner()
        .execute(&request(false), &webhook(&url, 0, None))
        .await;
    let (_, body) = rx.recv().await.unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("hosts"));
}

#[tokio::test]
async fn command_failures_timeouts_and_the_allow_list() {
    let ev = runner()
        .execute(
            &request(false),
            &command("/bin/sh", &["-c", "echo broken >&2; exit 3"], 5_000),
        )
        .await;
    assert_eq!(
        ev.outcome,
        ActionOutcome::Failed {
            error: "exit status: 3: broken".into(),
            rolled_back: None,
        }
    );
    let ev = runner()
        .execute(&request(false), &command("/bin/sleep", &["10"], 200))
        .await;
    assert_eq!(
        ev.outcome,
        ActionOutcome::Failed {
            error: "/bin/sleep timed out after 200 ms and was killed".into(),
            rolled_back: None,
        }
    );
    let ev = runner()
        .execute(&request(false), &command("/usr/bin/env", &[], 1_000))
        .await;
    assert_eq!(
        (ev.attempts, ev.outcome),
        (
            0,
            ActionOutcome::Failed {
                error: "program `/usr/bin/env` is not in the server's command allow-list".into(),
                rolled_back: None,
            }
        )
    );
}

#[tokio::test]
async fn every_step_of_the_lifecycle_is_recorded() {
    use engine::actuator::Step;
    let (url, mut rx) = server(vec![200]).await;
    let ev = runner()
        .execute(&request(false), &webhook(&url, 0, None))
        .await;
    let steps: Vec<Step> = ev.steps.iter().map(|s| s.step).collect();
    assert_eq!(steps, [Step::Capture, Step::Apply, Step::ReadBack]);
    assert!(ev.steps.iter().all(|s| s.ok));
    let (_, body) = rx.recv().await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["phase"], "apply");
}

#[tokio::test]
async fn a_rollback_webhook_gets_the_rollback_phase() {
    let (url, mut rx) = server(vec![200, 200]).await;
    let action = ActionConfig::Webhook(WebhookAction {
        url: url.clone(),
        timeout_ms: 300,
        max_retries: 0,
        secret: Some("hook".into()),
        rollback_url: Some(format!("{url}/undo")),
    });
    let runner = runner();
    let execution = runner.0.execute(&request(false), &action, None).await;
    let captured = execution.captured.expect("in effect");
    assert!(runner.0.can_roll_back(&action, None));
    let undone = runner
        .0
        .roll_back(
            &request(false),
            &action,
            None,
            &captured,
            "verification failed".into(),
        )
        .await;
    assert_eq!(
        undone.outcome,
        ActionOutcome::RolledBack {
            reason: "verification failed".into(),
            restored: true
        }
    );
    rx.recv().await.unwrap();
    let (head, body) = rx.recv().await.unwrap();
    assert!(head.starts_with("POST /hook/undo HTTP/1.1"), "{head}");
    let sig = head
        .lines()
        .find_map(|l| l.strip_prefix("x-perfpilot-signature: "))
        .expect("the rollback is signed too");
    assert_eq!(sig, format!("sha256={}", sign_body(b"s3cret", &body)));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["phase"], "rollback");
}

#[tokio::test]
async fn a_command_without_a_rollback_cannot_be_undone_and_says_so() {
    let action = command("/bin/true", &[], 1_000);
    let runner = runner();
    let execution = runner.0.execute(&request(false), &action, None).await;
    let captured = execution.captured.expect("in effect");
    assert!(!runner.0.can_roll_back(&action, None));
    let undone = runner
        .0
        .roll_back(&request(false), &action, None, &captured, "worse".into())
        .await;
    assert_eq!(
        undone.outcome,
        ActionOutcome::RolledBack {
            reason: "worse".into(),
            restored: false
        }
    );
    let with_rollback = ActionConfig::Command(CommandAction {
        program: "/bin/true".into(),
        args: Vec::new(),
        timeout_ms: 1_000,
        rollback: Some(RollbackCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "test \"$PERFPILOT_PHASE\" = rollback".into()],
        }),
    });
    let undone = runner
        .0
        .roll_back(
            &request(false),
            &with_rollback,
            None,
            &captured,
            "worse".into(),
        )
        .await;
    assert!(
        matches!(
            undone.outcome,
            ActionOutcome::RolledBack { restored: true, .. }
        ),
        "{:?}",
        undone.steps
    );
}
