//! A throwaway Prometheus Alertmanager ([`Alertmanager`]) that forwards what it receives
//! to a webhook.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use crate::fs::TempDir;
use crate::http::{body_json, http_get, http_get_maybe};
use crate::sys::free_port;

/// A throwaway Alertmanager 0.25 (Debian's `prometheus-alertmanager`) on a free loopback
/// port, with its own config and data directory, forwarding every alert group at once
/// (group_wait 0, group_interval 1 s) to `forward_to` with `send_resolved`: what it
/// forwards proves what it received. Stopped on drop.
pub struct Alertmanager {
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

impl Alertmanager {
    pub fn start(forward_to: &str) -> Alertmanager {
        let dir = TempDir::new("perfpilot-alertmanager");
        let port = free_port();
        let config = dir.0.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: forward\n  group_by: ['alertname', 'resource']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n- name: forward\n  webhook_configs:\n  - url: {forward_to}\n    send_resolved: true\n"
            ),
        )
        .unwrap();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.0.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager runs (scripts/setup.sh --test installs it)");
        let am = Alertmanager {
            port,
            child,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(addr) = format!("127.0.0.1:{port}").parse() {
                let (status, _) = http_get_maybe(addr, "/-/ready");
                if status == 200 {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Alertmanager did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    pub fn addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    /// Its alerts API: what it holds now.
    pub fn alerts(&self) -> serde_json::Value {
        let (status, body) = http_get(self.addr(), "/api/v2/alerts");
        assert_eq!(status, 200, "{body}");
        body_json(&body)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
