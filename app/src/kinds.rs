//! The configured source kinds the server knows, as lists and forms show them. The server
//! reads them from its connectors' one registration table, so nothing here names a kind:
//! a new kind appears in the Settings list (and, if it is a database, in the database
//! form's choice) with no change to the app.

use engine::source::SourceFamily;
use serde::{Deserialize, Serialize};

/// One configured source kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceKind {
    /// Its name in a resource's source spec (`postgres`).
    pub kind: String,
    /// Its name in words ("PostgreSQL").
    pub title: String,
    pub family: SourceFamily,
}

/// Where a source of `kind` goes in the Settings list (after the host, before pushes) and
/// its name in words; a kind the server did not list keeps its name and goes last.
pub fn place_and_title(kinds: &[SourceKind], kind: &str) -> (u8, String) {
    match kinds.iter().find(|known| known.kind == kind) {
        Some(known) => (1 + known.family as u8, known.title.clone()),
        None => (8, kind.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed_by_family_and_an_unknown_one_keeps_its_name_last() {
        let kinds = [
            SourceKind {
                kind: "mysql".into(),
                title: "MySQL/MariaDB".into(),
                family: SourceFamily::Database,
            },
            SourceKind {
                kind: "prometheus".into(),
                title: "Prometheus fleet".into(),
                family: SourceFamily::Fleet,
            },
        ];
        let (database, title) = place_and_title(&kinds, "mysql");
        assert_eq!(title, "MySQL/MariaDB");
        let (fleet, _) = place_and_title(&kinds, "prometheus");
        let (unknown, title) = place_and_title(&kinds, "oracle");
        assert_eq!(title, "oracle");
        assert!(0 < database && database < fleet && fleet < unknown && unknown < 9);
    }
}
