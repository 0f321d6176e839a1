//! A connector's refusal of settings: the field and the rule it broke, kept apart so the
//! server answers with the field (`AppError::field`, the JSON body's `field`) without
//! reading it back out of a sentence.

use engine::error::EngineError;

/// Settings a connector will not take: `field` (`url`, `check.interval_ms`,
/// `metric[0].kind`) and the rule in words. Shown as `field: rule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: String,
    pub rule: String,
}

impl Refusal {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Refusal {
        Refusal {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The engine's refusal of what a connector built (a resource, a fleet): its field
    /// when it names one, otherwise `field` with the engine's whole message as the rule.
    pub fn of_engine(field: &str, err: EngineError) -> Refusal {
        match err {
            EngineError::Invalid { field, rule } => Refusal { field, rule },
            other => Refusal::new(field, other.to_string()),
        }
    }

    /// The refusal in the words of a message about connecting to the server at `address`
    /// (the field a connection failure is shown on: `url`, a load balancer's `socket`):
    /// the rule alone when that field is to blame (unreachable, not the expected server),
    /// `field: rule` when another one is (`password: …`, `backend: …`).
    pub fn reason(&self, address: &str) -> String {
        if self.field == address {
            self.rule.clone()
        } else {
            self.to_string()
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

impl std::error::Error for Refusal {}

/// For the paths that still carry reasons as text (reading secrets, a running source's
/// health): the refusal as its `field: rule` sentence.
impl From<Refusal> for String {
    fn from(refusal: Refusal) -> String {
        refusal.to_string()
    }
}

impl From<Refusal> for EngineError {
    fn from(refusal: Refusal) -> EngineError {
        EngineError::Invalid {
            field: refusal.field,
            rule: refusal.rule,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_field_and_rule_and_keeps_them_apart() {
        let refusal = Refusal::new("check.interval_ms", "must be between 100 and 60000, got 5");
        assert_eq!(
            refusal.to_string(),
            "check.interval_ms: must be between 100 and 60000, got 5"
        );
        assert_eq!(String::from(refusal.clone()), refusal.to_string());
        assert_eq!(refusal.reason("url"), refusal.to_string());
        assert_eq!(
            refusal.reason("check.interval_ms"),
            "must be between 100 and 60000, got 5"
        );
        match EngineError::from(refusal) {
            EngineError::Invalid { field, rule } => {
                assert_eq!(field, "check.interval_ms");
                assert_eq!(rule, "must be between 100 and 60000, got 5");
            }
            other => panic!("{other:?}"),
        }
        let engine = EngineError::invalid("target.value", "must be finite");
        assert_eq!(
            Refusal::of_engine("resource", engine),
            Refusal::new("target.value", "must be finite")
        );
    }
}
