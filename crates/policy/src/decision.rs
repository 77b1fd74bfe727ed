//! The decision contract: what `data.portcullis.decision` must evaluate to, and reading it.
//!
//! ```json
//! {"action": "allow | deny | redact | require_approval",
//!  "reasons": ["..."], "redact": ["pii.email", "secret"], "code": "prompt_injection"}
//! ```
//!
//! `action` is required; `reasons`, `redact` (arrays, or Rego sets, of strings) and `code` (a
//! string or null) are optional. A `redact` action must list at least one category. Other keys
//! are ignored, so a policy may return extra detail for `portcullis policy eval`. Anything else
//! (an undefined decision, a wrong type, an unknown action) is an [`Error`], never an allow.

use regorus::Value;
use serde::Serialize;

use crate::error::{Error, Result};

/// What the gateway does with an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Forward unchanged.
    Allow,
    /// Refuse; `reasons` say why.
    Deny,
    /// Forward with the spans of the `redact` categories replaced.
    Redact,
    /// Hold until a human approves.
    RequireApproval,
}

impl Action {
    /// The wire name (`"require_approval"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Redact => "redact",
            Action::RequireApproval => "require_approval",
        }
    }

    fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "allow" => Action::Allow,
            "deny" => Action::Deny,
            "redact" => Action::Redact,
            "require_approval" => Action::RequireApproval,
            _ => return None,
        })
    }
}

/// One policy decision.
#[must_use]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Short human-readable reasons, e.g. `prompt_injection in message 2 (user_prompt)`.
    pub reasons: Vec<String>,
    /// Categories or families to redact (meaningful for [`Action::Redact`]); see
    /// [`Decision::redacts`].
    pub redact: Vec<String>,
    /// A stable name for the violation (`prompt_injection`, `secret_in_response`, ...), for
    /// metrics, audit records and error bodies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl Decision {
    /// Allow, with no reasons.
    pub fn allow() -> Decision {
        Decision {
            action: Action::Allow,
            reasons: Vec::new(),
            redact: Vec::new(),
            code: None,
        }
    }

    /// Whether category `category` (e.g. `pii.email`) is covered by the `redact` entries. An
    /// entry covers itself exactly and, as a family, every `entry.*`: `pii` covers `pii.email`,
    /// `secret` covers `secret.github_token`, `pii.email` covers only itself.
    pub fn redacts(&self, category: &str) -> bool {
        self.redact.iter().any(|entry| {
            category
                .strip_prefix(entry.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
    }

    /// Reads a decision from the value of `data.portcullis.decision`.
    pub(crate) fn from_value(value: &Value) -> Result<Decision> {
        let object = match value {
            Value::Undefined => return Err(Error::Undefined),
            Value::Object(object) => object,
            other => return Err(malformed("decision", "an object", other)),
        };
        // One pass over the keys: no key `Value` has to be allocated for a lookup.
        let (mut action, mut reasons, mut redact, mut code) = (None, None, None, None);
        for (key, value) in object.iter() {
            if let Value::String(key) = key {
                match key.as_ref() {
                    "action" => action = Some(value),
                    "reasons" => reasons = Some(value),
                    "redact" => redact = Some(value),
                    "code" => code = Some(value),
                    _ => {}
                }
            }
        }
        let action = match action {
            Some(Value::String(name)) => {
                Action::parse(name).ok_or_else(|| Error::UnknownAction {
                    action: truncate(name),
                })?
            }
            Some(other) => return Err(malformed("action", "a string", other)),
            None => return Err(malformed("action", "a string", &Value::Undefined)),
        };
        let reasons = strings(reasons, "reasons")?;
        let redact = strings(redact, "redact")?;
        let code = match code {
            None | Some(Value::Null) => None,
            Some(Value::String(code)) => Some(code.to_string()),
            Some(other) => return Err(malformed("code", "a string or null", other)),
        };
        if action == Action::Redact && redact.is_empty() {
            return Err(Error::MalformedDecision {
                field: "redact",
                expected: "at least one category for a redact action",
                found: "none",
            });
        }
        Ok(Decision {
            action,
            reasons,
            redact,
            code,
        })
    }
}

/// An optional array (or set) of strings; absent means empty.
fn strings(value: Option<&Value>, field: &'static str) -> Result<Vec<String>> {
    const EXPECTED: &str = "an array of strings";
    let items: Vec<&Value> = match value {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Set(items)) => items.iter().collect(),
        Some(other) => return Err(malformed(field, EXPECTED, other)),
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.to_string()),
            other => Err(malformed(field, EXPECTED, other)),
        })
        .collect()
}

fn malformed(field: &'static str, expected: &'static str, found: &Value) -> Error {
    Error::MalformedDecision {
        field,
        expected,
        found: type_name(found),
    }
}

/// The Rego type name of a value, as `type_name` would say it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Object(_) => "object",
        Value::Undefined => "undefined",
    }
}

/// A policy-supplied string, cut to a length fit for an error message.
fn truncate(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Decision> {
        Decision::from_value(&Value::from_json_str(json).unwrap())
    }

    #[test]
    fn every_action_parses() {
        for (name, action) in [
            ("allow", Action::Allow),
            ("deny", Action::Deny),
            ("require_approval", Action::RequireApproval),
        ] {
            let d = parse(&format!(r#"{{"action": "{name}"}}"#)).unwrap();
            assert_eq!(d.action, action);
            assert_eq!(action.as_str(), name);
        }
        let d = parse(r#"{"action": "redact", "redact": ["pii"]}"#).unwrap();
        assert_eq!(d.action, Action::Redact);
        assert_eq!(Action::Redact.as_str(), "redact");
    }

    #[test]
    fn optional_fields_default_to_empty() {
        let d = parse(r#"{"action": "allow"}"#).unwrap();
        assert_eq!(d, Decision::allow());
        let d = parse(r#"{"action": "deny", "code": null, "extra": {"debug": 1}}"#).unwrap();
        assert_eq!(d.code, None);
        let d = parse(
            r#"{"action": "deny", "reasons": ["a", "b"], "redact": [], "code": "prompt_injection"}"#,
        )
        .unwrap();
        assert_eq!(d.reasons, ["a", "b"]);
        assert_eq!(d.code.as_deref(), Some("prompt_injection"));
    }

    #[test]
    fn sets_are_accepted_where_arrays_are() {
        let mut object = std::collections::BTreeMap::new();
        object.insert(Value::from("action"), Value::from("deny"));
        let set: std::collections::BTreeSet<Value> =
            [Value::from("b"), Value::from("a")].into_iter().collect();
        object.insert(Value::from("reasons"), Value::from(set));
        let d = Decision::from_value(&Value::from(object)).unwrap();
        assert_eq!(d.reasons, ["a", "b"]);
    }

    #[test]
    fn wrong_types_are_errors() {
        for (json, field) in [
            (r#"{"action": 1}"#, "action"),
            (r#"{"reasons": []}"#, "action"),
            (r#"{"action": "deny", "reasons": "no"}"#, "reasons"),
            (r#"{"action": "deny", "reasons": [1]}"#, "reasons"),
            (r#"{"action": "redact", "redact": {"pii": true}}"#, "redact"),
            (r#"{"action": "deny", "code": 7}"#, "code"),
            (r#"["allow"]"#, "decision"),
            (r#""allow""#, "decision"),
            (r#"{"action": "redact"}"#, "redact"),
            (r#"{"action": "redact", "redact": []}"#, "redact"),
        ] {
            match parse(json) {
                Err(Error::MalformedDecision { field: f, .. }) => assert_eq!(f, field, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_actions_and_undefined_are_errors() {
        let err = parse(r#"{"action": "maybe"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed decision: unknown action `maybe`"
        );
        let err = parse(r#"{"action": "Allow"}"#).unwrap_err();
        assert!(matches!(err, Error::UnknownAction { .. }));
        let long = "x".repeat(200);
        let err = parse(&format!(r#"{{"action": "{long}"}}"#)).unwrap_err();
        assert!(err.to_string().len() < 120, "{err}");
        let err = Decision::from_value(&Value::Undefined).unwrap_err();
        assert!(matches!(err, Error::Undefined));
        let err = parse(r#"{"action": "deny", "reasons": true}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed decision: `reasons` must be an array of strings, found boolean"
        );
    }

    #[test]
    fn redacts_matches_exact_entries_and_families() {
        let d = Decision {
            action: Action::Redact,
            reasons: vec![],
            redact: vec!["pii".into(), "secret.github_token".into()],
            code: None,
        };
        assert!(d.redacts("pii"));
        assert!(d.redacts("pii.email"));
        assert!(d.redacts("pii.payment_card"));
        assert!(d.redacts("secret.github_token"));
        assert!(!d.redacts("secret.aws_access_key"));
        assert!(!d.redacts("secret"));
        assert!(!d.redacts("piix.email"));
        assert!(!d.redacts("pi"));
        assert!(!d.redacts("prompt_injection"));
        assert!(!Decision::allow().redacts("pii.email"));
        let family = Decision {
            redact: vec!["secret".into()],
            ..Decision::allow()
        };
        assert!(family.redacts("secret.github_token"));
        assert!(family.redacts("secret.generic"));
        assert!(!family.redacts("secrets.x"));
    }

    #[test]
    fn decisions_serialize_as_the_contract() {
        let d = Decision {
            action: Action::RequireApproval,
            reasons: vec!["r".into()],
            redact: vec![],
            code: Some("c".into()),
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"action":"require_approval","reasons":["r"],"redact":[],"code":"c"}"#
        );
        assert_eq!(
            serde_json::to_string(&Decision::allow()).unwrap(),
            r#"{"action":"allow","reasons":[],"redact":[]}"#
        );
    }
}
