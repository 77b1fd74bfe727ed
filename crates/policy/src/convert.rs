//! `serde_json::Value` → `regorus::Value`, the one conversion on the decision path.
//!
//! A direct recursive walk: the cheapest correct path measured (`benches/decision.rs`, group
//! `input_conversion`). Regorus's serde `Deserialize` from `&serde_json::Value` (the same
//! result) costs 5–15% more, `Value::from(json.clone())` ~30% more, and printing the JSON and
//! parsing it with `Value::from_json_str` 2–3× as much. Building
//! objects through `regorus::value::Object::from_iter` instead of a sorted `BTreeMap` was ~10%
//! slower. What remains is allocation: every string and object of the input becomes a
//! reference-counted regorus value.

use std::collections::BTreeMap;

use regorus::Value;

/// Converts a JSON document to the value regorus evaluates. Every JSON value has an exact
/// counterpart (serde_json numbers are `u64`, `i64` or finite `f64`), so this cannot fail.
pub(crate) fn to_rego(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => number(n),
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(to_rego).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) => Value::from(
            map.iter()
                .map(|(k, v)| (Value::String(k.as_str().into()), to_rego(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

fn number(n: &serde_json::Number) -> Value {
    if let Some(u) = n.as_u64() {
        Value::from(u)
    } else if let Some(i) = n.as_i64() {
        Value::from(i)
    } else {
        // Without serde_json's `arbitrary_precision` (not enabled in this workspace) every
        // other number is a finite f64, so the `Null` is unreachable.
        n.as_f64().map_or(Value::Null, Value::from)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[test]
    fn matches_regorus_own_json_reading() {
        let input = json!({
            "stage": "request",
            "principal": {"id": "anonymous", "tenant": null, "groups": ["a", "b"], "claims": {}},
            "findings": [{"category": "pii.email", "score": 0.9, "flagged": true,
                          "where": {"message": 3, "context": "user_prompt"}}],
            "numbers": [0, -1, 18446744073709551615u64, -9223372036854775808i64, 1.5, 1e300],
            "nested": [[], {}, [[null]]],
            "unicode": "héllo \u{202e} \u{1F600}"
        });
        let ours = to_rego(&input);
        assert_eq!(ours, Value::deserialize(&input).unwrap());
        assert_eq!(ours, Value::from_json_str(&input.to_string()).unwrap());
        assert_eq!(ours["findings"][0]["where"]["message"], Value::from(3u64));
    }
}
