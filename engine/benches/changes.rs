//! Change store throughput and snapshot cost (`cargo bench -p engine --bench changes`).
//!
//! Budget context: ≥ 20,000 target edits/s over HTTP, so the store's share must be far
//! below 50 µs per change even with 1,000 resources and contending writers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use divan::counter::ItemsCount;
use divan::Bencher;
use engine::changes::{content_hash, AutoSave, ChangeStore, Mutation, StoreOptions};
use engine::model::{Comparator, Resource, ResourceId, ResourceType, Statistic, Target};

fn main() {
    divan::main();
}

fn store(resources: usize, every: u64) -> ChangeStore {
    let list = (0..resources)
        .map(|i| {
            Resource::new(
                ResourceId::new(&format!("cpu:{i}")).unwrap(),
                ResourceType::Cpu,
                "core",
            )
        })
        .collect();
    let opts = StoreOptions {
        autosave: AutoSave::new(every, 100).unwrap(),
        ..Default::default()
    };
    ChangeStore::with_resources(list, opts).unwrap()
}

fn edit(id: &ResourceId, i: u64) -> Mutation {
    Mutation::SetTarget {
        id: id.clone(),
        target: Target {
            metric: "utilization".into(),
            comparator: Comparator::Le,
            value: (i % 100) as f64,
            statistic: Statistic::P95,
            for_secs: 300,
        },
    }
}

/// Accepted changes on one thread, default auto-save (every 20th), by resource count.
#[divan::bench(args = [10, 100, 1000])]
fn apply_single_thread(bencher: Bencher, resources: usize) {
    let store = store(resources, 20);
    let ids: Vec<ResourceId> = store.state().resources.keys().cloned().collect();
    let mut i = 0u64;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        i += 1;
        store.apply(edit(&ids[i as usize % ids.len()], i)).unwrap()
    });
}

/// Accepted changes from 8 threads contending for the same store (10 resources).
#[divan::bench(threads = [8])]
fn apply_8_threads(bencher: Bencher) {
    let store = store(10, 20);
    let ids: Vec<ResourceId> = store.state().resources.keys().cloned().collect();
    let n = AtomicU64::new(0);
    bencher.counter(ItemsCount::new(1usize)).bench(|| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        store.apply(edit(&ids[i as usize % ids.len()], i)).unwrap()
    });
}

/// A change that also snapshots (auto-save every change), by resource count: the cost
/// paid under the writer lock.
#[divan::bench(args = [10, 100, 1000])]
fn apply_with_snapshot(bencher: Bencher, resources: usize) {
    let store = store(resources, 1);
    let ids: Vec<ResourceId> = store.state().resources.keys().cloned().collect();
    let mut i = 0u64;
    bencher.bench_local(|| {
        i += 1;
        store.apply(edit(&ids[i as usize % ids.len()], i)).unwrap()
    });
}

/// As `apply_with_snapshot`, plus computing the snapshot's content hash (done lazily, off
/// the writer lock, e.g. when the server journals the change): one resource changed since
/// the previous snapshot, so one digest plus the O(n) combine.
#[divan::bench(args = [10, 100, 1000])]
fn apply_with_snapshot_and_hash(bencher: Bencher, resources: usize) {
    let store = store(resources, 1);
    let ids: Vec<ResourceId> = store.state().resources.keys().cloned().collect();
    let mut i = 0u64;
    bencher.bench_local(|| {
        i += 1;
        let r = store.apply(edit(&ids[i as usize % ids.len()], i)).unwrap();
        r.snapshot.unwrap().hash().len()
    });
}

/// Full content hash from scratch (what `verify` costs), by resource count.
#[divan::bench(args = [10, 100, 1000])]
fn content_hash_uncached(bencher: Bencher, resources: usize) {
    let state = store(resources, 20).state();
    bencher.bench(|| content_hash(&state.resources));
}

/// A reader's cost: loading the published state while a writer is busy elsewhere.
#[divan::bench]
fn read_state(bencher: Bencher) {
    let store = Arc::new(store(100, 20));
    bencher.bench(|| store.state().change);
}
