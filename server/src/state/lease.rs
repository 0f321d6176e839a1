//! Leadership among replicas that share a PostgreSQL store (`--database-url`): one lease
//! row (holder, epoch, expires_at) renewed on the database's clock, so replicas never
//! compare their own clocks.
//!
//! - The leader renews four times per lease ([`Timing`]; 8 s by default,
//!   `[database] lease_ms`); each renewal moves `expires_at` to the database's
//!   `now() + lease`. If it has not renewed for three quarters of the lease (counted
//!   from when its last successful renewal was *sent*, so before the database's expiry)
//!   it steps down by itself: it stops acting before anyone else may take over.
//! - A follower tries every [`RETRY_EVERY`] to take an expired lease; taking it bumps the
//!   epoch. A `kill -9`ed leader is replaced within lease + [`RETRY_EVERY`] (8.5 s); one
//!   that stops on SIGTERM gives the lease up at once, so a follower takes over within
//!   about one retry. A follower costs the database about eight short statements a second,
//!   the leader under two (`scripts/bench-replicas.py`).
//! - A leader that was paused past its lease (SIGSTOP) wakes up believing it leads: every
//!   write that acts is checked against the lease row in its own transaction
//!   ([`crate::persist::Fence`]) and refused with a stale epoch, and its next renewal
//!   finds the row taken and makes it a follower.
//!
//! Why not an advisory lock: it lives as long as one session, so a dropped connection
//! hands leadership over silently, it carries no epoch to fence stale writers with, and
//! it does not survive a connection pooler. River and Oban use a lease row for the same
//! reasons.
//!
//! Without `--database-url` there is one replica and it always leads ([`Leadership::alone`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::persist::Fence;

/// How long a lease lasts past its last renewal, on the database's clock, by default
/// (`[database] lease_ms`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(8);
/// How often a follower tries to take an expired lease.
pub const RETRY_EVERY: Duration = Duration::from_millis(500);

/// The lease's timing, from its length: the leader renews four times per lease and steps
/// down once three quarters of it passed without a renewal (a quarter before the database
/// would let it go, whatever the two clocks' offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub lease: Duration,
    pub renew_every: Duration,
    pub step_down_after: Duration,
}

impl Timing {
    pub fn of(lease: Duration) -> Timing {
        Timing {
            lease,
            renew_every: lease / 4,
            step_down_after: lease * 3 / 4,
        }
    }

    /// The longest a follower waits for a dead leader's lease, in whole seconds.
    fn takeover_secs(&self) -> u64 {
        (self.lease + RETRY_EVERY).as_secs_f64().ceil() as u64
    }
}

/// The longest one lease statement may take before it counts as failed.
const STATEMENT_TIMEOUT: Duration = Duration::from_millis(1_500);

/// Where this replica stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The only replica (SQLite, or no lease): it always leads.
    Alone,
    /// It holds the lease in `epoch`.
    Leader { epoch: u64 },
    /// Another replica leads (`None` while nobody does, e.g. right after a crash).
    Follower { leader: Option<Holder> },
}

/// The replica holding the lease, as its row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    pub address: String,
    pub epoch: u64,
}

/// The handle every part that acts asks before acting. Cheap to clone.
#[derive(Clone)]
pub struct Leadership {
    replica: Arc<str>,
    address: Arc<str>,
    fence: Option<Arc<Fence>>,
    standing: watch::Sender<Standing>,
    /// When the last successful renewal (or the taking) was sent.
    renewed: Arc<Mutex<Option<Instant>>>,
    timing: Timing,
    /// The shared store's key for edits passed to the leader (`crate::http::forward`).
    forward_key: Arc<std::sync::OnceLock<Vec<u8>>>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("replica", &self.replica)
            .field("standing", &*self.standing.borrow())
            .finish_non_exhaustive()
    }
}

impl Leadership {
    /// A single replica: it leads from the start and for good.
    pub fn alone() -> Leadership {
        Leadership {
            replica: "".into(),
            address: "".into(),
            fence: None,
            standing: watch::Sender::new(Standing::Alone),
            renewed: Arc::default(),
            timing: Timing::of(DEFAULT_LEASE),
            forward_key: Arc::default(),
        }
    }

    /// A replica of a shared store: it follows until [`keep`] takes the lease.
    pub fn replicated(
        replica: &str,
        address: &str,
        fence: Arc<Fence>,
        timing: Timing,
    ) -> Leadership {
        Leadership {
            replica: replica.into(),
            address: address.into(),
            fence: Some(fence),
            standing: watch::Sender::new(Standing::Follower { leader: None }),
            renewed: Arc::default(),
            timing,
            forward_key: Arc::default(),
        }
    }

    /// Whether this replica may act now: run actions, verify them, send notifications and
    /// reports, take edits.
    pub fn leads(&self) -> bool {
        matches!(
            *self.standing.borrow(),
            Standing::Alone | Standing::Leader { .. }
        )
    }

    pub fn standing(&self) -> Standing {
        self.standing.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Standing> {
        self.standing.subscribe()
    }

    /// This replica's name (empty when alone).
    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub fn is_replicated(&self) -> bool {
        self.fence.is_some()
    }

    /// The fence the persist writer checks, for a replica.
    pub fn fence_handle(&self) -> Option<Arc<Fence>> {
        self.fence.clone()
    }

    /// Sets the key edits passed between replicas are signed with, once, from the store.
    pub fn set_forward_key(&self, key: Vec<u8>) {
        let _ = self.forward_key.set(key);
    }

    /// The key edits passed between replicas are signed with; `None` alone.
    pub fn forward_key(&self) -> Option<&[u8]> {
        self.forward_key.get().map(Vec::as_slice)
    }

    /// The longest a follower waits for a leader to take over, in whole seconds.
    pub fn takeover_secs(&self) -> u64 {
        self.timing.takeover_secs()
    }

    /// Seconds since the last successful renewal, while leading a replicated store.
    pub fn lease_age_secs(&self) -> Option<f64> {
        if !matches!(*self.standing.borrow(), Standing::Leader { .. }) {
            return None;
        }
        let renewed = *self.renewed.lock().unwrap_or_else(|e| e.into_inner());
        renewed.map(|at| at.elapsed().as_secs_f64())
    }

    /// `/readyz`'s words: "leader", "follower of b (http://…)", or "" alone.
    pub fn describe(&self) -> String {
        match self.standing() {
            Standing::Alone => String::new(),
            Standing::Leader { epoch } => format!("leader {} in epoch {epoch}", self.replica),
            Standing::Follower { leader: Some(h) } => {
                format!("{}, follower of {} ({})", self.replica, h.name, h.address)
            }
            Standing::Follower { leader: None } => {
                format!("{}, follower; no replica leads yet", self.replica)
            }
        }
    }

    /// The top bar's chip: which replica this is and who leads; `None` alone.
    pub fn line(&self) -> Option<app::live::ReplicaLine> {
        let name = &self.replica;
        Some(match self.standing() {
            Standing::Alone => return None,
            Standing::Leader { epoch } => app::live::ReplicaLine {
                leads: true,
                text: format!("{name} · leads"),
                detail: format!(
                    "You are on replica {name}, which leads (epoch {epoch}): it acts, notifies and takes edits"
                ),
            },
            Standing::Follower { leader: Some(h) } => app::live::ReplicaLine {
                leads: false,
                text: format!("{name} · follows {}", h.name),
                detail: format!(
                    "You are on replica {name}, which follows {} ({}): it shows everything, and passes the edits made here to {}",
                    h.name, h.address, h.name
                ),
            },
            Standing::Follower { leader: None } => app::live::ReplicaLine {
                leads: false,
                text: format!("{name} · no leader yet"),
                detail: format!(
                    "You are on replica {name}; no replica leads right now (one takes over within {} s), so edits wait",
                    self.timing.takeover_secs()
                ),
            },
        })
    }

    /// Why an edit that reached this replica's change path is refused, or `None` when it
    /// leads. Edits made on a follower's pages and API are passed to the leader before
    /// they get here (`crate::http::forward`); this refuses the ones that reach a replica
    /// that stopped leading meanwhile.
    pub fn refuse_edit(&self) -> Option<String> {
        match self.standing() {
            Standing::Alone | Standing::Leader { .. } => None,
            Standing::Follower { leader: Some(h) } => Some(format!(
                "this replica ({}) follows {} at {}; edits are taken by the leader (through the load balancer they reach it once it is marked up)",
                self.replica, h.name, h.address
            )),
            Standing::Follower { leader: None } => Some(format!(
                "this replica ({}) does not lead and no replica leads yet (one takes over within {} s); retry shortly",
                self.replica,
                self.timing.takeover_secs()
            )),
        }
    }

    fn set(&self, standing: Standing) {
        self.standing.send_if_modified(|now| {
            let changed = *now != standing;
            *now = standing;
            changed
        });
    }

    fn fence(&self) -> &Fence {
        self.fence
            .as_deref()
            .expect("a replicated leadership has a fence")
    }

    /// Stops acting first, then gives up the right to write.
    fn step_down(&self, leader: Option<Holder>, why: &str) {
        if matches!(self.standing(), Standing::Leader { .. }) {
            tracing::warn!(replica = %self.replica, %why, "Stepping down: this replica no longer leads");
        }
        self.set(Standing::Follower { leader });
        self.fence().set(0);
    }
}

/// What the lease loop asks of the rest of the replica.
pub trait Replica: Send + Sync + 'static {
    /// Just after the lease is taken, before acting starts: bring the configuration up to
    /// what the shared store holds and write the baseline. An error gives the lease back.
    fn promoted(&self) -> futures_util::future::BoxFuture<'_, anyhow::Result<()>>;
    /// Just after this replica became the leader (it acts and takes edits now): apply
    /// the configuration file's sources, as a single perfpilot does at start.
    fn took_over(&self) -> futures_util::future::BoxFuture<'_, ()>;
    /// Every follower round: catch up with edits made through the leader.
    fn follow(&self) -> futures_util::future::BoxFuture<'_, ()>;
    /// Every leader round, after a renewal: take in what the other replica wrote (an
    /// acknowledgement, a silence).
    fn lead(&self) -> futures_util::future::BoxFuture<'_, ()>;
}

const TAKE: &str = "INSERT INTO lease(name, holder, address, epoch, expires_at, renewed_at) \
     VALUES ('leader', $1, $2, 1, now() + make_interval(secs => $3::float8), now()) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, address = excluded.address, \
     epoch = lease.epoch + 1, expires_at = excluded.expires_at, renewed_at = excluded.renewed_at \
     WHERE lease.expires_at < now() RETURNING epoch";
const RENEW: &str = "UPDATE lease SET expires_at = now() + make_interval(secs => $3::float8), \
     renewed_at = now() WHERE name = 'leader' AND holder = $1 AND epoch = $2 RETURNING epoch";
const RELEASE: &str = "UPDATE lease SET expires_at = now() - interval '1 millisecond' \
     WHERE name = 'leader' AND holder = $1 AND epoch = $2";
const WHO: &str =
    "SELECT holder, address, epoch FROM lease WHERE name = 'leader' AND expires_at > now()";

/// Keeps the lease: takes it when free, renews it while leading, steps down when it
/// cannot, and gives it up when `stop` resolves (SIGTERM). Runs until then.
pub async fn keep(
    leadership: Leadership,
    settings: connectors::sources::postgres::PostgresSettings,
    replica: Arc<dyn Replica>,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(stop);
    let timing = leadership.timing;
    let lease_secs = timing.lease.as_secs_f64();
    let mut client: Option<tokio_postgres::Client> = None;
    loop {
        let pause = match leadership.standing() {
            Standing::Leader { .. } => timing.renew_every,
            _ => RETRY_EVERY,
        };
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(pause) => {}
        }
        if client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            client = match connectors::sources::postgres::connect_fresh(&settings).await {
                Ok(c) => Some(c),
                Err(err) => {
                    tracing::warn!(%err, "The lease's database connection failed");
                    None
                }
            };
        }
        let Some(db) = &client else {
            overdue(&leadership, "the database cannot be reached");
            continue;
        };
        match leadership.standing() {
            Standing::Leader { epoch } => {
                let sent = Instant::now();
                let renewed = statement(db.query_opt(
                    RENEW,
                    &[&&*leadership.replica, &(epoch as i64), &lease_secs],
                ))
                .await;
                match renewed {
                    Ok(Some(_)) => {
                        *leadership.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Some(sent);
                        replica.lead().await;
                    }
                    Ok(None) => {
                        let holder = who(db).await;
                        leadership.step_down(holder, "another replica holds the lease");
                    }
                    Err(err) => overdue(&leadership, &err),
                }
            }
            Standing::Follower { .. } => {
                let sent = Instant::now();
                let taken = statement(db.query_opt(
                    TAKE,
                    &[&&*leadership.replica, &&*leadership.address, &lease_secs],
                ))
                .await;
                match taken {
                    Ok(Some(row)) => {
                        let epoch = row.get::<_, i64>(0) as u64;
                        *leadership.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Some(sent);
                        // Writes pass the fence from here on; acting starts only once the
                        // configuration is the shared one.
                        leadership.fence().set(epoch);
                        match replica.promoted().await {
                            Ok(()) => {
                                tracing::info!(replica = %leadership.replica, epoch, "This replica leads");
                                leadership.set(Standing::Leader { epoch });
                                replica.took_over().await;
                            }
                            Err(err) => {
                                tracing::error!(%err, "Cannot take over; giving the lease back");
                                release(db, &leadership, epoch).await;
                                leadership.step_down(None, "taking over failed");
                            }
                        }
                    }
                    Ok(None) => {
                        let holder = who(db).await;
                        leadership.set(Standing::Follower { leader: holder });
                        replica.follow().await;
                    }
                    Err(err) => tracing::warn!(%err, "Cannot read the lease"),
                }
            }
            Standing::Alone => return,
        }
    }
    // SIGTERM: stop acting, then let the next replica take over at once.
    if let Standing::Leader { epoch } = leadership.standing() {
        leadership.step_down(None, "shutting down");
        if let Some(db) = &client {
            release(db, &leadership, epoch).await;
            tracing::info!(replica = %leadership.replica, "Lease given up for the next replica");
        }
    }
}

async fn statement<T>(
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, query).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!(
            "no answer within {} ms",
            STATEMENT_TIMEOUT.as_millis()
        )),
    }
}

/// A leader that could not renew steps down once its last renewal is too old.
fn overdue(leadership: &Leadership, why: &str) {
    if !matches!(leadership.standing(), Standing::Leader { .. }) {
        return;
    }
    let last = *leadership.renewed.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|at| at.elapsed() >= leadership.timing.step_down_after) {
        leadership.step_down(None, &format!("cannot renew the lease: {why}"));
    } else {
        tracing::warn!(%why, "Renewing the lease failed; retrying");
    }
}

async fn who(db: &tokio_postgres::Client) -> Option<Holder> {
    let row = statement(db.query_opt(WHO, &[])).await.ok()??;
    Some(Holder {
        name: row.get(0),
        address: row.get(1),
        epoch: row.get::<_, i64>(2) as u64,
    })
}

async fn release(db: &tokio_postgres::Client, leadership: &Leadership, epoch: u64) {
    let released = statement(db.execute(RELEASE, &[&&*leadership.replica, &(epoch as i64)])).await;
    if let Err(err) = released {
        tracing::warn!(%err, "Giving the lease up failed; it expires by itself");
    }
}
