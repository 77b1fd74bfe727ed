//! The web console at `/console`: sign in with an admin token, see pending approvals and recent
//! decisions, approve or deny. Server-rendered HTML, no JavaScript.
//!
//! Security:
//! - **Sessions** are server-side (`session.rs`); the cookie carries only a random id and is
//!   `HttpOnly; SameSite=Strict; Path=/console` (plus `Secure` behind a TLS-terminating proxy
//!   that sends `X-Forwarded-Proto: https`).
//! - **CSRF**: every state-changing POST (except sign-in, which has no session yet) must carry
//!   the session's synchronizer token in a hidden `csrf` field, compared in constant time.
//!   Independently, every POST is refused when an `Origin` header is present and is not this
//!   host, or when `Sec-Fetch-Site` says the request came from another site.
//! - **Escaping**: pages are written through `Html`, which escapes every value; messages come
//!   from a fixed set (`Notice`), never from the query string.
//! - **Headers**: every console response carries a strict CSP (no scripts at all), `nosniff`,
//!   `Referrer-Policy: same-origin` (`no-referrer` would make browsers send `Origin: null` on
//!   the console's own form posts, which the origin check must refuse), `no-store` and `DENY`
//!   framing.

mod pages;
mod session;

use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, HOST, HeaderValue, LOCATION, ORIGIN,
    REFERRER_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};
use hyper::body::Incoming;
use portcullis_config::AdminRole;
use portcullis_store::{Approval, ApprovalFilter, ApprovalStatus};

use super::reply::{self, BodyError, ReasonError, Reply};
use super::{ControlPlane, Decision, form};
use pages::Notice;
use session::Session;
pub(crate) use session::Sessions;

/// The session cookie's name.
const COOKIE_NAME: &str = "portcullis_console";

/// Pending approvals shown on the dashboard, at most.
const PENDING_SHOWN: u32 = 200;
/// Recent decisions shown on the dashboard, at most.
const RECENT_SHOWN: usize = 25;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// What a console path names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Page {
    Login,
    Logout,
    Dashboard,
    Approval(String),
    Resolve(String, Decision),
}

impl Page {
    fn parse(path: &str) -> Option<Self> {
        let rest = path.strip_prefix("/console")?;
        let id = |segment: &str| {
            form::path_segment(segment)
                .ok()
                .filter(|id| !id.is_empty() && id.len() <= super::api::MAX_ID_LEN)
        };
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            [""] | ["", ""] => Some(Self::Dashboard),
            ["", "login"] => Some(Self::Login),
            ["", "logout"] => Some(Self::Logout),
            ["", "approvals", raw] => Some(Self::Approval(id(raw)?)),
            ["", "approvals", raw, "approve"] => Some(Self::Resolve(id(raw)?, Decision::Approve)),
            ["", "approvals", raw, "deny"] => Some(Self::Resolve(id(raw)?, Decision::Deny)),
            _ => None,
        }
    }

    fn allows(&self, method: &Method) -> bool {
        match self {
            Self::Login => method == Method::GET || method == Method::POST,
            Self::Dashboard | Self::Approval(_) => method == Method::GET,
            Self::Logout | Self::Resolve(..) => method == Method::POST,
        }
    }

    fn allow_header(&self) -> &'static str {
        match self {
            Self::Login => "GET, POST",
            Self::Dashboard | Self::Approval(_) => "GET",
            Self::Logout | Self::Resolve(..) => "POST",
        }
    }
}

/// Serves one `/console...` request.
pub(crate) async fn handle(
    plane: &ControlPlane,
    sessions: &Sessions,
    parts: &Parts,
    body: Incoming,
) -> Reply {
    let mut reply = route(plane, sessions, parts, body).await;
    let headers = reply.headers_mut();
    for (name, value) in [
        (CONTENT_SECURITY_POLICY, CSP),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "same-origin"),
        (CACHE_CONTROL, "no-store"),
        (X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    reply
}

async fn route(plane: &ControlPlane, sessions: &Sessions, parts: &Parts, body: Incoming) -> Reply {
    let session = session_id(&parts.headers).and_then(|id| sessions.get(id));
    let Some(page) = Page::parse(parts.uri.path()) else {
        return html(
            StatusCode::NOT_FOUND,
            pages::message(session.as_ref(), Notice::NotFound),
        );
    };
    if !page.allows(&parts.method) {
        let mut reply = html(
            StatusCode::METHOD_NOT_ALLOWED,
            pages::message(session.as_ref(), Notice::MethodNotAllowed),
        );
        reply
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(page.allow_header()));
        return reply;
    }
    if parts.method == Method::POST && !same_origin(&parts.headers) {
        return html(
            StatusCode::FORBIDDEN,
            pages::message(session.as_ref(), Notice::CsrfFailed),
        );
    }
    if page == Page::Login {
        return if parts.method == Method::GET {
            html(StatusCode::OK, pages::login(None))
        } else {
            login(plane, sessions, parts, body).await
        };
    }
    let Some(session) = session else {
        return redirect("/console/login");
    };
    match page {
        Page::Login => html(StatusCode::OK, pages::login(None)),
        Page::Dashboard => dashboard(plane, &session).await,
        Page::Approval(id) => {
            let query = form::parse(parts.uri.query().unwrap_or("").as_bytes()).unwrap_or_default();
            let notice = Notice::from_done(form::value(&query, "done"));
            approval(plane, &session, &id, StatusCode::OK, notice).await
        }
        Page::Logout => match read_form(&session, parts, body).await {
            Ok(_) => {
                if let Some(id) = session_id(&parts.headers) {
                    sessions.remove(id);
                }
                let mut reply = redirect("/console/login");
                set_cookie(&mut reply, &format!("{COOKIE_NAME}=; Max-Age=0"), parts);
                reply
            }
            Err(reply) => reply,
        },
        Page::Resolve(id, decision) => resolve(plane, &session, parts, body, &id, decision).await,
    }
}

async fn login(plane: &ControlPlane, sessions: &Sessions, parts: &Parts, body: Incoming) -> Reply {
    let pairs = match read_pairs(parts, body).await {
        Ok(pairs) => pairs,
        Err((status, notice)) => return html(status, pages::login(Some(notice))),
    };
    let token = form::value(&pairs, "token").unwrap_or("").trim();
    let Some(operator) = plane.tokens.verify(token.as_bytes()) else {
        tracing::info!("console sign-in refused");
        return html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some(Notice::LoginFailed)),
        );
    };
    let Ok(id) = sessions.create(operator.clone()) else {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::login(Some(Notice::Unavailable)),
        );
    };
    if let Some(old) = session_id(&parts.headers) {
        sessions.remove(old);
    }
    tracing::info!(name = %operator.name, "console sign-in");
    let mut reply = redirect("/console");
    let cookie = format!(
        "{COOKIE_NAME}={id}; Max-Age={}",
        sessions.ttl().as_secs().max(1)
    );
    set_cookie(&mut reply, &cookie, parts);
    reply
}

async fn dashboard(plane: &ControlPlane, session: &Session) -> Reply {
    let pending = plane
        .hub
        .list(&ApprovalFilter {
            status: Some(ApprovalStatus::Pending),
            limit: PENDING_SHOWN,
        })
        .await;
    let recent = recent_decisions(plane).await;
    match (pending, recent) {
        (Ok(pending), Ok(recent)) => {
            html(StatusCode::OK, pages::dashboard(session, &pending, &recent))
        }
        (Err(error), _) | (_, Err(error)) => store_failed(Some(session), &error),
    }
}

/// The latest resolved approvals of each kind, merged newest first.
async fn recent_decisions(plane: &ControlPlane) -> Result<Vec<Approval>, portcullis_store::Error> {
    let mut recent = Vec::new();
    for status in [
        ApprovalStatus::Approved,
        ApprovalStatus::Denied,
        ApprovalStatus::Expired,
    ] {
        let filter = ApprovalFilter {
            status: Some(status),
            limit: RECENT_SHOWN as u32,
        };
        recent.extend(plane.hub.list(&filter).await?);
    }
    recent.sort_by_key(|a| std::cmp::Reverse(a.decided_at_ms.unwrap_or(a.request.created_at_ms)));
    recent.truncate(RECENT_SHOWN);
    Ok(recent)
}

async fn approval(
    plane: &ControlPlane,
    session: &Session,
    id: &str,
    status: StatusCode,
    notice: Option<Notice>,
) -> Reply {
    match plane.hub.get(id).await {
        Ok(Some(found)) => html(status, pages::approval(session, &found, notice)),
        Ok(None) => html(
            StatusCode::NOT_FOUND,
            pages::message(Some(session), Notice::NotFound),
        ),
        Err(error) => store_failed(Some(session), &error),
    }
}

async fn resolve(
    plane: &ControlPlane,
    session: &Session,
    parts: &Parts,
    body: Incoming,
    id: &str,
    decision: Decision,
) -> Reply {
    let pairs = match read_form(session, parts, body).await {
        Ok(pairs) => pairs,
        Err(reply) => return reply,
    };
    if !session.operator.may(AdminRole::Approver) {
        return approval(
            plane,
            session,
            id,
            StatusCode::FORBIDDEN,
            Some(Notice::NeedsApprover),
        )
        .await;
    }
    let reason = match reply::clean_reason(form::value(&pairs, "reason")) {
        Ok(reason) => reason,
        Err(ReasonError::TooLong) => {
            return approval(
                plane,
                session,
                id,
                StatusCode::BAD_REQUEST,
                Some(Notice::ReasonTooLong),
            )
            .await;
        }
    };
    if decision == Decision::Deny && reason.is_none() {
        return approval(
            plane,
            session,
            id,
            StatusCode::BAD_REQUEST,
            Some(Notice::ReasonRequired),
        )
        .await;
    }
    let approve = decision == Decision::Approve;
    match plane
        .hub
        .resolve(id, approve, &session.operator.name, reason)
        .await
    {
        Ok(_) => {
            let done = if approve { "approved" } else { "denied" };
            redirect(&format!(
                "/console/approvals/{}?done={done}",
                super::html::path_segment(id)
            ))
        }
        Err(portcullis_store::Error::AlreadyResolved { status, .. }) => {
            approval(
                plane,
                session,
                id,
                StatusCode::CONFLICT,
                Some(Notice::AlreadyResolved(status)),
            )
            .await
        }
        Err(portcullis_store::Error::NotFound(_)) => html(
            StatusCode::NOT_FOUND,
            pages::message(Some(session), Notice::NotFound),
        ),
        Err(error) => store_failed(Some(session), &error),
    }
}

/// Reads a signed-in user's form and checks its CSRF token; the refusal page otherwise.
async fn read_form(
    session: &Session,
    parts: &Parts,
    body: Incoming,
) -> Result<Vec<(String, String)>, Reply> {
    let pairs = read_pairs(parts, body)
        .await
        .map_err(|(status, notice)| html(status, pages::message(Some(session), notice)))?;
    let presented = form::value(&pairs, "csrf").unwrap_or("");
    if !session.csrf_matches(presented) {
        tracing::warn!(name = %session.operator.name, "console form refused: bad csrf token");
        return Err(html(
            StatusCode::FORBIDDEN,
            pages::message(Some(session), Notice::CsrfFailed),
        ));
    }
    Ok(pairs)
}

/// Reads a urlencoded form body.
async fn read_pairs(
    parts: &Parts,
    body: Incoming,
) -> Result<Vec<(String, String)>, (StatusCode, Notice)> {
    let bytes = reply::read_body(body).await.map_err(|error| match error {
        BodyError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, Notice::FormTooLarge),
        BodyError::Timeout => (StatusCode::REQUEST_TIMEOUT, Notice::BadForm),
        BodyError::Broken => (StatusCode::BAD_REQUEST, Notice::BadForm),
    })?;
    if !bytes.is_empty()
        && !reply::has_content_type(&parts.headers, "application/x-www-form-urlencoded")
    {
        return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, Notice::BadForm));
    }
    form::parse(&bytes).map_err(|_| (StatusCode::BAD_REQUEST, Notice::BadForm))
}

/// Whether a POST may come from this page's own origin: no `Origin` header (older browsers,
/// non-browser clients; the CSRF token still applies) or one naming this host, and no
/// `Sec-Fetch-Site` saying another site sent it.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return false;
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(HOST).map(HeaderValue::as_bytes) else {
        return false;
    };
    let origin = origin.as_bytes();
    let authority = origin
        .strip_prefix(b"https://")
        .or_else(|| origin.strip_prefix(b"http://"));
    authority.is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// The session id from the `Cookie` headers, if any.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Sets the session cookie with its fixed attributes; `Secure` when the client reached us
/// over HTTPS through a proxy.
fn set_cookie(reply: &mut Reply, cookie: &str, parts: &Parts) {
    let secure = parts
        .headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut value = format!("{cookie}; HttpOnly; SameSite=Strict; Path=/console");
    if secure {
        value.push_str("; Secure");
    }
    if let Ok(value) = HeaderValue::from_str(&value) {
        reply.headers_mut().insert(SET_COOKIE, value);
    }
}

fn store_failed(session: Option<&Session>, error: &portcullis_store::Error) -> Reply {
    tracing::warn!(error = %error, "console: the store failed");
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::message(session, Notice::StoreUnavailable),
    )
}

fn html(status: StatusCode, page: String) -> Reply {
    reply::with_body(status, "text/html; charset=utf-8", page.into())
}

fn redirect(location: &str) -> Reply {
    let mut reply = reply::with_body(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        "".into(),
    );
    if let Ok(value) = HeaderValue::from_str(location) {
        reply.headers_mut().insert(LOCATION, value);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_pages() {
        assert_eq!(Page::parse("/console"), Some(Page::Dashboard));
        assert_eq!(Page::parse("/console/"), Some(Page::Dashboard));
        assert_eq!(Page::parse("/console/login"), Some(Page::Login));
        assert_eq!(
            Page::parse("/console/approvals/apr_1/deny"),
            Some(Page::Resolve("apr_1".into(), Decision::Deny))
        );
        for bad in [
            "/consoles",
            "/console/approvals/",
            "/console/approvals/a/b",
            "/console/x",
        ] {
            assert_eq!(Page::parse(bad), None, "{bad}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn origins_must_be_this_host() {
        assert!(same_origin(&headers(&[("host", "admin:8081")])));
        assert!(same_origin(&headers(&[
            ("host", "admin:8081"),
            ("origin", "http://admin:8081")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "Admin:8081"),
            ("origin", "https://admin:8081")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "admin:8081"),
            ("origin", "http://evil:8081")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "admin:8081"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&headers(&[("origin", "http://admin:8081")])));
        assert!(!same_origin(&headers(&[
            ("host", "admin"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "admin"),
            ("sec-fetch-site", "same-origin")
        ])));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; portcullis_console=abc ; b=2")]);
        assert_eq!(session_id(&h), Some("abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "portcullis_console=def")]);
        assert_eq!(session_id(&h), Some("def"));
        assert_eq!(
            session_id(&headers(&[("cookie", "portcullis_console=")])),
            None
        );
    }
}
