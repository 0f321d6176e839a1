//! Exactness of auto-save under contention: 8 threads × 100,000 accepted changes must give
//! exactly ⌊800,000 / N⌋ snapshots and gap-free change numbers, with nothing lost.

use std::sync::Arc;
use std::thread;

use engine::changes::{AutoSave, ChangeStore, Mutation, StoreOptions};
use engine::model::{Comparator, Resource, ResourceId, ResourceType, Statistic, Target};

const THREADS: usize = 8;
const PER_THREAD: usize = 100_000;
const EVERY: u64 = 20;

#[test]
fn eight_threads_of_edits_give_exact_snapshots_and_gap_free_numbers() {
    let resources: Vec<Resource> = (0..THREADS)
        .map(|t| {
            Resource::new(
                ResourceId::new(&format!("cpu:{t}")).unwrap(),
                ResourceType::Cpu,
                "core",
            )
        })
        .collect();
    let opts = StoreOptions {
        autosave: AutoSave::new(EVERY, 100).unwrap(),
        ..Default::default()
    };
    let store = Arc::new(ChangeStore::with_resources(resources, opts).unwrap());

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || {
                let id = ResourceId::new(&format!("cpu:{t}")).unwrap();
                let mut numbers = Vec::with_capacity(PER_THREAD);
                let mut snapshots = 0u64;
                for i in 0..PER_THREAD {
                    let target = Target {
                        metric: "utilization".into(),
                        comparator: Comparator::Le,
                        value: (i % 100) as f64,
                        statistic: Statistic::P95,
                        for_secs: 0,
                    };
                    let r = store
                        .apply(Mutation::SetTarget {
                            id: id.clone(),
                            target,
                        })
                        .unwrap();
                    snapshots += u64::from(r.snapshot.is_some());
                    numbers.push(r.change);
                }
                // The last value this thread wrote must be the one in the final state.
                (numbers, snapshots, id)
            })
        })
        .collect();

    let mut all = Vec::with_capacity(THREADS * PER_THREAD);
    let mut snapshots_reported = 0;
    for h in handles {
        let (numbers, snaps, id) = h.join().unwrap();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "each thread sees increasing numbers"
        );
        all.extend(numbers);
        snapshots_reported += snaps;
        let last = ((PER_THREAD - 1) % 100) as f64;
        assert_eq!(
            store.state().resources[&id].target.as_ref().unwrap().value,
            last,
            "no edit lost for {id}"
        );
    }
    all.sort_unstable();
    let total = (THREADS * PER_THREAD) as u64;
    assert_eq!(
        all,
        (1..=total).collect::<Vec<_>>(),
        "numbers are exactly 1..=N×k"
    );
    let stats = store.stats();
    assert_eq!(stats.change, total);
    assert_eq!(stats.snapshots_taken, total / EVERY);
    assert_eq!(snapshots_reported, total / EVERY);
    let ring = store.snapshots();
    assert_eq!(ring.len(), 100);
    assert!(ring.iter().all(|s| s.change % EVERY == 0));
    assert!(ring
        .iter()
        .zip(ring.iter().skip(1))
        .all(|(a, b)| b.change == a.change + EVERY));
    for s in ring.iter() {
        store.verify(s.change).unwrap();
    }
}

/// What a journal fed from `apply_with` sees: under contention, every accepted change once,
/// in number order, each with the state it produced; refusals are never reported.
#[test]
fn apply_with_reports_changes_in_number_order_under_the_writer_lock() {
    use std::sync::Mutex;

    const WRITERS: usize = 4;
    const EACH: usize = 5_000;
    let resources: Vec<Resource> = (0..WRITERS)
        .map(|t| {
            Resource::new(
                ResourceId::new(&format!("cpu:{t}")).unwrap(),
                ResourceType::Cpu,
                "core",
            )
        })
        .collect();
    let store = Arc::new(ChangeStore::with_resources(resources, StoreOptions::default()).unwrap());
    let journal: Arc<Mutex<Vec<(u64, u64, f64)>>> = Arc::default();
    let handles: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (store, journal) = (store.clone(), journal.clone());
            thread::spawn(move || {
                let id = ResourceId::new(&format!("cpu:{t}")).unwrap();
                for i in 0..EACH {
                    let value = (t * EACH + i) as f64 / 1_000.0;
                    let target = Target {
                        metric: "utilization".into(),
                        comparator: Comparator::Le,
                        value: value.min(100.0),
                        statistic: Statistic::P95,
                        for_secs: 0,
                    };
                    let mutation = Mutation::SetTarget {
                        id: id.clone(),
                        target,
                    };
                    let record = store
                        .apply_with(mutation, |record, state| {
                            let written = state.resources[&id].target.as_ref().unwrap().value;
                            journal
                                .lock()
                                .unwrap()
                                .push((record.change, state.change, written));
                        })
                        .unwrap();
                    assert!(record.change > 0);
                }
                // A refusal takes no number and never reaches the journal.
                let bad = Mutation::SetTarget {
                    id: id.clone(),
                    target: Target {
                        metric: "no_such_metric".into(),
                        comparator: Comparator::Le,
                        value: 1.0,
                        statistic: Statistic::P95,
                        for_secs: 0,
                    },
                };
                assert!(store.apply_with(bad, |_, _| panic!("refused")).is_err());
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let journal = journal.lock().unwrap();
    assert_eq!(journal.len(), WRITERS * EACH);
    for (i, (change, state_change, _)) in journal.iter().enumerate() {
        assert_eq!(*change, i as u64 + 1, "journal order is change order");
        assert_eq!(
            change, state_change,
            "the state handed over is the change's own"
        );
    }
    assert_eq!(store.state().change, (WRITERS * EACH) as u64);
}

/// Two editors at once, one changing a target's value and the other its `for`, on the same
/// resource: each edit is decided against the configuration current under the writer lock,
/// so after every round both fields hold what their editor last wrote. (Reading the
/// target outside the lock and submitting a whole `Target`, as both HTTP entry points did,
/// loses one of the two edits whenever they interleave.)
#[test]
fn concurrent_partial_target_edits_both_survive() {
    use engine::model::TargetEdit;
    use std::sync::Barrier;

    const ROUNDS: u32 = 2_000;
    let id = ResourceId::new("cpu").unwrap();
    let cpu = Resource::new(id.clone(), ResourceType::Cpu, "CPU");
    let store = Arc::new(ChangeStore::with_resources(vec![cpu], StoreOptions::default()).unwrap());
    let barrier = Arc::new(Barrier::new(2));
    let editor = |edit: fn(u32) -> TargetEdit| {
        let (store, barrier, id) = (store.clone(), barrier.clone(), id.clone());
        thread::spawn(move || {
            for round in 1..=ROUNDS {
                barrier.wait();
                store
                    .apply(Mutation::EditTarget {
                        id: id.clone(),
                        edit: edit(round),
                    })
                    .unwrap();
                barrier.wait();
                let target = store.state().resources[&id].target.clone().unwrap();
                assert_eq!(
                    (target.value, target.for_secs),
                    (f64::from(round % 90), round),
                    "round {round}: an edit was lost"
                );
                barrier.wait();
            }
        })
    };
    let values = editor(|round| TargetEdit {
        metric: "utilization".into(),
        value: Some(f64::from(round % 90)),
        for_secs: None,
    });
    let durations = editor(|round| TargetEdit {
        metric: "utilization".into(),
        value: None,
        for_secs: Some(round),
    });
    values.join().unwrap();
    durations.join().unwrap();
    assert_eq!(store.stats().change, u64::from(2 * ROUNDS));
}

#[test]
fn an_edit_without_a_value_needs_an_existing_target_of_that_metric() {
    use engine::model::TargetEdit;
    let id = ResourceId::new("disk:/").unwrap();
    let mut disk = Resource::new(id.clone(), ResourceType::Disk, "/");
    disk.target = None;
    let store = ChangeStore::with_resources(vec![disk], StoreOptions::default()).unwrap();
    let err = store
        .apply(Mutation::EditTarget {
            id,
            edit: TargetEdit {
                metric: "utilization".into(),
                value: None,
                for_secs: Some(60),
            },
        })
        .unwrap_err();
    assert!(
        err.to_string().starts_with("target.value: is required"),
        "{err}"
    );
    assert_eq!(store.stats().change, 0, "a refusal takes no change number");
}
