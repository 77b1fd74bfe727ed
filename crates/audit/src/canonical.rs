//! Canonical JSON: the one byte string a JSON value hashes and signs as.
//!
//! Definition (also in ADR 0008):
//!
//! - no whitespace anywhere outside strings;
//! - object members sorted by key, comparing keys as UTF-8 byte strings (the same as Unicode
//!   code point order); keys are unique because they come from a parsed map;
//! - strings in double quotes; `"` and `\` escaped as `\"` and `\\`; U+0008, U+0009, U+000A,
//!   U+000C, U+000D as `\b`, `\t`, `\n`, `\f`, `\r`; every other character below U+0020 as
//!   `\u00XX` with lowercase hex; everything else, including non-ASCII, as literal UTF-8;
//! - integers (that fit `u64` or `i64`) in plain decimal; other numbers as `serde_json` writes an
//!   `f64` (the shortest text that reads back to the same `f64`, via `ryu`), so a number read from
//!   a line and written again is unchanged;
//! - `true`, `false`, `null` as themselves; arrays keep their order.
//!
//! The hash therefore depends on the *value* of a line, not on the order its writer put keys
//! in, nor on its whitespace or escapes.

use serde_json::Value;

/// Writes `value` as canonical JSON (see the module docs for the exact rules).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => out.push_str(&number.to_string()),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (index, (key, item)) in members.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn key_order_and_whitespace_do_not_change_the_canonical_form() {
        let a = parse(r#"{"b": 1, "a": {"y": [3, 2], "x": "é\n"}, "c": null}"#);
        let b = parse(r#"{"c":null,"a":{"x":"\u00e9\n","y":[3,2]},"b":1}"#);
        let expected = r#"{"a":{"x":"é\n","y":[3,2]},"b":1,"c":null}"#;
        assert_eq!(canonical_json(&a), expected);
        assert_eq!(canonical_json(&b), expected);
    }

    #[test]
    fn keys_sort_by_bytes_and_control_characters_escape() {
        let value = parse(r#"{"é":1,"Z":2,"a":3,"\u0001":"\u001f\"\\\t"}"#);
        assert_eq!(
            canonical_json(&value),
            "{\"\\u0001\":\"\\u001f\\\"\\\\\\t\",\"Z\":2,\"a\":3,\"é\":1}"
        );
    }

    #[test]
    fn numbers_read_back_unchanged() {
        for text in [
            "0.9",
            "1.0",
            "1e300",
            "-3",
            "18446744073709551615",
            "0.1234567",
        ] {
            let once = canonical_json(&parse(text));
            assert_eq!(canonical_json(&parse(&once)), once, "{text}");
        }
        assert_eq!(canonical_json(&parse("1E+2")), "100.0");
    }
}
