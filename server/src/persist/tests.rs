//! The store scenarios of [`super::conformance`] on SQLite: in memory where one process
//! suffices, in a data directory where a scenario reopens the store.

use super::conformance as scenario;
use super::*;

/// A fresh data directory, removed when dropped.
struct FreshDir(PathBuf);

impl FreshDir {
    fn new(name: &str) -> FreshDir {
        let dir = std::env::temp_dir().join(format!("perfpilot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        FreshDir(dir)
    }

    fn location(&self) -> Location {
        Location::Dir(self.0.clone())
    }
}

impl Drop for FreshDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn tokens_are_saved_revoked_listed_and_audited() {
    scenario::tokens_are_saved_revoked_listed_and_audited(Location::Memory).await;
}

#[tokio::test]
async fn a_failed_write_is_reported_and_refuses_everything_after_it() {
    scenario::a_failed_write_is_reported_and_refuses_everything_after_it(Location::Memory).await;
}

#[tokio::test]
async fn only_the_newest_before_afters_are_kept_and_loaded() {
    let dir = FreshDir::new("only_the_newest_before_a");
    scenario::only_the_newest_before_afters_are_kept_and_loaded(dir.location()).await;
}

#[tokio::test]
async fn pruning_removes_only_audit_entries_older_than_the_cut() {
    scenario::pruning_removes_only_audit_entries_older_than_the_cut(Location::Memory).await;
}

#[tokio::test]
async fn pruning_more_than_a_batch_takes_several_statements_and_removes_all() {
    scenario::pruning_more_than_a_batch_takes_several_statements_and_removes_all(Location::Memory)
        .await;
}

#[tokio::test]
async fn the_audit_query_selects_exactly_the_asked_change_numbers() {
    scenario::the_audit_query_selects_exactly_the_asked_change_numbers(Location::Memory).await;
}

#[tokio::test]
async fn changes_are_durable_in_order_and_reload_into_the_same_store() {
    let dir = FreshDir::new("changes_are_durable_in_o");
    scenario::changes_are_durable_in_order_and_reload_into_the_same_store(dir.location()).await;
}

#[tokio::test]
async fn snapshots_taken_survive_a_restart() {
    let dir = FreshDir::new("snapshots_taken_survive_");
    scenario::snapshots_taken_survive_a_restart(dir.location()).await;
}
