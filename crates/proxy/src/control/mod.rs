//! The control plane: the admin listener (`admin.listen`, never the traffic port) serving the
//! approvals REST API under `/admin/v1` (`api.rs`, contract in docs/admin-api.md) and, when
//! `admin.console` is on, the web console under `/console` (`console/`).
//!
//! Both authenticate with the configured admin tokens (`auth.rs`): the API with
//! `Authorization: Bearer`, the console with a sign-in form that starts a server-side session.
//! Roles are ordered (`viewer < approver < admin`); reading needs viewer, deciding approver.
//! Decisions go through the [`ApprovalHub`], which records them in the store and wakes the held
//! call; `decided_by` is the token's configured name.
//!
//! Start reading at [`ControlPlane::handle`]. Nothing here logs a token, a session id or a
//! CSRF token.

mod api;
mod auth;
mod console;
mod form;
mod html;
mod reply;
mod server;
mod time;

use std::sync::Arc;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use portcullis_config::Admin;
use portcullis_telemetry::{AdminSurface, Metrics};

use crate::approvals::ApprovalHub;
use crate::services::SecretError;
use reply::Reply;

pub use server::AdminServer;
pub use time::rfc3339_utc;

/// An approver's decision on a pending approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Approve,
    Deny,
}

/// Why the control plane could not be built from the config.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A token's secret could not be read.
    #[error("admin token {name}: {source}")]
    TokenSecret {
        /// The token's configured name.
        name: String,
        /// Why.
        #[source]
        source: SecretError,
    },
    /// A token's secret is empty.
    #[error("admin token {name}: the secret is empty")]
    EmptyToken {
        /// The token's configured name.
        name: String,
    },
    /// Two configured tokens are the same token: which name to record would be ambiguous.
    #[error("admin tokens {first} and {second} are the same token")]
    DuplicateToken {
        /// The first token's name.
        first: String,
        /// The second token's name.
        second: String,
    },
}

/// What the admin listener serves: the tokens, the approvals and the console sessions.
pub struct ControlPlane {
    tokens: auth::Tokens,
    hub: Arc<ApprovalHub>,
    metrics: Arc<Metrics>,
    /// `None` when `admin.console` is off.
    console: Option<console::Sessions>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("tokens", &self.tokens)
            .field("console", &self.console.is_some())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Reads the admin token secrets (keeping only their SHA-256) and sets up the console.
    pub fn new(
        admin: &Admin,
        hub: Arc<ApprovalHub>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, ControlError> {
        let tokens = auth::Tokens::load(admin)?;
        if tokens.is_empty() {
            tracing::warn!("no admin tokens are configured: every admin request will be refused");
        }
        Ok(Arc::new(Self {
            tokens,
            hub,
            metrics,
            console: admin
                .console
                .then(|| console::Sessions::new(admin.session_ttl)),
        }))
    }

    /// Serves one admin request: `/admin/v1/...` or `/console...`.
    pub(crate) async fn handle(&self, request: Request<Incoming>) -> Reply {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let (surface, reply) = if path.starts_with("/admin/") {
            (AdminSurface::Api, api::handle(self, &parts, body).await)
        } else if let Some(sessions) = &self.console
            && (path == "/console" || path.starts_with("/console/"))
        {
            (
                AdminSurface::Console,
                console::handle(self, sessions, &parts, body).await,
            )
        } else if path == "/" && self.console.is_some() {
            let mut reply = reply::with_body(StatusCode::SEE_OTHER, "text/plain", "".into());
            reply.headers_mut().insert(
                http::header::LOCATION,
                http::HeaderValue::from_static("/console"),
            );
            (AdminSurface::Console, reply)
        } else {
            let body = serde_json::json!({"error": {
                "message": "no such endpoint", "type": "not_found", "code": "not_found"
            }});
            (AdminSurface::Api, reply::json(StatusCode::NOT_FOUND, &body))
        };
        self.metrics.admin_request(surface, reply.status().as_u16());
        reply
    }
}
