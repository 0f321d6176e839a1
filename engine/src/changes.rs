//! The change store: the single owner of resource configuration, its change counter and the
//! auto-save snapshots taken every Nth accepted change (seed AIR-008).
//!
//! Shape, and why:
//! - Writers serialize on one `Mutex`: the change number, the snapshot decision and the
//!   publication of the new state happen in one critical section, which is what makes
//!   "N×k accepted changes give exactly k snapshots, numbers gap-free" hold under any
//!   concurrency. Validation happens inside the same section so a rejected mutation can
//!   never consume a number.
//! - Readers never take that lock: the state and the snapshot ring are published through
//!   `ArcSwap`, so a reader costs a pointer load, and a writer's publication a pointer swap.
//! - The resource map is persistent (`imbl::OrdMap` of `Arc<Resource>`): a mutation copies
//!   one O(log n) path and rebuilds only the touched resource, a snapshot shares the whole
//!   tree in O(1), and nothing is hashed under the lock.
//! - A snapshot's content hash is computed on first use (listing, verify, audit, persist),
//!   outside the writer lock. Its content is immutable, so the hash is the same as if it
//!   had been computed when it was taken. Per-resource digests are cached by pointer, so
//!   hashing a snapshot re-hashes only resources changed since an earlier hashed one.
//! - Nothing here touches files: durability is the server's job, fed by
//!   [`ChangeRecord`]s and [`ChangeStore::persisted`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::EngineError;
use crate::model::{
    ActionConfig, Resource, ResourceId, ResourceSettings, ResourceType, ResourceView, SourceSpec,
    StatusReport, Target, TargetEdit,
};

/// Resources by id. A persistent map: cloning is O(1) and an insert copies one path, so a
/// mutation costs O(log n) whatever the number of resources, and a snapshot shares its
/// tree with the live state.
pub type ResourceMap = imbl::OrdMap<ResourceId, Arc<Resource>>;

/// Default auto-save period, in accepted changes (seed: every 20th change).
pub const DEFAULT_AUTOSAVE_EVERY: u64 = 20;
/// Default number of snapshots kept in memory.
pub const DEFAULT_SNAPSHOT_CAPACITY: usize = 100;
/// Larger periods are almost certainly typos and would make auto-save meaningless.
pub const MAX_AUTOSAVE_EVERY: u64 = 1_000_000;
const MAX_SNAPSHOT_CAPACITY: usize = 100_000;

/// When snapshots are taken and how many are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoSave {
    every: u64,
    capacity: usize,
}

impl AutoSave {
    /// `every` must be 1–1,000,000 changes, `capacity` 1–100,000 snapshots.
    pub fn new(every: u64, capacity: usize) -> Result<Self, EngineError> {
        check_every(every)?;
        if !(1..=MAX_SNAPSHOT_CAPACITY).contains(&capacity) {
            return Err(EngineError::invalid(
                "autosave.capacity",
                format!("must be within 1–{MAX_SNAPSHOT_CAPACITY} snapshots, got {capacity}"),
            ));
        }
        Ok(AutoSave { every, capacity })
    }

    pub fn every(&self) -> u64 {
        self.every
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

fn check_every(every: u64) -> Result<(), EngineError> {
    if !(1..=MAX_AUTOSAVE_EVERY).contains(&every) {
        return Err(EngineError::invalid(
            "autosave.every",
            format!("must be within 1–{MAX_AUTOSAVE_EVERY} changes, got {every}"),
        ));
    }
    Ok(())
}

impl Default for AutoSave {
    fn default() -> Self {
        AutoSave {
            every: DEFAULT_AUTOSAVE_EVERY,
            capacity: DEFAULT_SNAPSHOT_CAPACITY,
        }
    }
}

/// Source of the two timestamps of a snapshot. Injected so tests can control time and so
/// the crate has no hidden dependency on a platform clock (wasm32 has none).
pub trait Clock: Send + Sync + 'static {
    /// Wall time, unix milliseconds.
    fn wall_unix_ms(&self) -> i64;
    /// Monotonic nanoseconds since an arbitrary origin fixed for this clock's lifetime.
    fn mono_ns(&self) -> u64;
}

/// The process clock: `SystemTime` for wall time, `Instant` for monotonic time.
#[derive(Debug)]
pub struct SystemClock {
    origin: std::time::Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: std::time::Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn wall_unix_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn mono_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// How a store is set up.
#[derive(Clone)]
pub struct StoreOptions {
    pub autosave: AutoSave,
    /// Programs a `command` action may name. `None` skips the check here (the action
    /// runner enforces its own list regardless); `Some` rejects other programs up front.
    pub allowed_programs: Option<Arc<BTreeSet<String>>>,
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            autosave: AutoSave::default(),
            allowed_programs: None,
            clock: Arc::new(SystemClock::default()),
        }
    }
}

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("autosave", &self.autosave)
            .field("allowed_programs", &self.allowed_programs)
            .finish_non_exhaustive()
    }
}

/// Every way the configuration can change. Closed on purpose: each variant is validated,
/// counted, audited and snapshotted the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Mutation {
    AddResource {
        resource: Resource,
    },
    RemoveResource {
        id: ResourceId,
    },
    SetTarget {
        id: ResourceId,
        target: Target,
    },
    /// Changes some fields of a metric's target, decided against the configuration current
    /// under the writer lock (see [`Target::edited`]). Recorded as a `SetTarget`.
    EditTarget {
        id: ResourceId,
        edit: TargetEdit,
    },
    ClearTarget {
        id: ResourceId,
    },
    SetSettings {
        id: ResourceId,
        settings: ResourceSettings,
    },
    Rename {
        id: ResourceId,
        name: String,
    },
    /// Changes where a configured resource's samples come from (its connection, probe…).
    SetSource {
        id: ResourceId,
        source: SourceSpec,
        /// A fleet's host metrics as its new settings define them (custom PromQL metrics
        /// may have been added or removed); `None` keeps them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fleet_metrics: Option<Vec<crate::fleet::FleetMetric>>,
    },
    /// Sets (`target: Some`) or resets to inherited (`None`) one metric's target at one
    /// level of a fleet: the default, a group, a host.
    SetFleetTarget {
        id: ResourceId,
        scope: crate::fleet::Scope,
        metric: String,
        target: Option<Target>,
    },
    /// Replace all resources with those of a snapshot still in the ring.
    Restore {
        snapshot: u64,
    },
}

impl Mutation {
    pub fn kind(&self) -> MutationKind {
        match self {
            Mutation::AddResource { .. } => MutationKind::AddResource,
            Mutation::RemoveResource { .. } => MutationKind::RemoveResource,
            Mutation::SetTarget { .. } | Mutation::EditTarget { .. } => MutationKind::SetTarget,
            Mutation::ClearTarget { .. } => MutationKind::ClearTarget,
            Mutation::SetSettings { .. } => MutationKind::SetSettings,
            Mutation::Rename { .. } => MutationKind::Rename,
            Mutation::SetSource { .. } => MutationKind::SetSource,
            Mutation::SetFleetTarget { .. } => MutationKind::SetFleetTarget,
            Mutation::Restore { .. } => MutationKind::Restore,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    AddResource,
    RemoveResource,
    SetTarget,
    ClearTarget,
    SetSettings,
    Rename,
    SetSource,
    SetFleetTarget,
    Restore,
}

/// The configuration as of one change number, published to readers as a whole.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct State {
    /// Number of the last accepted change (0 before any).
    pub change: u64,
    pub resources: ResourceMap,
}

/// An in-memory auto-save: the configuration at `change`, with its times and content hash.
/// A snapshot's id is its change number. Serializes with its `hash`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub change: u64,
    pub wall_unix_ms: i64,
    /// Monotonic time of `boot_id`'s clock; only comparable between snapshots of one boot.
    pub mono_ns: u64,
    pub boot_id: u64,
    pub resources: ResourceMap,
    /// Hex content hash, computed on first use or recorded when loaded from persistence.
    hash: OnceLock<String>,
    digests: Option<Arc<DigestCache>>,
}

/// The serialized form of a [`Snapshot`].
#[derive(Serialize, Deserialize)]
struct SnapshotWire {
    change: u64,
    wall_unix_ms: i64,
    mono_ns: u64,
    boot_id: u64,
    hash: String,
    resources: ResourceMap,
}

impl Serialize for Snapshot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SnapshotWire {
            change: self.change,
            wall_unix_ms: self.wall_unix_ms,
            mono_ns: self.mono_ns,
            boot_id: self.boot_id,
            hash: self.hash().to_owned(),
            resources: self.resources.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Snapshot {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = SnapshotWire::deserialize(deserializer)?;
        Ok(Snapshot {
            change: w.change,
            wall_unix_ms: w.wall_unix_ms,
            mono_ns: w.mono_ns,
            boot_id: w.boot_id,
            resources: w.resources,
            hash: OnceLock::from(w.hash),
            digests: None,
        })
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.change == other.change
            && self.wall_unix_ms == other.wall_unix_ms
            && self.mono_ns == other.mono_ns
            && self.boot_id == other.boot_id
            && self.resources == other.resources
            && self.hash() == other.hash()
    }
}

impl Snapshot {
    /// Hex SHA-256 content hash (see [`content_hash`]).
    pub fn hash(&self) -> &str {
        self.hash.get_or_init(|| match &self.digests {
            Some(cache) => cache.hash(&self.resources),
            None => content_hash(&self.resources),
        })
    }

    pub fn info(&self) -> SnapshotInfo {
        SnapshotInfo {
            change: self.change,
            wall_unix_ms: self.wall_unix_ms,
            hash: self.hash().to_owned(),
            resources: self.resources.len(),
        }
    }

    /// Recomputes the content hash and checks map keys match resource ids.
    pub fn verify_hash(&self) -> Result<(), EngineError> {
        let corrupt = |reason: String| EngineError::CorruptSnapshot {
            id: self.change,
            reason,
        };
        if let Some((k, r)) = self.resources.iter().find(|(k, r)| **k != r.id) {
            return Err(corrupt(format!("entry `{k}` holds resource `{}`", r.id)));
        }
        // From scratch, bypassing the digest cache: this is the check.
        let actual = content_hash(&self.resources);
        if actual != self.hash() {
            return Err(corrupt(format!(
                "content hash is {actual}, recorded {}",
                self.hash()
            )));
        }
        Ok(())
    }
}

/// A snapshot without its contents, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub change: u64,
    pub wall_unix_ms: i64,
    pub hash: String,
    pub resources: usize,
}

/// Canonical digest of one resource: SHA-256 of its JSON form (struct fields in
/// declaration order, floats in shortest round-trip form, so equal values hash equally).
fn resource_digest(r: &Resource) -> [u8; 32] {
    let bytes = serde_json::to_vec(r).expect("a Resource always serializes");
    Sha256::digest(&bytes).into()
}

fn combine_digests<'a>(entries: impl Iterator<Item = (&'a ResourceId, [u8; 32])>) -> String {
    let mut h = Sha256::new();
    for (id, digest) in entries {
        // Length-prefixing the id keeps ("ab","c") and ("a","bc") apart.
        h.update((id.as_str().len() as u64).to_le_bytes());
        h.update(id.as_str().as_bytes());
        h.update(digest);
    }
    hex::encode(h.finalize())
}

/// A resource's digest and the exact `Arc` it was computed from.
type CachedDigest = (Arc<Resource>, [u8; 32]);

/// Per-resource digests keyed by id, valid while the `Arc` is the same one (pointer
/// equality), shared by a store and its snapshots.
#[derive(Debug, Default)]
struct DigestCache {
    map: Mutex<HashMap<ResourceId, CachedDigest>>,
}

impl DigestCache {
    fn hash(&self, resources: &ResourceMap) -> String {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let hash = combine_digests(resources.iter().map(|(id, r)| {
            let d = match map.get(id) {
                Some((cached, d)) if Arc::ptr_eq(cached, r) => *d,
                _ => {
                    let d = resource_digest(r);
                    map.insert(id.clone(), (r.clone(), d));
                    d
                }
            };
            (id, d)
        }));
        // Bound the cache by what current configurations hold (removed resources go).
        if map.len() > 2 * resources.len() + 64 {
            map.retain(|id, _| resources.contains_key(id));
        }
        hash
    }
}

/// The content hash of a configuration: SHA-256 over, for each resource in id order, the
/// length-prefixed id and the SHA-256 of the resource's canonical JSON.
pub fn content_hash(resources: &ResourceMap) -> String {
    combine_digests(resources.iter().map(|(id, r)| (id, resource_digest(r))))
}

/// One field that differs between two configurations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub resource: ResourceId,
    /// Field path inside the resource ("target.value", "settings.action.url"), empty when
    /// the whole resource was added or removed.
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        match (self.path.is_empty(), &self.before, &self.after) {
            (true, None, Some(_)) => write!(f, "{}: added", self.resource),
            (true, Some(_), None) => write!(f, "{}: removed", self.resource),
            _ => write!(
                f,
                "{}: {}: {} → {}",
                self.resource,
                self.path,
                side(&self.before),
                side(&self.after)
            ),
        }
    }
}

/// Structured differences from `a` to `b`, ordered by resource id then field path.
pub fn diff(a: &ResourceMap, b: &ResourceMap) -> Vec<Difference> {
    let ids: BTreeSet<&ResourceId> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for id in ids {
        match (a.get(id), b.get(id)) {
            (Some(x), Some(y)) if Arc::ptr_eq(x, y) || x == y => {}
            (Some(x), Some(y)) => {
                let (fx, fy) = (flatten_resource(x), flatten_resource(y));
                let paths: BTreeSet<&String> = fx.keys().chain(fy.keys()).collect();
                for p in paths {
                    let (bx, by) = (fx.get(p), fy.get(p));
                    if bx != by {
                        out.push(Difference {
                            resource: id.clone(),
                            path: p.clone(),
                            before: bx.cloned(),
                            after: by.cloned(),
                        });
                    }
                }
            }
            (x, y) => out.push(Difference {
                resource: id.clone(),
                path: String::new(),
                before: x.map(|r| r.name.clone()),
                after: y.map(|r| r.name.clone()),
            }),
        }
    }
    out
}

fn flatten_resource(r: &Resource) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let v = serde_json::to_value(r).expect("a Resource always serializes");
    flatten_json("", &v, &mut out);
    out
}

fn flatten_json(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_json(&p, v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_json(&format!("{prefix}[{i}]"), v, out);
            }
            if items.is_empty() {
                out.insert(prefix.to_owned(), "[]".into());
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// What an accepted change did; returned to the caller for audit and journaling.
/// Holding `Arc`s keeps it cheap to build on the hot path; the JSON views are rendered
/// on demand by [`ChangeRecord::audit`].
#[derive(Debug, Clone)]
pub struct ChangeRecord {
    pub change: u64,
    pub at_unix_ms: i64,
    pub kind: MutationKind,
    pub resource: Option<ResourceId>,
    pub before: Option<Arc<Resource>>,
    pub after: Option<Arc<Resource>>,
    /// For restores: the snapshot restored and what it changed.
    pub restored: Option<RestoreInfo>,
    /// The snapshot this change triggered, if it was an Nth change. Its hash is computed
    /// on first use, off the writer lock.
    pub snapshot: Option<Arc<Snapshot>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreInfo {
    pub snapshot: u64,
    pub hash: String,
    pub differences: Vec<Difference>,
}

/// The journal/audit form of a change: what, and before → after as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub change: u64,
    pub at_unix_ms: i64,
    pub kind: MutationKind,
    pub resource: Option<ResourceId>,
    /// Human summary, e.g. "cpu: target utilization ≤ 65 % → ≤ 70 %".
    pub what: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub snapshot: Option<SnapshotInfo>,
}

impl ChangeRecord {
    /// The part of the resource this kind of change touches, before and after.
    fn side(&self, r: Option<&Arc<Resource>>) -> serde_json::Value {
        use serde_json::{json, Value};
        let Some(r) = r else { return Value::Null };
        match self.kind {
            MutationKind::SetTarget | MutationKind::ClearTarget => json!(r.target),
            MutationKind::SetSettings => json!(r.settings),
            MutationKind::Rename => json!(r.name),
            MutationKind::SetSource => json!(r.source),
            MutationKind::SetFleetTarget => json!(r.fleet.as_ref().map(|f| &f.targets)),
            _ => json!(r),
        }
    }

    pub fn what(&self) -> String {
        let id = self.resource.as_ref().map(ResourceId::as_str).unwrap_or("");
        let target = |r: &Option<Arc<Resource>>| match r.as_deref() {
            Some(Resource {
                target: Some(t), ..
            }) => t.describe(
                r.as_deref()
                    .and_then(Resource::target_kind)
                    .unwrap_or(crate::model::MetricKind::Utilization),
            ),
            _ => "(none)".into(),
        };
        match self.kind {
            MutationKind::AddResource => format!("{id}: added"),
            MutationKind::RemoveResource => format!("{id}: removed"),
            MutationKind::SetTarget | MutationKind::ClearTarget => {
                format!(
                    "{id}: target {} → {}",
                    target(&self.before),
                    target(&self.after)
                )
            }
            MutationKind::SetSettings | MutationKind::SetSource | MutationKind::SetFleetTarget => {
                let n = match (&self.before, &self.after) {
                    (Some(b), Some(a)) => diff(
                        &ResourceMap::unit(b.id.clone(), b.clone()),
                        &ResourceMap::unit(a.id.clone(), a.clone()),
                    )
                    .into_iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
                    _ => String::new(),
                };
                match (n.is_empty(), self.kind) {
                    (true, MutationKind::SetFleetTarget) => {
                        format!("{id}: fleet targets unchanged")
                    }
                    (true, _) => format!("{id}: settings unchanged"),
                    (false, _) => n,
                }
            }
            MutationKind::Rename => format!(
                "{id}: renamed {:?} → {:?}",
                self.before.as_ref().map(|r| r.name.as_str()).unwrap_or(""),
                self.after.as_ref().map(|r| r.name.as_str()).unwrap_or("")
            ),
            MutationKind::Restore => match &self.restored {
                Some(r) => format!(
                    "restored snapshot #{} ({} differences)",
                    r.snapshot,
                    r.differences.len()
                ),
                None => "restored a snapshot".into(),
            },
        }
    }

    pub fn audit(&self) -> AuditEntry {
        let (before, after) = match &self.restored {
            Some(r) => (
                serde_json::json!(r
                    .differences
                    .iter()
                    .map(|d| (d.to_string(), &d.before))
                    .collect::<Vec<_>>()),
                serde_json::json!({ "snapshot": r.snapshot, "hash": r.hash, "differences": r.differences }),
            ),
            None => (
                self.side(self.before.as_ref()),
                self.side(self.after.as_ref()),
            ),
        };
        AuditEntry {
            change: self.change,
            at_unix_ms: self.at_unix_ms,
            kind: self.kind,
            resource: self.resource.clone(),
            what: self.what(),
            before,
            after,
            snapshot: self.snapshot.as_deref().map(Snapshot::info),
        }
    }
}

/// Counters for dashboards and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    pub change: u64,
    /// Snapshots taken by this store since it was built (not only those still in the ring).
    pub snapshots_taken: u64,
    pub snapshots_kept: usize,
    pub autosave: AutoSave,
}

/// What the server persists and hands back at start-up to continue where it left off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    pub change: u64,
    pub autosave: AutoSave,
    pub resources: Vec<Resource>,
    pub snapshots: Vec<Snapshot>,
    /// Snapshots ever taken (the ring keeps only the newest), so "snapshots taken" goes on
    /// counting across a restart. At least `snapshots.len()`.
    #[serde(default)]
    pub snapshots_taken: u64,
}

struct Writer {
    current: Arc<State>,
    autosave: AutoSave,
    snapshots_taken: u64,
}

/// The single owner of configuration changes. Share it as `Arc<ChangeStore>`.
pub struct ChangeStore {
    writer: Mutex<Writer>,
    state: ArcSwap<State>,
    snapshots: ArcSwap<VecDeque<Arc<Snapshot>>>,
    statuses: ArcSwap<BTreeMap<ResourceId, StatusReport>>,
    allowed_programs: Option<Arc<BTreeSet<String>>>,
    clock: Arc<dyn Clock>,
    boot_id: u64,
    digests: Arc<DigestCache>,
}

impl fmt::Debug for ChangeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeStore")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ChangeStore {
    /// An empty store (change 0, no snapshots).
    pub fn new(opts: StoreOptions) -> Self {
        let boot_id = boot_id(&*opts.clock);
        ChangeStore {
            writer: Mutex::new(Writer {
                current: Arc::new(State::default()),
                autosave: opts.autosave,
                snapshots_taken: 0,
            }),
            state: ArcSwap::from_pointee(State::default()),
            snapshots: ArcSwap::from_pointee(VecDeque::new()),
            statuses: ArcSwap::from_pointee(BTreeMap::new()),
            allowed_programs: opts.allowed_programs,
            clock: opts.clock,
            boot_id,
            digests: Arc::default(),
        }
    }

    /// A store seeded with `resources` without counting them as changes (start-up config).
    pub fn with_resources(
        resources: Vec<Resource>,
        opts: StoreOptions,
    ) -> Result<Self, EngineError> {
        let autosave = opts.autosave;
        Self::from_persisted(
            PersistedState {
                change: 0,
                autosave,
                resources,
                snapshots: Vec::new(),
                snapshots_taken: 0,
            },
            opts,
        )
    }

    /// Rebuilds a store from what [`ChangeStore::persisted`] returned before a restart: the
    /// counter continues from `state.change`. Every resource is validated and every snapshot
    /// verified; on any error nothing is built. `state.autosave` wins over `opts.autosave`.
    pub fn from_persisted(state: PersistedState, opts: StoreOptions) -> Result<Self, EngineError> {
        let store = ChangeStore::new(StoreOptions {
            autosave: state.autosave,
            ..opts
        });
        let mut map = ResourceMap::new();
        for (i, r) in state.resources.into_iter().enumerate() {
            r.validate()
                .map_err(|e| prefix_field(e, &format!("resources[{i}]")))?;
            store.check_unique(&map, &r)?;
            store.check_programs(&r.settings)?;
            map.insert(r.id.clone(), Arc::new(r));
        }
        let mut ring = VecDeque::new();
        let mut prev: Option<&Snapshot> = None;
        for s in &state.snapshots {
            s.verify_hash()?;
            if s.change > state.change {
                return Err(EngineError::CorruptSnapshot {
                    id: s.change,
                    reason: format!(
                        "taken at change {} but the counter is only at {}",
                        s.change, state.change
                    ),
                });
            }
            if let Some(p) = prev {
                check_order(p, s)?;
            }
            prev = Some(s);
        }
        let keep = state
            .snapshots
            .len()
            .saturating_sub(state.autosave.capacity);
        let taken = state.snapshots_taken.max(state.snapshots.len() as u64);
        for s in state.snapshots.into_iter().skip(keep) {
            ring.push_back(Arc::new(s));
        }
        let current = Arc::new(State {
            change: state.change,
            resources: map,
        });
        {
            let mut w = store.writer.lock().unwrap_or_else(PoisonError::into_inner);
            w.current = current.clone();
            w.snapshots_taken = taken;
        }
        store.state.store(current);
        store.snapshots.store(Arc::new(ring));
        Ok(store)
    }

    /// Replaces the whole configuration with `state` as another writer left it (a replica
    /// catching up with the store it shares, or taking over as leader). Validated like
    /// [`ChangeStore::from_persisted`]; on any error nothing changes. The counter goes
    /// where `state` says, so the next change continues the shared journal.
    pub fn adopt(&self, state: PersistedState) -> Result<(), EngineError> {
        let fresh = ChangeStore::from_persisted(
            state,
            StoreOptions {
                autosave: self
                    .writer
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .autosave,
                allowed_programs: self.allowed_programs.clone(),
                clock: self.clock.clone(),
            },
        )?;
        let adopted = fresh
            .writer
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        *w = adopted;
        self.state.store(w.current.clone());
        self.snapshots.store(fresh.snapshots.load_full());
        Ok(())
    }

    /// Everything needed to rebuild this store with [`ChangeStore::from_persisted`].
    pub fn persisted(&self) -> PersistedState {
        // Read both under the writer lock so the counter and snapshots are consistent.
        let w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        PersistedState {
            change: w.current.change,
            autosave: w.autosave,
            resources: w
                .current
                .resources
                .values()
                .map(|r| (**r).clone())
                .collect(),
            snapshots: self
                .snapshots
                .load()
                .iter()
                .map(|s| {
                    // Fix the hash before the contents leave the store.
                    s.hash();
                    (**s).clone()
                })
                .collect(),
            snapshots_taken: w.snapshots_taken,
        }
    }

    /// The current configuration: a pointer load, never blocked by writers.
    pub fn state(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// Snapshots still in the ring, oldest first.
    pub fn snapshots(&self) -> Arc<VecDeque<Arc<Snapshot>>> {
        self.snapshots.load_full()
    }

    pub fn snapshot(&self, id: u64) -> Result<Arc<Snapshot>, EngineError> {
        self.snapshots
            .load()
            .iter()
            .find(|s| s.change == id)
            .cloned()
            .ok_or(EngineError::UnknownSnapshot { id })
    }

    pub fn stats(&self) -> StoreStats {
        let w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        StoreStats {
            change: w.current.change,
            snapshots_taken: w.snapshots_taken,
            snapshots_kept: self.snapshots.load().len(),
            autosave: w.autosave,
        }
    }

    /// Changes the auto-save period. Not itself a change: from now on a snapshot is taken
    /// at every change number divisible by `every`.
    pub fn set_autosave_every(&self, every: u64) -> Result<(), EngineError> {
        check_every(every)?;
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .autosave
            .every = every;
        Ok(())
    }

    /// Applies one mutation. On success the change got the next number and is published;
    /// on error nothing changed and no number was used.
    pub fn apply(&self, mutation: Mutation) -> Result<ChangeRecord, EngineError> {
        self.apply_with(mutation, |_, _| {})
    }

    /// [`ChangeStore::apply`], calling `on_accepted` with the record and the new state
    /// while the writer lock is still held. A journal fed from here sees changes in
    /// exactly their number order, with no gap and no reordering between writers, which
    /// a caller enqueuing after `apply` returned could not promise. Keep it short (a
    /// channel send): every other writer waits for it. Not called for a refusal.
    pub fn apply_with(
        &self,
        mutation: Mutation,
        on_accepted: impl FnOnce(&ChangeRecord, &Arc<State>),
    ) -> Result<ChangeRecord, EngineError> {
        self.apply_authorized(mutation, |_, _| Ok(()), on_accepted)
    }

    /// [`ChangeStore::apply_with`], first asking `authorize` whether the change may be made
    /// given the configuration current under the writer lock (e.g. whether it touches what
    /// only an admin may change). A refusal changes nothing and takes no number.
    pub fn apply_authorized(
        &self,
        mutation: Mutation,
        authorize: impl FnOnce(&State, &Mutation) -> Result<(), EngineError>,
        on_accepted: impl FnOnce(&ChangeRecord, &Arc<State>),
    ) -> Result<ChangeRecord, EngineError> {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        authorize(&w.current, &mutation)?;
        let planned = self.plan(&w.current.resources, mutation)?;
        let change = w.current.change + 1;
        let at_unix_ms = self.clock.wall_unix_ms();
        let state = Arc::new(State {
            change,
            resources: planned.resources,
        });
        w.current = state.clone();
        self.state.store(state);
        let snapshot = change
            .is_multiple_of(w.autosave.every)
            .then(|| self.take_snapshot(&mut w));
        let record = ChangeRecord {
            change,
            at_unix_ms,
            kind: planned.kind,
            resource: planned.resource,
            before: planned.before,
            after: planned.after,
            restored: planned.restored,
            snapshot,
        };
        on_accepted(&record, &w.current);
        drop(w);
        Ok(record)
    }

    /// Restores snapshot `id`; a change like any other.
    pub fn restore(&self, id: u64) -> Result<ChangeRecord, EngineError> {
        self.apply(Mutation::Restore { snapshot: id })
    }

    /// Checks a snapshot's content hash and that its change number and timestamps are in
    /// order with the snapshot before it in the ring.
    pub fn verify(&self, id: u64) -> Result<(), EngineError> {
        let ring = self.snapshots.load();
        let pos = ring
            .iter()
            .position(|s| s.change == id)
            .ok_or(EngineError::UnknownSnapshot { id })?;
        ring[pos].verify_hash()?;
        if pos > 0 {
            check_order(&ring[pos - 1], &ring[pos])?;
        }
        Ok(())
    }

    /// Differences from snapshot `a` to snapshot `b`.
    pub fn diff_snapshots(&self, a: u64, b: u64) -> Result<Vec<Difference>, EngineError> {
        Ok(diff(
            &self.snapshot(a)?.resources,
            &self.snapshot(b)?.resources,
        ))
    }

    /// Differences from snapshot `id` to the current configuration.
    pub fn diff_with_current(&self, id: u64) -> Result<Vec<Difference>, EngineError> {
        Ok(diff(&self.snapshot(id)?.resources, &self.state().resources))
    }

    /// Publishes live statuses from the optimizer loop. Not a change: statuses are runtime
    /// observations, not configuration. Entries for unknown resources are dropped.
    pub fn publish_statuses(&self, updates: impl IntoIterator<Item = (ResourceId, StatusReport)>) {
        let updates: Vec<_> = updates.into_iter().collect();
        let state = self.state();
        self.statuses.rcu(|old| {
            let mut next: BTreeMap<ResourceId, StatusReport> = old
                .iter()
                .filter(|(id, _)| state.resources.contains_key(*id))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (id, s) in &updates {
                if state.resources.contains_key(id) {
                    next.insert(id.clone(), s.clone());
                }
            }
            next
        });
    }

    pub fn status(&self, id: &ResourceId) -> StatusReport {
        self.statuses.load().get(id).cloned().unwrap_or_default()
    }

    /// Configuration plus status of every resource, in id order.
    pub fn views(&self) -> Vec<ResourceView> {
        let state = self.state();
        let statuses = self.statuses.load();
        state
            .resources
            .iter()
            .map(|(id, r)| ResourceView {
                resource: r.clone(),
                status: statuses.get(id).cloned().unwrap_or_default(),
            })
            .collect()
    }

    fn take_snapshot(&self, w: &mut Writer) -> Arc<Snapshot> {
        let snap = Arc::new(Snapshot {
            change: w.current.change,
            wall_unix_ms: self.clock.wall_unix_ms(),
            mono_ns: self.clock.mono_ns(),
            boot_id: self.boot_id,
            resources: w.current.resources.clone(),
            hash: OnceLock::new(),
            digests: Some(self.digests.clone()),
        });
        let mut ring = VecDeque::clone(&self.snapshots.load());
        ring.push_back(snap.clone());
        while ring.len() > w.autosave.capacity {
            ring.pop_front();
        }
        self.snapshots.store(Arc::new(ring));
        w.snapshots_taken += 1;
        snap
    }

    fn check_unique(&self, map: &ResourceMap, r: &Resource) -> Result<(), EngineError> {
        if map.contains_key(&r.id) {
            return Err(EngineError::DuplicateResource { id: r.id.clone() });
        }
        if let ResourceType::Custom(n) = r.resource_type {
            if let Some(other) = map.values().find(|o| o.resource_type == r.resource_type) {
                return Err(EngineError::DuplicateCustom {
                    custom: n,
                    existing: other.id.clone(),
                });
            }
        }
        Ok(())
    }

    fn check_programs(&self, settings: &ResourceSettings) -> Result<(), EngineError> {
        let Some(allowed) = &self.allowed_programs else {
            return Ok(());
        };
        let rollback = match &settings.action {
            ActionConfig::Command(c) => c.rollback.as_ref().map(|r| r.program.as_str()),
            _ => None,
        };
        for (i, program) in settings.action.programs().into_iter().enumerate() {
            if allowed.contains(program) {
                continue;
            }
            let list: Vec<&str> = allowed.iter().map(String::as_str).collect();
            let allowed = if list.is_empty() {
                "no program is allowed; the server's operator adds one with --allow-program"
                    .to_owned()
            } else {
                format!("allowed: {}", list.join(", "))
            };
            let field = if i > 0 && rollback == Some(program) {
                "settings.action.rollback.program"
            } else {
                "settings.action.program"
            };
            return Err(EngineError::invalid(
                field,
                format!("`{program}` is not in the command allow-list ({allowed})"),
            ));
        }
        Ok(())
    }

    /// Validates `m` against `current` and computes the next map. Pure: no publication.
    #[allow(clippy::too_many_lines)] // 207 lines today; split before it grows
    fn plan(&self, current: &ResourceMap, m: Mutation) -> Result<Planned, EngineError> {
        let kind = m.kind();
        let existing = |id: &ResourceId| {
            current
                .get(id)
                .cloned()
                .ok_or_else(|| EngineError::UnknownResource { id: id.clone() })
        };
        // Callers validate only what their mutation touched: the rest of the resource was
        // validated when it was accepted, and edits are the hot path.
        let replace = |before: Arc<Resource>, after: Resource| -> Result<Planned, EngineError> {
            let after = Arc::new(after);
            let mut resources = current.clone();
            resources.insert(after.id.clone(), after.clone());
            Ok(Planned {
                kind,
                resource: Some(after.id.clone()),
                before: Some(before),
                after: Some(after),
                restored: None,
                resources,
            })
        };
        match m {
            Mutation::AddResource { resource } => {
                resource.validate()?;
                self.check_unique(current, &resource)?;
                self.check_programs(&resource.settings)?;
                let after = Arc::new(resource);
                let mut resources = current.clone();
                resources.insert(after.id.clone(), after.clone());
                Ok(Planned {
                    kind,
                    resource: Some(after.id.clone()),
                    before: None,
                    after: Some(after),
                    restored: None,
                    resources,
                })
            }
            Mutation::RemoveResource { id } => {
                let before = existing(&id)?;
                let mut resources = current.clone();
                resources.remove(&id);
                Ok(Planned {
                    kind,
                    resource: Some(id),
                    before: Some(before),
                    after: None,
                    restored: None,
                    resources,
                })
            }
            Mutation::SetTarget { id, target } => {
                let before = existing(&id)?;
                target.validate(&before.metrics, &before.settings)?;
                let after = Resource {
                    target: Some(target),
                    ..(*before).clone()
                };
                replace(before, after)
            }
            Mutation::EditTarget { id, edit } => {
                let before = existing(&id)?;
                let target = Target::edited(before.target.as_ref(), &edit)?;
                target.validate(&before.metrics, &before.settings)?;
                let after = Resource {
                    target: Some(target),
                    ..(*before).clone()
                };
                replace(before, after)
            }
            Mutation::ClearTarget { id } => {
                let before = existing(&id)?;
                let after = Resource {
                    target: None,
                    ..(*before).clone()
                };
                replace(before, after)
            }
            Mutation::SetSettings { id, settings } => {
                let before = existing(&id)?;
                settings.validate()?;
                self.check_programs(&settings)?;
                if let Some(t) = &before.target {
                    t.validate(&before.metrics, &settings)?;
                }
                if let Some(fleet) = &before.fleet {
                    fleet.validate(&settings)?;
                }
                let after = Resource {
                    settings,
                    ..(*before).clone()
                };
                replace(before, after)
            }
            Mutation::Rename { id, name } => {
                let before = existing(&id)?;
                crate::model::validate_name(&name)?;
                let after = Resource {
                    name,
                    ..(*before).clone()
                };
                replace(before, after)
            }
            Mutation::SetSource {
                id,
                source,
                fleet_metrics,
            } => {
                let before = existing(&id)?;
                if before.source.is_none() {
                    return Err(EngineError::invalid(
                        "source",
                        format!("resource `{id}` is produced by a built-in source and has no configurable one"),
                    ));
                }
                let mut after = Resource {
                    source: Some(source),
                    ..(*before).clone()
                };
                if let (Some(fleet), Some(metrics)) = (after.fleet.as_mut(), fleet_metrics) {
                    fleet.metrics = metrics;
                    // Targets of metrics the fleet no longer has would name nothing.
                    let names: BTreeSet<String> =
                        fleet.metrics.iter().map(|m| m.name.clone()).collect();
                    let gone: Vec<(crate::fleet::Scope, String)> = fleet
                        .targets
                        .iter()
                        .filter(|(_, metric, _)| !names.contains(*metric))
                        .map(|(scope, metric, _)| (scope, metric.to_owned()))
                        .collect();
                    for (scope, metric) in gone {
                        fleet.targets.set(&scope, &metric, None);
                    }
                    fleet.validate(&after.settings)?;
                }
                replace(before, after)
            }
            Mutation::SetFleetTarget {
                id,
                scope,
                metric,
                target,
            } => {
                let before = existing(&id)?;
                let Some(mut fleet) = before.fleet.clone() else {
                    return Err(EngineError::invalid(
                        "resource",
                        format!("resource `{id}` is not a fleet"),
                    ));
                };
                if fleet.metric(&metric).is_none() {
                    let known: Vec<&str> = fleet.metrics.iter().map(|m| m.name.as_str()).collect();
                    return Err(EngineError::invalid(
                        "metric",
                        format!(
                            "`{metric}` is not a metric of this fleet (known: {})",
                            known.join(", ")
                        ),
                    ));
                }
                if let crate::fleet::Scope::Group(key) | crate::fleet::Scope::Host(key) = &scope {
                    if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
                        return Err(EngineError::invalid(
                            "scope.key",
                            "a group or host key is 1–256 printable characters",
                        ));
                    }
                }
                if let Some(t) = &target {
                    if t.metric != metric {
                        return Err(EngineError::invalid(
                            "target.metric",
                            format!("the target names `{}`, not `{metric}`", t.metric),
                        ));
                    }
                    t.validate(&fleet.target_metrics(), &before.settings)?;
                } else if fleet.targets.get(&scope, &metric).is_none() {
                    return Err(EngineError::invalid(
                        "scope",
                        format!(
                            "{} has no target of its own for `{metric}`: it already inherits",
                            scope.describe()
                        ),
                    ));
                }
                fleet.targets.set(&scope, &metric, target);
                let after = Resource {
                    fleet: Some(fleet),
                    ..(*before).clone()
                };
                replace(before, after)
            }
            Mutation::Restore { snapshot } => {
                let snap = self.snapshot(snapshot)?;
                let differences = diff(current, &snap.resources);
                Ok(Planned {
                    kind,
                    resource: None,
                    before: None,
                    after: None,
                    restored: Some(RestoreInfo {
                        snapshot,
                        hash: snap.hash().to_owned(),
                        differences,
                    }),
                    resources: snap.resources.clone(),
                })
            }
        }
    }
}

struct Planned {
    kind: MutationKind,
    resource: Option<ResourceId>,
    before: Option<Arc<Resource>>,
    after: Option<Arc<Resource>>,
    restored: Option<RestoreInfo>,
    resources: ResourceMap,
}

fn prefix_field(e: EngineError, prefix: &str) -> EngineError {
    match e {
        EngineError::Invalid { field, rule } => EngineError::Invalid {
            field: format!("{prefix}.{field}"),
            rule,
        },
        other => other,
    }
}

/// Change numbers strictly increase; monotonic time never goes back within one boot.
/// Wall time is only compared across boots, where it is the only clock there is: within a
/// boot an NTP step may legitimately move it backwards.
fn check_order(prev: &Snapshot, s: &Snapshot) -> Result<(), EngineError> {
    let corrupt = |reason: String| {
        Err(EngineError::CorruptSnapshot {
            id: s.change,
            reason,
        })
    };
    if s.change <= prev.change {
        return corrupt(format!(
            "change {} does not follow the previous snapshot's {}",
            s.change, prev.change
        ));
    }
    if s.boot_id == prev.boot_id {
        if s.mono_ns < prev.mono_ns {
            return corrupt(format!(
                "monotonic time {} ns precedes the previous snapshot's {} ns",
                s.mono_ns, prev.mono_ns
            ));
        }
    } else if s.wall_unix_ms < prev.wall_unix_ms {
        return corrupt(format!(
            "wall time {} ms precedes the previous snapshot's {} ms",
            s.wall_unix_ms, prev.wall_unix_ms
        ));
    }
    Ok(())
}

/// Distinguishes this store's monotonic clock from a previous process's.
fn boot_id(clock: &dyn Clock) -> u64 {
    let mut h = Sha256::new();
    h.update(clock.wall_unix_ms().to_le_bytes());
    h.update(clock.mono_ns().to_le_bytes());
    // Stores built in one process (tests, reloads) get distinct ids even with a fake clock.
    static STORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    h.update(
        STORES
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_le_bytes(),
    );
    #[cfg(not(target_arch = "wasm32"))]
    h.update(u64::from(std::process::id()).to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("sha256 has 32 bytes"))
}
