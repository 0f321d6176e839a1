//! The one error type of the engine's mutating and computing API.
//!
//! Every rejection names the offending field and the rule it broke, because the server turns
//! these messages into 4xx bodies verbatim and the UI shows them next to the field.
//! A returned error always means nothing was applied and no change number was consumed.

use crate::model::ResourceId;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// A value broke a validation rule, e.g. `target.value: utilization must be within 0–100 %, got 140`.
    #[error("{field}: {rule}")]
    Invalid { field: String, rule: String },
    #[error("resource `{id}` does not exist")]
    UnknownResource { id: ResourceId },
    #[error("resource `{id}` already exists")]
    DuplicateResource { id: ResourceId },
    #[error("resource_type: custom:{custom} is already used by resource `{existing}`; custom ids must be unique")]
    DuplicateCustom { custom: u32, existing: ResourceId },
    #[error("snapshot #{id} is not in the snapshot ring (it never existed or was evicted)")]
    UnknownSnapshot { id: u64 },
    #[error("snapshot #{id} failed verification: {reason}")]
    CorruptSnapshot { id: u64, reason: String },
    /// The caller may not make this change (decided against the configuration current
    /// under the writer lock): an HTTP 403.
    #[error("{reason}")]
    Forbidden { reason: String },
}

impl EngineError {
    /// A validation failure of `field` against `rule`; also used by callers that validate
    /// input before it reaches the engine, so every refusal reads the same way.
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        EngineError::Invalid {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// True for errors that mean "no such thing" (HTTP 404) rather than "bad input" (422/400).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            EngineError::UnknownResource { .. } | EngineError::UnknownSnapshot { .. }
        )
    }

    /// True when the caller may not make the change (HTTP 403).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, EngineError::Forbidden { .. })
    }

    /// True when the request conflicts with existing state (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            EngineError::DuplicateResource { .. } | EngineError::DuplicateCustom { .. }
        )
    }
}
