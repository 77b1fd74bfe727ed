//! The approvals REST API under `/admin/v1` (the contract is docs/admin-api.md).
//!
//! Each request is checked in this order: bearer token (401), path (404), method (405), role
//! (403), then the body (415, 413, 400) and the store (404, 409, 503). Errors become responses
//! in one place, [`ApiError::into_response`].

use http::header::{ALLOW, HeaderValue, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{Method, StatusCode};
use hyper::body::Incoming;
use portcullis_config::AdminRole;
use portcullis_store::{ApprovalFilter, ApprovalStatus};
use serde::Deserialize;
use serde_json::json;

use super::auth::Operator;
use super::reply::{self, BodyError, ReasonError, Reply};
use super::{ControlPlane, Decision, form};

/// Approvals listed when no `limit` is given.
const DEFAULT_LIMIT: u32 = 100;
/// Most approvals one list returns (the store's own cap).
const MAX_LIMIT: u32 = 1000;
/// Longest approval id looked up; longer ones cannot exist.
pub(crate) const MAX_ID_LEN: usize = 200;

/// Serves one `/admin/v1/...` request.
pub(crate) async fn handle(plane: &ControlPlane, parts: &Parts, body: Incoming) -> Reply {
    match serve(plane, parts, body).await {
        Ok(reply) => reply,
        Err(error) => error.into_response(),
    }
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    WhoAmI,
    List,
    Get(String),
    Resolve(String, Decision),
}

impl Endpoint {
    fn parse(path: &str) -> Result<Self, ApiError> {
        let rest = path.strip_prefix("/admin/v1/").ok_or(ApiError::NoRoute)?;
        let segments: Vec<&str> = rest.split('/').collect();
        let id = |segment: &str| {
            form::path_segment(segment)
                .ok()
                .filter(|id| !id.is_empty() && id.len() <= MAX_ID_LEN)
                .ok_or(ApiError::NoRoute)
        };
        match segments.as_slice() {
            ["whoami"] => Ok(Self::WhoAmI),
            ["approvals"] => Ok(Self::List),
            ["approvals", raw] => Ok(Self::Get(id(raw)?)),
            ["approvals", raw, "approve"] => Ok(Self::Resolve(id(raw)?, Decision::Approve)),
            ["approvals", raw, "deny"] => Ok(Self::Resolve(id(raw)?, Decision::Deny)),
            _ => Err(ApiError::NoRoute),
        }
    }

    fn method(&self) -> Method {
        match self {
            Self::WhoAmI | Self::List | Self::Get(_) => Method::GET,
            Self::Resolve(..) => Method::POST,
        }
    }

    fn role(&self) -> AdminRole {
        match self {
            Self::WhoAmI | Self::List | Self::Get(_) => AdminRole::Viewer,
            Self::Resolve(..) => AdminRole::Approver,
        }
    }
}

async fn serve(plane: &ControlPlane, parts: &Parts, body: Incoming) -> Result<Reply, ApiError> {
    let operator = plane
        .tokens
        .bearer(&parts.headers)
        .ok_or(ApiError::Unauthorized)?;
    let endpoint = Endpoint::parse(parts.uri.path())?;
    let method = endpoint.method();
    if parts.method != method {
        return Err(ApiError::MethodNotAllowed { allow: method });
    }
    if !operator.may(endpoint.role()) {
        return Err(ApiError::Forbidden {
            needed: endpoint.role(),
        });
    }
    match endpoint {
        Endpoint::WhoAmI => Ok(reply::json(
            StatusCode::OK,
            &json!({"name": operator.name, "role": operator.role.as_str()}),
        )),
        Endpoint::List => {
            let filter = list_filter(parts.uri.query().unwrap_or(""))?;
            let approvals = plane.hub.list(&filter).await.map_err(store_error)?;
            Ok(reply::json(StatusCode::OK, &json!({ "data": approvals })))
        }
        Endpoint::Get(id) => match plane.hub.get(&id).await.map_err(store_error)? {
            Some(approval) => Ok(reply::json(StatusCode::OK, &approval)),
            None => Err(ApiError::ApprovalNotFound(id)),
        },
        Endpoint::Resolve(id, decision) => {
            resolve(plane, operator, &id, decision, parts, body).await
        }
    }
}

/// `?status=...&limit=N`.
fn list_filter(query: &str) -> Result<ApprovalFilter, ApiError> {
    let pairs = form::parse(query.as_bytes())
        .map_err(|_| ApiError::InvalidRequest("the query string is not UTF-8".into()))?;
    let status = match form::value(&pairs, "status") {
        None => None,
        Some(text) => Some(ApprovalStatus::parse(text).ok_or_else(|| {
            ApiError::InvalidRequest(
                "status must be one of pending, approved, denied, expired".into(),
            )
        })?),
    };
    let limit = match form::value(&pairs, "limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::InvalidRequest(format!("limit must be between 1 and {MAX_LIMIT}"))
            })?,
    };
    Ok(ApprovalFilter { status, limit })
}

/// The optional JSON body of approve and deny.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    reason: Option<String>,
}

async fn resolve(
    plane: &ControlPlane,
    operator: &Operator,
    id: &str,
    decision: Decision,
    parts: &Parts,
    body: Incoming,
) -> Result<Reply, ApiError> {
    let body = reply::read_body(body).await.map_err(|error| match error {
        BodyError::TooLarge => ApiError::PayloadTooLarge,
        BodyError::Timeout => ApiError::Timeout,
        BodyError::Broken => ApiError::InvalidRequest("the request body could not be read".into()),
    })?;
    let reason = if body.is_empty() {
        None
    } else {
        if !reply::has_content_type(&parts.headers, "application/json") {
            return Err(ApiError::UnsupportedMediaType);
        }
        let parsed: DecisionBody = serde_json::from_slice(&body)
            .map_err(|error| ApiError::InvalidRequest(format!("malformed JSON body: {error}")))?;
        parsed.reason
    };
    let reason = reply::clean_reason(reason.as_deref()).map_err(|error| match error {
        ReasonError::TooLong => ApiError::InvalidRequest(format!(
            "reason must be at most {} characters",
            reply::MAX_REASON_CHARS
        )),
    })?;
    if decision == Decision::Deny && reason.is_none() {
        return Err(ApiError::InvalidRequest(
            "a reason is required to deny".into(),
        ));
    }
    let approval = plane
        .hub
        .resolve(id, decision == Decision::Approve, &operator.name, reason)
        .await
        .map_err(store_error)?;
    Ok(reply::json(StatusCode::OK, &approval))
}

/// A store error as the API reports it.
fn store_error(error: portcullis_store::Error) -> ApiError {
    use portcullis_store::Error;
    match error {
        Error::NotFound(id) => ApiError::ApprovalNotFound(id),
        Error::AlreadyResolved { id, status } => ApiError::AlreadyResolved { id, status },
        Error::Database(_)
        | Error::Migration(_)
        | Error::MigrationFailed { .. }
        | Error::InvalidSchemaName { .. }
        | Error::BadRow(_)
        | Error::InvalidResolution { .. }
        | Error::DuplicateAuditLine { .. } => {
            tracing::warn!(error = %error, "admin api: the store failed");
            ApiError::StoreUnavailable
        }
    }
}

/// Why an API request was refused.
#[derive(Debug)]
enum ApiError {
    Unauthorized,
    Forbidden { needed: AdminRole },
    NoRoute,
    MethodNotAllowed { allow: Method },
    UnsupportedMediaType,
    PayloadTooLarge,
    Timeout,
    InvalidRequest(String),
    ApprovalNotFound(String),
    AlreadyResolved { id: String, status: ApprovalStatus },
    StoreUnavailable,
}

impl ApiError {
    fn into_response(self) -> Reply {
        let (status, kind, code, message) = match &self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unauthorized",
                "a valid admin bearer token is required".to_owned(),
            ),
            Self::Forbidden { needed } => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "forbidden",
                format!("this needs the {} role", needed.as_str()),
            ),
            Self::NoRoute => (
                StatusCode::NOT_FOUND,
                "not_found",
                "not_found",
                "no such endpoint".to_owned(),
            ),
            Self::MethodNotAllowed { allow } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "method_not_allowed",
                format!("use {allow}"),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "unsupported_media_type",
                "the body must be application/json".to_owned(),
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "payload_too_large",
                format!("the body must be at most {} bytes", reply::MAX_BODY_BYTES),
            ),
            Self::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                "request_timeout",
                "the body was not received in time".to_owned(),
            ),
            Self::InvalidRequest(message) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "invalid_request",
                message.clone(),
            ),
            Self::ApprovalNotFound(id) => (
                StatusCode::NOT_FOUND,
                "not_found",
                "not_found",
                format!("approval {id} not found"),
            ),
            Self::AlreadyResolved { id, status } => (
                StatusCode::CONFLICT,
                "conflict",
                "already_resolved",
                format!("approval {id} is already {status}"),
            ),
            Self::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "store_unavailable",
                "the approval store is unavailable".to_owned(),
            ),
        };
        let mut error = json!({"message": message, "type": kind, "code": code});
        if let Self::AlreadyResolved { status, .. } = &self {
            error["status"] = json!(status.as_str());
        }
        let mut response = reply::json(status, &json!({ "error": error }));
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::MethodNotAllowed { allow } => {
                if let Ok(value) = HeaderValue::from_str(allow.as_str()) {
                    headers.insert(ALLOW, value);
                }
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_endpoints() {
        assert_eq!(
            Endpoint::parse("/admin/v1/whoami").unwrap(),
            Endpoint::WhoAmI
        );
        assert_eq!(
            Endpoint::parse("/admin/v1/approvals").unwrap(),
            Endpoint::List
        );
        assert_eq!(
            Endpoint::parse("/admin/v1/approvals/apr%5F1").unwrap(),
            Endpoint::Get("apr_1".into())
        );
        assert_eq!(
            Endpoint::parse("/admin/v1/approvals/a/deny").unwrap(),
            Endpoint::Resolve("a".into(), Decision::Deny)
        );
        for bad in [
            "/admin/v1/",
            "/admin/v1/approvals/",
            "/admin/v1/approvals//approve",
            "/admin/v1/approvals/a/b",
            "/admin/v2/approvals",
            "/admin/v1/approvals/%ff",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(ApiError::NoRoute)),
                "{bad}"
            );
        }
    }

    #[test]
    fn list_filters() {
        let filter = list_filter("status=denied&limit=5").unwrap();
        assert_eq!(filter.status, Some(ApprovalStatus::Denied));
        assert_eq!(filter.limit, 5);
        assert_eq!(list_filter("").unwrap().limit, DEFAULT_LIMIT);
        for bad in ["status=maybe", "limit=0", "limit=1001", "limit=x"] {
            assert!(list_filter(bad).is_err(), "{bad}");
        }
    }
}
