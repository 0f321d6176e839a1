//! What every store must do, as scenarios over a fresh, empty [`Location`]: the SQLite
//! ones run as this crate's unit tests, the PostgreSQL ones in `tests/replicas.rs` against
//! a real server. One set of scenarios, so the two stores cannot drift apart.

use super::*;
use engine::changes::{ChangeStore, Mutation, StoreOptions};
use engine::model::{ResourceId, ResourceType};

pub fn admin() -> Identity {
    Identity {
        user: "alice".into(),
        role: Role::Admin,
        source: AuthSource::Proxy,
        client_ip: Some("10.0.0.7".parse().unwrap()),
    }
}

pub fn token(id: &str, secret_hash_digit: char) -> TokenRow {
    TokenRow {
        id: id.into(),
        name: format!("ci {id}"),
        role: Role::Editor,
        sha256_hex: secret_hash_digit.to_string().repeat(64),
        created_by: "alice".into(),
        created_at_unix_ms: 1_000,
        revoked_at_unix_ms: None,
    }
}

/// A store holding one resource, `cpu`.
pub fn cpu_store(options: StoreOptions) -> ChangeStore {
    let cpu = Resource::new(ResourceId::new("cpu").unwrap(), ResourceType::Cpu, "CPU");
    ChangeStore::with_resources(vec![cpu], options).unwrap()
}

/// Sets the `cpu` resource's target to each value in turn, each change durable.
pub async fn set_cpu_target(store: &ChangeStore, persist: &Persist, values: &[f64]) {
    let cpu = ResourceId::new("cpu").unwrap();
    for &value in values {
        let mut target = store.state().resources[&cpu].target.clone().unwrap();
        target.value = value;
        let mutation = Mutation::SetTarget {
            id: cpu.clone(),
            target,
        };
        let record = store
            .apply_with(mutation, |r, s| persist.enqueue_change(r, s, &admin()))
            .unwrap();
        persist.durable(record.change).await.unwrap();
    }
}

/// Opens `location` again once the previous handle's writer thread has let go of the
/// exclusive lock (its channel closed when the handle was dropped).
pub async fn reopen(location: &Location) -> (Persist, Loaded) {
    loop {
        match Persist::open(location) {
            Ok(opened) => return opened,
            Err(err) if err.to_string().contains("locked") => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(err) => panic!("{err:#}"),
        }
    }
}

pub async fn tokens_are_saved_revoked_listed_and_audited(location: Location) {
    let (persist, _) = Persist::open(&location).unwrap();
    persist
        .save_token(token("t1", 'a'), &admin())
        .await
        .unwrap();
    let duplicate = persist.save_token(token("t2", 'a'), &admin()).await;
    assert!(
        matches!(duplicate, Err(PersistError::Refused(_))),
        "{duplicate:?}"
    );
    let bad_hash = TokenRow {
        sha256_hex: "XYZ".into(),
        ..token("t3", 'b')
    };
    let err = persist.save_token(bad_hash, &admin()).await.unwrap_err();
    assert!(
        err.to_string().starts_with("sha256_hex: must be 64"),
        "{err}"
    );

    let revoked = persist.revoke_token("t1", &admin()).await.unwrap();
    assert!(revoked.revoked_at_unix_ms.is_some());
    let again = persist.revoke_token("t1", &admin()).await.unwrap_err();
    assert_eq!(again.to_string(), "id: token \"t1\" is already revoked");
    assert_eq!(persist.tokens().await.unwrap(), vec![revoked]);

    let entries = persist.query_audit(AuditFilter::default()).await.unwrap();
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["token_revoke", "token_create"]);
    assert!(entries.iter().all(|e| e.change.is_none()
        && e.user == "alice"
        && e.client_ip.as_deref() == Some("10.0.0.7")));
    // The secret's hash never reaches the audit log.
    assert!(!entries[1].after.to_string().contains(&"a".repeat(64)));
}

/// A write that fails (here a journal record whose change number is already taken,
/// standing in for a full disk) fails its waiters and every later change with the
/// reason, instead of acknowledging anything it did not store. A shared PostgreSQL
/// store is not given up on (the next scenario): there the failed batch alone is refused.
pub async fn a_failed_write_is_reported_and_refuses_everything_after_it(location: Location) {
    let (persist, _) = Persist::open(&location).unwrap();
    let cpu = ResourceId::new("cpu").unwrap();
    let store = cpu_store(StoreOptions::default());
    let record = store
        .apply_with(Mutation::ClearTarget { id: cpu.clone() }, |r, s| {
            persist.enqueue_change(r, s, &admin())
        })
        .unwrap();
    persist.durable(record.change).await.unwrap();
    assert!(persist.check().is_ok());
    if matches!(location, Location::Postgres(_)) {
        persist.enqueue_change(&record, &store.state(), &admin());
        // The flush shares the failed batch, so it is answered (dropped) as the batch
        // fails, a moment before the writer marks the configuration diverged.
        persist.flush().await;
        let mut waited = 0;
        while !persist.is_diverged() && waited < 50 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            waited += 1;
        }
        assert!(
            persist.is_diverged(),
            "the refused change is to be read back from the store"
        );
        assert!(persist.check().is_ok(), "the store carries on");
        let next = store
            .apply_with(Mutation::ClearTarget { id: cpu }, |r, s| {
                persist.enqueue_change(r, s, &admin())
            })
            .unwrap();
        persist.durable(next.change).await.unwrap();
        assert!(persist.tokens().await.is_ok());
        return;
    }

    persist.enqueue_change(&record, &store.state(), &admin());
    let next = store
        .apply_with(Mutation::ClearTarget { id: cpu }, |r, s| {
            persist.enqueue_change(r, s, &admin())
        })
        .unwrap();
    let err = persist.durable(next.change).await.unwrap_err();
    assert!(matches!(err, PersistError::Unavailable(_)), "{err:?}");
    // SQLite: "UNIQUE constraint failed: audit.change"; PostgreSQL: "duplicate key
    // value violates unique constraint \"audit_change_key\"".
    let said = err.to_string();
    assert!(
        said.to_lowercase().contains("unique") && said.contains("audit"),
        "{err}"
    );
    assert!(
        persist.check().is_err(),
        "later changes are refused up front"
    );
    assert!(persist.tokens().await.is_err(), "and so is everything else");
}

pub async fn only_the_newest_before_afters_are_kept_and_loaded(location: Location) {
    {
        let (persist, _) = Persist::open(&location).unwrap();
        for n in 0..crate::state::proof::KEEP + 5 {
            persist.save_event(n as i64, "cpu", serde_json::json!({ "n": n }));
        }
        persist.flush().await;
    }
    let (_persist, loaded) = reopen(&location).await;
    let kept: Vec<u64> = loaded
        .events
        .iter()
        .map(|e| e["n"].as_u64().unwrap())
        .collect();
    assert_eq!(kept.len(), crate::state::proof::KEEP);
    assert_eq!(kept.first(), Some(&5), "the oldest five were pruned");
    assert_eq!(kept.last(), Some(&(crate::state::proof::KEEP as u64 + 4)));
}

pub async fn pruning_removes_only_audit_entries_older_than_the_cut(location: Location) {
    let (persist, _) = Persist::open(&location).unwrap();
    for at in [1_000, 2_000, 3_000, 4_000] {
        persist.audit_mark("cpu", &format!("at {at}"), &admin(), at);
    }
    // A cut after the newest entry (a clock gone wrong) removes nothing.
    assert_eq!(persist.prune_audit(10_000).await.unwrap(), 0);
    assert_eq!(persist.prune_audit(3_000).await.unwrap(), 2);
    let left: Vec<i64> = persist
        .query_audit(AuditFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|e| e.at_unix_ms)
        .collect();
    assert_eq!(left, vec![4_000, 3_000]);
}

pub async fn pruning_more_than_a_batch_takes_several_statements_and_removes_all(
    location: Location,
) {
    let (persist, _) = Persist::open(&location).unwrap();
    let old = PRUNE_BATCH as i64 + 5;
    for at in 1..=old {
        persist.audit_mark("cpu", "old", &admin(), at);
    }
    persist.audit_mark("cpu", "new", &admin(), old + 1_000);
    assert_eq!(persist.prune_audit(old + 1).await.unwrap(), old as u64);
    let left = persist.count_audit(AuditFilter::default()).await.unwrap();
    assert_eq!(left, 1);
}

pub async fn the_audit_query_selects_exactly_the_asked_change_numbers(location: Location) {
    let (persist, _) = Persist::open(&location).unwrap();
    let store = cpu_store(StoreOptions::default());
    persist.baseline(store.persisted());
    set_cpu_target(&store, &persist, &[10.0, 20.0, 30.0, 40.0, 50.0]).await;
    persist.audit_mark("cpu", "deploy", &admin(), 5_000);
    persist.flush().await;

    let filter = AuditFilter {
        changes: vec![2, 4, 99],
        ..AuditFilter::default()
    };
    let entries = persist.query_audit(filter.clone()).await.unwrap();
    let changes: Vec<Option<u64>> = entries.iter().map(|e| e.change).collect();
    assert_eq!(changes, vec![Some(4), Some(2)], "newest first, no mark");
    assert_eq!(persist.count_audit(filter.clone()).await.unwrap(), 2);
    // The in-memory rule agrees with the query on every entry.
    let everything = persist.query_audit(AuditFilter::default()).await.unwrap();
    assert_eq!(everything.len(), 6);
    let matching: Vec<&AuditRecord> = everything.iter().filter(|e| filter.matches(e)).collect();
    assert_eq!(matching.len(), 2);
}

pub async fn changes_are_durable_in_order_and_reload_into_the_same_store(location: Location) {
    let every = 3;
    let options = || StoreOptions {
        autosave: AutoSave::new(every, 100).unwrap(),
        ..StoreOptions::default()
    };
    let cpu = ResourceId::new("cpu").unwrap();
    let expected = {
        let (persist, loaded) = Persist::open(&location).unwrap();
        assert!(loaded.state.is_none(), "a fresh directory holds nothing");
        let store = cpu_store(options());
        persist.baseline(store.persisted());
        set_cpu_target(&store, &persist, &[10.0, 20.0, 30.0, 40.0]).await;
        persist.flush().await;
        store.persisted()
    };
    let (_persist, loaded) = reopen(&location).await;
    let state = loaded.state.expect("the stored state");
    assert_eq!(state, expected);
    assert_eq!(state.change, 4);
    assert_eq!(state.snapshots.len(), 1);
    assert_eq!(loaded.audit_entries, 4);
    let store = ChangeStore::from_persisted(state, options()).unwrap();
    assert_eq!(
        store.state().resources[&cpu].target.as_ref().unwrap().value,
        40.0
    );
}

/// The Changes page's "snapshots taken" goes on counting after a restart, even when
/// the ring kept fewer snapshots than were taken (it read 0 after every restart).
pub async fn snapshots_taken_survive_a_restart(location: Location) {
    // Every 2nd change, a ring of 2: 8 changes take 4 snapshots and keep 2.
    let options = || StoreOptions {
        autosave: AutoSave::new(2, 2).unwrap(),
        ..StoreOptions::default()
    };
    {
        let (persist, _) = Persist::open(&location).unwrap();
        let store = cpu_store(options());
        persist.baseline(store.persisted());
        set_cpu_target(&store, &persist, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).await;
        persist.flush().await;
        assert_eq!(store.stats().snapshots_taken, 4);
    }
    let (_persist, loaded) = reopen(&location).await;
    let store = ChangeStore::from_persisted(loaded.state.unwrap(), options()).unwrap();
    let stats = store.stats();
    assert_eq!((stats.snapshots_taken, stats.snapshots_kept), (4, 2));
}
