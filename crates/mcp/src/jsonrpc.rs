//! JSON-RPC 2.0 messages as MCP uses them: one message per HTTP body or stdio line, no
//! batches (removed in the 2025-06-18 revision). A message is kept as its JSON object, so
//! forwarding it forwards every field, known or not.

use serde_json::{Map, Value, json};

/// A request id: a string or an integer (never null in a request).
pub type RequestId = Value;

/// JSON-RPC error codes the gateway sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub i64);

impl ErrorCode {
    /// The body is not JSON.
    pub const PARSE_ERROR: Self = Self(-32700);
    /// Not a valid JSON-RPC message (or a batch, or too large).
    pub const INVALID_REQUEST: Self = Self(-32600);
    /// The method does not exist (or is not available through the gateway).
    pub const METHOD_NOT_FOUND: Self = Self(-32601);
    /// Invalid parameters.
    pub const INVALID_PARAMS: Self = Self(-32602);
    /// An error inside the gateway.
    pub const INTERNAL_ERROR: Self = Self(-32603);
    /// The upstream MCP server could not be reached, failed, or died (implementation range).
    pub const UPSTREAM_UNAVAILABLE: Self = Self(-32000);
    /// The upstream did not answer in time (the value the official SDKs use locally).
    pub const REQUEST_TIMEOUT: Self = Self(-32001);
    /// The policy denied a request that has no result shape for a refusal (implementation
    /// range; `-32002` is MCP's resource-not-found, so it is skipped).
    pub const POLICY_DENIED: Self = Self(-32003);
}

/// One JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request: it has an `id` and a `method`, and expects a response.
    Request {
        /// Its id.
        id: RequestId,
        /// Its method, e.g. `tools/call`.
        method: String,
        /// The whole message.
        raw: Map<String, Value>,
    },
    /// A notification: a `method` without an `id`.
    Notification {
        /// Its method, e.g. `notifications/initialized`.
        method: String,
        /// The whole message.
        raw: Map<String, Value>,
    },
    /// A response: an `id` with `result` or `error`.
    Response {
        /// The id of the request it answers.
        id: RequestId,
        /// The whole message.
        raw: Map<String, Value>,
    },
}

/// Why bytes are not a message.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not JSON.
    #[error("parse error: {0}")]
    Parse(#[from] serde_json::Error),
    /// JSON, but not a JSON-RPC 2.0 message.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
}

impl MessageError {
    /// The JSON-RPC code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Parse(_) => ErrorCode::PARSE_ERROR,
            Self::Invalid(_) => ErrorCode::INVALID_REQUEST,
        }
    }
}

impl Message {
    /// Parses one message from bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, MessageError> {
        Self::from_value(serde_json::from_slice(bytes)?)
    }

    /// Classifies a parsed value.
    pub fn from_value(value: Value) -> Result<Self, MessageError> {
        let raw = match value {
            Value::Object(raw) => raw,
            Value::Array(_) => return Err(MessageError::Invalid("batches are not supported")),
            _ => return Err(MessageError::Invalid("a message is a JSON object")),
        };
        if raw.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(MessageError::Invalid("`jsonrpc` must be \"2.0\""));
        }
        let id = match raw.get("id") {
            None => None,
            Some(id @ Value::String(_)) => Some(id.clone()),
            Some(id @ Value::Number(n)) if n.is_i64() || n.is_u64() => Some(id.clone()),
            Some(Value::Null) if !raw.contains_key("method") => Some(Value::Null),
            Some(_) => return Err(MessageError::Invalid("`id` must be a string or an integer")),
        };
        if raw
            .get("params")
            .is_some_and(|params| !params.is_object() && !params.is_array())
        {
            return Err(MessageError::Invalid(
                "`params` must be an object or an array",
            ));
        }
        match (raw.get("method"), id) {
            (Some(Value::String(method)), Some(id)) => Ok(Self::Request {
                id,
                method: method.clone(),
                raw,
            }),
            (Some(Value::String(method)), None) => Ok(Self::Notification {
                method: method.clone(),
                raw,
            }),
            (Some(_), _) => Err(MessageError::Invalid("`method` must be a string")),
            (None, Some(id)) => {
                if raw.contains_key("result") == raw.contains_key("error") {
                    return Err(MessageError::Invalid(
                        "a response has exactly one of `result` and `error`",
                    ));
                }
                Ok(Self::Response { id, raw })
            }
            (None, None) => Err(MessageError::Invalid("a message needs `method` or `id`")),
        }
    }

    /// The whole message as a value.
    pub fn into_value(self) -> Value {
        match self {
            Self::Request { raw, .. }
            | Self::Notification { raw, .. }
            | Self::Response { raw, .. } => Value::Object(raw),
        }
    }

    /// The whole message.
    pub fn raw(&self) -> &Map<String, Value> {
        match self {
            Self::Request { raw, .. }
            | Self::Notification { raw, .. }
            | Self::Response { raw, .. } => raw,
        }
    }

    /// The `params` of a request or notification (`Null` when absent).
    pub fn params(&self) -> &Value {
        self.raw().get("params").unwrap_or(&Value::Null)
    }
}

/// An error response to request `id` (`Null` when the id could not be read).
pub fn error_response(id: &Value, code: ErrorCode, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({"code": code.0, "message": message});
    if let (Some(data), Some(object)) = (data, error.as_object_mut()) {
        object.insert("data".into(), data);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

/// A success response to request `id`.
pub fn result_response(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_kinds_are_told_apart_and_keep_unknown_fields() {
        let request = Message::parse(
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"},"x-extra":1}"#,
        )
        .unwrap();
        match &request {
            Message::Request { id, method, raw } => {
                assert_eq!(id, &json!(7));
                assert_eq!(method, "tools/call");
                assert_eq!(raw["x-extra"], json!(1));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(request.params()["name"], "x");
        let note =
            Message::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(note, Message::Notification { .. }));
        let response = Message::parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert!(matches!(response, Message::Response { .. }));
        let error =
            Message::parse(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#)
                .unwrap();
        assert!(matches!(error, Message::Response { .. }));
    }

    #[test]
    fn invalid_messages_get_the_right_codes() {
        let cases: [(&[u8], ErrorCode); 10] = [
            (b"{not json", ErrorCode::PARSE_ERROR),
            (b"[]", ErrorCode::INVALID_REQUEST),
            (
                br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
                ErrorCode::INVALID_REQUEST,
            ),
            (br#""ping""#, ErrorCode::INVALID_REQUEST),
            (br#"{"id":1,"method":"ping"}"#, ErrorCode::INVALID_REQUEST),
            (
                br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
                ErrorCode::INVALID_REQUEST,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
                ErrorCode::INVALID_REQUEST,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":5}"#,
                ErrorCode::INVALID_REQUEST,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#,
                ErrorCode::INVALID_REQUEST,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
                ErrorCode::INVALID_REQUEST,
            ),
        ];
        for (bytes, code) in cases {
            let err = Message::parse(bytes).unwrap_err();
            assert_eq!(err.code(), code, "{}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn responses_are_well_formed() {
        let e = error_response(
            &json!(3),
            ErrorCode::METHOD_NOT_FOUND,
            "no",
            Some(json!({"m": 1})),
        );
        assert_eq!(
            e,
            json!({"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no","data":{"m":1}}})
        );
        let r = result_response(&json!("x"), json!({"tools": []}));
        assert!(matches!(
            Message::from_value(r).unwrap(),
            Message::Response { .. }
        ));
    }
}
