//! The texts inside requests, responses and stream chunks that the guard inspects, with where
//! each came from, and rewriting them in place (redaction, the canary).
//!
//! A request is parsed into a `serde_json::Value` with key order preserved; only a request
//! that is rewritten is re-serialised, so clean traffic keeps its original bytes. Content
//! parts other than `text` (images, audio, files), token-id prompts and tool-call arguments in
//! history are not inspected.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::Endpoint;

/// Where a text sits in a request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// `messages[message].content` (a string) or `messages[message].content[part].text`.
    Message {
        /// Index in `messages`.
        message: usize,
        /// Index in the content-part array, if the content is one.
        part: Option<usize>,
    },
    /// `tools[tool].function`: name, description and parameter schema, read as one text.
    ToolDefinition {
        /// Index in `tools`.
        tool: usize,
    },
    /// `prompt` (completions) or `input` (embeddings): a string, or element `index` of an array.
    Prompt {
        /// Index in the array, if the field is one.
        index: Option<usize>,
    },
    /// `choices[choice].message.content` (chat) or `choices[choice].text` (completions).
    Choice {
        /// Index in `choices` (its position, not its `index` field).
        choice: usize,
    },
}

/// One inspectable text.
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    /// Where it is.
    pub location: Location,
    /// The role of the message (`user`, `tool`, ...), `assistant` for answers, `None` for
    /// prompts and tool definitions.
    pub role: Option<String>,
    /// A tool definition's function name.
    pub name: Option<String>,
    /// The text.
    pub text: String,
}

/// A parsed request body and the texts in it.
#[derive(Debug, Clone)]
pub struct RequestTexts {
    /// The whole body, for rewriting.
    pub body: Value,
    /// Every inspectable text, in document order.
    pub texts: Vec<Text>,
    /// Names of the tools offered.
    pub tools: Vec<String>,
}

/// Reads the texts of a request body that [`crate::probe_request`] already validated. `None`
/// if the body is not a JSON object (the probe rules that out).
pub fn request_texts(endpoint: Endpoint, body: &[u8]) -> Option<RequestTexts> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let mut texts = Vec::new();
    let mut tools = Vec::new();
    match endpoint {
        Endpoint::ChatCompletions => {
            let messages = object.get("messages").and_then(Value::as_array);
            for (i, message) in messages.into_iter().flatten().enumerate() {
                message_texts(i, message, &mut texts);
            }
            let offered = object.get("tools").and_then(Value::as_array);
            for (i, tool) in offered.into_iter().flatten().enumerate() {
                let Some(function) = tool.get("function") else {
                    continue;
                };
                let name = function.get("name").and_then(Value::as_str);
                if let Some(name) = name {
                    tools.push(name.to_string());
                }
                texts.push(Text {
                    location: Location::ToolDefinition { tool: i },
                    role: None,
                    name: name.map(str::to_string),
                    text: tool_text(function),
                });
            }
        }
        Endpoint::Completions => prompt_texts(object.get("prompt"), &mut texts),
        Endpoint::Embeddings => prompt_texts(object.get("input"), &mut texts),
    }
    Some(RequestTexts {
        body: value,
        texts,
        tools,
    })
}

fn message_texts(i: usize, message: &Value, out: &mut Vec<Text>) {
    let role = message
        .get("role")
        .and_then(Value::as_str)
        .map(str::to_string);
    match message.get("content") {
        Some(Value::String(text)) => out.push(Text {
            location: Location::Message {
                message: i,
                part: None,
            },
            role,
            name: None,
            text: text.clone(),
        }),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                if let Some(text) = part.get("text").and_then(Value::as_str) {
                    out.push(Text {
                        location: Location::Message {
                            message: i,
                            part: Some(j),
                        },
                        role: role.clone(),
                        name: None,
                        text: text.to_string(),
                    });
                }
            }
        }
        _ => {}
    }
}

fn tool_text(function: &Value) -> String {
    let mut text = String::new();
    for key in ["name", "description"] {
        if let Some(s) = function.get(key).and_then(Value::as_str) {
            text.push_str(s);
            text.push('\n');
        }
    }
    if let Some(parameters) = function.get("parameters") {
        text.push_str(&parameters.to_string());
    }
    text
}

fn prompt_texts(field: Option<&Value>, out: &mut Vec<Text>) {
    let push = |out: &mut Vec<Text>, index, text: &str| {
        out.push(Text {
            location: Location::Prompt { index },
            role: None,
            name: None,
            text: text.to_string(),
        });
    };
    match field {
        Some(Value::String(text)) => push(out, None, text),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Value::String(text) = item {
                    push(out, Some(i), text);
                }
            }
        }
        _ => {}
    }
}

/// Replaces the text at `location` in a request or response body. Returns false if the
/// location does not hold a string (tool definitions are never rewritten).
pub fn set_text(endpoint: Endpoint, body: &mut Value, location: Location, text: String) -> bool {
    let slot = match location {
        Location::Message { message, part } => {
            let content = body.pointer_mut(&format!("/messages/{message}/content"));
            match (content, part) {
                (Some(content), None) => Some(content),
                (Some(content), Some(part)) => content.pointer_mut(&format!("/{part}/text")),
                (None, _) => None,
            }
        }
        Location::ToolDefinition { .. } => None,
        Location::Prompt { index } => {
            let field = match endpoint {
                Endpoint::Embeddings => "input",
                Endpoint::ChatCompletions | Endpoint::Completions => "prompt",
            };
            let value = body.get_mut(field);
            match (value, index) {
                (Some(value), None) => Some(value),
                (Some(value), Some(i)) => value.get_mut(i),
                (None, _) => None,
            }
        }
        Location::Choice { choice } => {
            let pointer = match endpoint {
                Endpoint::Completions => format!("/choices/{choice}/text"),
                Endpoint::ChatCompletions | Endpoint::Embeddings => {
                    format!("/choices/{choice}/message/content")
                }
            };
            body.pointer_mut(&pointer)
        }
    };
    match slot {
        Some(slot @ Value::String(_)) => {
            *slot = Value::String(text);
            true
        }
        _ => false,
    }
}

/// Inserts `text` as the first system message of a chat request, or appends it to an existing
/// leading system (or developer) message. Returns false for a body without `messages`.
pub fn add_to_system_prompt(body: &mut Value, text: &str) -> bool {
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return false;
    };
    if let Some(first) = messages.first_mut() {
        let role = first.get("role").and_then(Value::as_str);
        if matches!(role, Some("system" | "developer"))
            && let Some(Value::String(content)) = first.get_mut("content")
        {
            content.push_str("\n\n");
            content.push_str(text);
            return true;
        }
    }
    let mut message = serde_json::Map::new();
    message.insert("role".into(), Value::String("system".into()));
    message.insert("content".into(), Value::String(text.to_string()));
    messages.insert(0, Value::Object(message));
    true
}

/// The answer texts of a non-streamed response: each choice's message content (chat) or text
/// (completions). Embeddings have none.
pub fn response_texts(endpoint: Endpoint, body: &Value) -> Vec<Text> {
    let choices = body.get("choices").and_then(Value::as_array);
    let mut out = Vec::new();
    for (i, choice) in choices.into_iter().flatten().enumerate() {
        let text = match endpoint {
            Endpoint::ChatCompletions => choice.pointer("/message/content"),
            Endpoint::Completions => choice.get("text"),
            Endpoint::Embeddings => None,
        };
        if let Some(Value::String(text)) = text {
            out.push(Text {
                location: Location::Choice { choice: i },
                role: Some("assistant".into()),
                name: None,
                text: text.clone(),
            });
        }
    }
    out
}

#[derive(Deserialize)]
struct ChunkProbe<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChoiceProbe<'a>>>,
}

#[derive(Deserialize)]
struct ChoiceProbe<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<DeltaProbe<'a>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeltaProbe<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

/// The text deltas of one stream chunk, read from the event's JSON text without building a
/// `Value` (the stream guard runs this per event): `(choice index field, text)` for each choice
/// carrying `delta.content` (chat) or `text` (completions). `None` if `data` is not a JSON
/// object of that shape. Texts borrow from `data` unless they contain escapes.
pub fn chunk_texts(endpoint: Endpoint, data: &str) -> Option<Vec<(u64, Cow<'_, str>)>> {
    let probe: ChunkProbe<'_> = serde_json::from_str(data).ok()?;
    let mut out = Vec::new();
    for (position, choice) in probe.choices.into_iter().flatten().enumerate() {
        let index = choice.index.unwrap_or(position as u64);
        let text = match endpoint {
            Endpoint::ChatCompletions => choice.delta.and_then(|d| d.content),
            Endpoint::Completions => choice.text,
            Endpoint::Embeddings => None,
        };
        if let Some(text) = text {
            out.push((index, text));
        }
    }
    Some(out)
}

/// Replaces the text delta of the choice whose `index` is `index` in a stream chunk.
pub fn set_chunk_text(endpoint: Endpoint, chunk: &mut Value, index: u64, text: String) {
    let Some(choices) = chunk.get_mut("choices").and_then(Value::as_array_mut) else {
        return;
    };
    for (position, choice) in choices.iter_mut().enumerate() {
        let this = choice
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        if this != index {
            continue;
        }
        let slot = match endpoint {
            Endpoint::ChatCompletions => choice.pointer_mut("/delta/content"),
            Endpoint::Completions => choice.get_mut("text"),
            Endpoint::Embeddings => None,
        };
        if let Some(slot) = slot {
            *slot = Value::String(text);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_texts_carry_roles_parts_and_tools() {
        let body = br#"{"model":"m","messages":[
            {"role":"system","content":"be nice"},
            {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}]},
            {"role":"tool","tool_call_id":"c","content":"result"}],
            "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather.","parameters":{"type":"object"}}}]}"#;
        let texts = request_texts(Endpoint::ChatCompletions, body).unwrap();
        let got: Vec<(Location, Option<&str>, &str)> = texts
            .texts
            .iter()
            .map(|t| (t.location, t.role.as_deref(), t.text.as_str()))
            .collect();
        assert_eq!(
            got[0],
            (
                Location::Message {
                    message: 0,
                    part: None
                },
                Some("system"),
                "be nice"
            )
        );
        assert_eq!(
            got[1],
            (
                Location::Message {
                    message: 1,
                    part: Some(0)
                },
                Some("user"),
                "hi"
            )
        );
        assert_eq!(
            got[2],
            (
                Location::Message {
                    message: 2,
                    part: None
                },
                Some("tool"),
                "result"
            )
        );
        assert_eq!(got[3].0, Location::ToolDefinition { tool: 0 });
        assert!(got[3].2.contains("Weather."));
        assert_eq!(texts.tools, vec!["get_weather".to_string()]);
    }

    #[test]
    fn rewriting_keeps_key_order_and_other_fields() {
        let body = br#"{"model":"m","zeta":1,"messages":[{"role":"user","content":"mail a@b.co","name":"x"}],"alpha":[1,2]}"#;
        let mut texts = request_texts(Endpoint::ChatCompletions, body).unwrap();
        let location = texts.texts[0].location;
        assert!(set_text(
            Endpoint::ChatCompletions,
            &mut texts.body,
            location,
            "mail [EMAIL_1]".into()
        ));
        assert_eq!(
            texts.body.to_string(),
            r#"{"model":"m","zeta":1,"messages":[{"role":"user","content":"mail [EMAIL_1]","name":"x"}],"alpha":[1,2]}"#
        );
    }

    #[test]
    fn prompts_and_inputs_as_strings_or_arrays() {
        let texts = request_texts(
            Endpoint::Completions,
            br#"{"model":"m","prompt":["a","b"]}"#,
        )
        .unwrap();
        assert_eq!(texts.texts.len(), 2);
        let mut embeddings =
            request_texts(Endpoint::Embeddings, br#"{"model":"m","input":"x"}"#).unwrap();
        assert_eq!(
            embeddings.texts[0].location,
            Location::Prompt { index: None }
        );
        assert!(set_text(
            Endpoint::Embeddings,
            &mut embeddings.body,
            Location::Prompt { index: None },
            "y".into()
        ));
        assert_eq!(embeddings.body["input"], "y");
        let tokens =
            request_texts(Endpoint::Embeddings, br#"{"model":"m","input":[1,2,3]}"#).unwrap();
        assert!(tokens.texts.is_empty());
    }

    #[test]
    fn system_prompt_gets_the_canary() {
        let mut with = serde_json::json!({"messages":[{"role":"system","content":"rules"},{"role":"user","content":"q"}]});
        assert!(add_to_system_prompt(&mut with, "CANARY"));
        assert_eq!(with["messages"][0]["content"], "rules\n\nCANARY");
        let mut without = serde_json::json!({"messages":[{"role":"user","content":"q"}]});
        assert!(add_to_system_prompt(&mut without, "CANARY"));
        assert_eq!(without["messages"][0]["role"], "system");
        assert_eq!(without["messages"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn response_and_chunk_texts() {
        let chat = serde_json::json!({"choices":[{"index":0,"message":{"role":"assistant","content":"hello"}}]});
        assert_eq!(
            response_texts(Endpoint::ChatCompletions, &chat)[0].text,
            "hello"
        );
        let mut chunk = serde_json::json!({"choices":[{"index":1,"delta":{"content":"he"}}]});
        assert_eq!(
            chunk_texts(Endpoint::ChatCompletions, &chunk.to_string()).unwrap(),
            vec![(1, Cow::Borrowed("he"))]
        );
        set_chunk_text(Endpoint::ChatCompletions, &mut chunk, 1, "HE".into());
        assert_eq!(chunk["choices"][0]["delta"]["content"], "HE");
        let completion = r#"{"choices":[{"index":0,"text":"t","logprobs":null}]}"#;
        assert_eq!(
            chunk_texts(Endpoint::Completions, completion).unwrap(),
            vec![(0, Cow::Borrowed("t"))]
        );
        // Escapes, nulls, missing indices (position counts), unknown fields.
        let odd = r#"{"choices":[{"index":2,"delta":{"content":"a\"b","role":null}},{"delta":{"content":null}},{"delta":{"content":"c"}}],"x":[1]}"#;
        assert_eq!(
            chunk_texts(Endpoint::ChatCompletions, odd).unwrap(),
            vec![(2, Cow::Borrowed("a\"b")), (2, Cow::Borrowed("c"))]
        );
        let none = chunk_texts(Endpoint::ChatCompletions, r#"{"choices":null}"#).unwrap();
        assert!(none.is_empty());
        assert!(chunk_texts(Endpoint::ChatCompletions, "[1]").is_none());
    }
}
