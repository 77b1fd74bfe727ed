//! `GET /v1/models`, `GET /v1/models/{id}` and `POST /v1/moderations`: simple valid answers for pass-through tests.

use bytes::Bytes;
use http::Response;
use serde::{Deserialize, Serialize};

use crate::body::MockBody;
use crate::error::{Error, Result};
use crate::router::Shared;
use crate::wire;

/// Moderation categories, as OpenAI names them.
const CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

/// The `GET /v1/models` body, computed once when the server starts.
pub(crate) fn models_body(models: &[String]) -> Result<Bytes> {
    let list = ModelList {
        object: "list",
        data: models
            .iter()
            .map(|id| Model {
                id,
                object: "model",
                created: wire::CREATED,
                owned_by: "portcullis-mock",
            })
            .collect(),
    };
    serde_json::to_vec(&list)
        .map(Bytes::from)
        .map_err(Error::Encode)
}

/// Serves `GET /v1/models` from the precomputed body.
pub(crate) fn models(shared: &Shared) -> Response<MockBody> {
    wire::with_content_type(
        http::StatusCode::OK,
        wire::JSON,
        MockBody::full(shared.models_body.clone()),
    )
}

/// Serves `GET /v1/models/{id}`: the model object, or 404 for an id not served.
pub(crate) fn model(
    shared: &Shared,
    method: &http::Method,
    path: &str,
    id: &str,
) -> Result<Response<MockBody>> {
    let Some(id) = shared.models.iter().find(|m| m.as_str() == id) else {
        return Ok(wire::not_found(method, path));
    };
    let model = Model {
        id,
        object: "model",
        created: wire::CREATED,
        owned_by: "portcullis-mock",
    };
    let body = serde_json::to_vec(&model).map_err(Error::Encode)?;
    Ok(wire::with_content_type(
        http::StatusCode::OK,
        wire::JSON,
        MockBody::full(Bytes::from(body)),
    ))
}

#[derive(Deserialize)]
struct ModerationRequest {
    #[serde(default)]
    model: Option<String>,
    input: serde_json::Value,
}

#[derive(Serialize)]
struct Moderation<'a> {
    id: &'a str,
    model: &'a str,
    results: Vec<&'a serde_json::Value>,
}

/// Serves `POST /v1/moderations`: one unflagged result per input.
pub(crate) fn moderate(shared: &Shared, body: &[u8]) -> Result<Response<MockBody>> {
    let request: ModerationRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => return Ok(wire::unparsable_body(&error)),
    };
    let inputs = match &request.input {
        serde_json::Value::Array(items) => items.len(),
        serde_json::Value::String(_) => 1,
        serde_json::Value::Null
        | serde_json::Value::Bool(_)
        | serde_json::Value::Number(_)
        | serde_json::Value::Object(_) => {
            return Ok(wire::invalid_request(
                "'input' must be a string or an array",
            ));
        }
    };
    let mut categories = serde_json::Map::new();
    let mut scores = serde_json::Map::new();
    for name in CATEGORIES {
        categories.insert(name.to_owned(), serde_json::Value::Bool(false));
        scores.insert(name.to_owned(), serde_json::json!(0.000_01));
    }
    let result = serde_json::json!({
        "flagged": false,
        "categories": categories,
        "category_scores": scores,
    });
    let id = format!("modr-mock-{}", shared.next_id());
    wire::json_response(&Moderation {
        id: &id,
        model: request.model.as_deref().unwrap_or("omni-moderation-latest"),
        results: vec![&result; inputs],
    })
}
