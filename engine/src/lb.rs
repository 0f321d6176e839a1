//! Load balancing: what a load-balancer source reports besides series (its backends with
//! their health-check verdicts and reasons, the balancer's own process, the failover and
//! reconcile events), and the rise/fall hysteresis every health check goes through.
//! Pure: compiled into the browser too.

use serde::{Deserialize, Serialize};

/// The time each phase of one health check took, in ms (a phase not reached is `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    pub dns_ms: Option<f32>,
    pub connect_ms: Option<f32>,
    pub tls_ms: Option<f32>,
    pub first_byte_ms: Option<f32>,
    pub total_ms: Option<f32>,
}

/// One health check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub ok: bool,
    /// Why it failed, in words: "connection refused", "status 503", "timeout after 2 s
    /// (connecting)", "TLS certificate expired 3 days ago".
    pub reason: Option<String>,
    pub phases: Phases,
    pub at_ms: i64,
}

/// Rise/fall hysteresis: a backend goes down after `fall` failed checks in a row and up
/// again after `rise` passed ones; anything in between moves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub up: bool,
    /// Consecutive results that disagree with `up`.
    pub streak: u32,
    pub rise: u32,
    pub fall: u32,
}

impl Health {
    /// Starts up, as HAProxy does: a dead backend is down after `fall` checks.
    pub fn new(rise: u32, fall: u32) -> Health {
        Health {
            up: true,
            streak: 0,
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    /// Takes one result; answers the new state when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { self.fall } else { self.rise };
        if self.streak >= needed {
            self.up = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }
}

/// How the balancer is told to treat a backend (HAProxy's admin state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminState {
    Ready,
    /// No new sessions; those open finish.
    Drain,
    /// Out of the pool.
    Maint,
}

impl AdminState {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// One backend server as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendView {
    pub name: String,
    /// `10.0.0.5:8080`.
    pub address: String,
    /// What the balancer says: `UP`, `DOWN`, `DRAIN`, `MAINT`, `no check`.
    pub status: String,
    /// What perfpilot wants it to be (`None`: perfpilot leaves it alone).
    pub desired: Option<AdminState>,
    pub weight: Option<u32>,
    pub sessions: Option<u64>,
    pub queue: Option<u64>,
    /// Sessions per second.
    pub rate: Option<f64>,
    /// The balancer's average response time over its last 1024 requests.
    pub response_ms: Option<f64>,
    /// perfpilot's own health check, when configured.
    pub check: Option<CheckView>,
}

/// A backend's health check as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckView {
    pub up: bool,
    /// The last check's result.
    pub last: CheckResult,
    /// When the verdict last changed.
    pub since_ms: i64,
    /// Checks passed of those kept (the last 100), in %.
    pub availability_pct: f64,
    /// The verdict that went down's reason, while down.
    pub down_reason: Option<String>,
}

/// Something the source did or saw (a failover, a reconcile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbEvent {
    pub at_ms: i64,
    pub server: Option<String>,
    pub what: String,
}

/// What a load-balancer source reports besides series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LbReport {
    /// `HAProxy 2.6.12`.
    pub version: Option<String>,
    pub pid: Option<u64>,
    pub uptime_s: Option<u64>,
    /// Reloads seen (process id or uptime changed) since perfpilot started watching.
    pub reloads: u32,
    pub backend: String,
    pub backends: Vec<BackendView>,
    /// Newest first, a bounded list.
    pub events: Vec<LbEvent>,
    /// What discovery could not do now (a file that does not parse, a name that does not
    /// resolve), with the last good list kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_fall_failures_and_rise_passes_in_a_row() {
        let mut h = Health::new(2, 3);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(true), None, "a pass resets the count");
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), Some(false));
        assert!(!h.up);
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(false), None, "a failure resets the rise");
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), Some(true));
        assert!(h.up);
    }

    #[test]
    fn rise_and_fall_are_at_least_one() {
        let mut h = Health::new(0, 0);
        assert_eq!(h.observe(false), Some(false));
        assert_eq!(h.observe(true), Some(true));
    }
}
