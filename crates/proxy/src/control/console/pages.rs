//! The console's pages, rendered on the server through [`Html`] (so every value is escaped).
//! No JavaScript; one inline style sheet (allowed by the console's CSP).
//!
//! Stable hooks for tests and scripts: pending rows are `<tr class="approval" data-id="…">`,
//! the decision buttons `id="approve"` and `id="deny"`, the reason field `name="reason"`, the
//! login field `name="token"`, every form's CSRF field `name="csrf"`.

use portcullis_config::AdminRole;
use portcullis_store::{Approval, ApprovalStatus};
use serde_json::Value;

use super::session::Session;
use crate::control::html::{Html, path_segment};
use crate::control::reply::MAX_REASON_CHARS;
use crate::control::time::rfc3339_utc;

const STYLE: &str = "<style>\
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}\
header{display:flex;gap:1em;align-items:center;padding:.6em 1.2em;background:#1d2330;color:#fff}\
header a{color:#fff;font-weight:600;text-decoration:none}header .who{margin-left:auto}\
header form{margin:0}main{padding:1em 1.2em;max-width:1200px}\
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:1.5em}\
th,td{border:1px solid #d8dce3;padding:.35em .5em;text-align:left;vertical-align:top}\
th{background:#eef0f4}pre{background:#fff;border:1px solid #d8dce3;padding:.6em;overflow:auto;max-height:30em}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25em 1em;background:#fff;padding:.8em;border:1px solid #d8dce3}\
dt{font-weight:600}dd{margin:0}.notice{padding:.6em .8em;border-radius:4px}\
.ok{background:#e3f5e6;border:1px solid #8ccf97}.error{background:#fbe6e6;border:1px solid #e39a9a}\
.decide{display:flex;gap:2em;flex-wrap:wrap}.decide form{background:#fff;border:1px solid #d8dce3;padding:.8em}\
textarea{display:block;width:28em;max-width:100%;height:5em;margin:.3em 0}\
button{padding:.35em 1em;cursor:pointer}#approve{background:#2e7d32;color:#fff;border:0}\
#deny{background:#b3261e;color:#fff;border:0}.empty{color:#5b6475}\
</style>";

/// A message from a fixed set: the console never shows text taken from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// `?done=approved`.
    Approved,
    /// `?done=denied`.
    Denied,
    ReasonRequired,
    ReasonTooLong,
    AlreadyResolved(ApprovalStatus),
    NeedsApprover,
    LoginFailed,
    CsrfFailed,
    BadForm,
    FormTooLarge,
    NotFound,
    MethodNotAllowed,
    StoreUnavailable,
    Unavailable,
}

impl Notice {
    /// The flash message named by `?done=`, if it is one of ours.
    pub(crate) fn from_done(value: Option<&str>) -> Option<Self> {
        match value {
            Some("approved") => Some(Self::Approved),
            Some("denied") => Some(Self::Denied),
            _ => None,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Approved => "Approved: the call proceeds.",
            Self::Denied => "Denied: the call is refused.",
            Self::ReasonRequired => "A reason is required to deny.",
            Self::ReasonTooLong => "The reason is too long (at most 1000 characters).",
            Self::AlreadyResolved(ApprovalStatus::Approved) => {
                "This approval was already approved."
            }
            Self::AlreadyResolved(ApprovalStatus::Denied) => "This approval was already denied.",
            Self::AlreadyResolved(ApprovalStatus::Expired) => "This approval has already expired.",
            Self::AlreadyResolved(ApprovalStatus::Pending) => "This approval changed meanwhile.",
            Self::NeedsApprover => "Approving and denying needs the approver role.",
            Self::LoginFailed => "That token was not accepted.",
            Self::CsrfFailed => {
                "The form was not accepted (stale page or cross-site request). Reload and try again."
            }
            Self::BadForm => "The form could not be read.",
            Self::FormTooLarge => "The form is too large.",
            Self::NotFound => "Not found.",
            Self::MethodNotAllowed => "This page does not accept that kind of request.",
            Self::StoreUnavailable => "The approval store is unavailable. Try again shortly.",
            Self::Unavailable => "The console cannot start a session right now.",
        }
    }

    fn is_error(self) -> bool {
        !matches!(self, Self::Approved | Self::Denied)
    }
}

/// The sign-in form.
pub(crate) fn login(notice: Option<Notice>) -> String {
    page("Sign in", None, |html| {
        html.raw("<h1>Sign in</h1>");
        write_notice(html, notice);
        html.raw(
            "<form method=\"post\" action=\"/console/login\">\
             <label>Admin token <input type=\"password\" name=\"token\" autocomplete=\"off\" required></label> \
             <button type=\"submit\">Sign in</button></form>",
        );
    })
}

/// A page with one message (errors without a better page to show them on).
pub(crate) fn message(session: Option<&Session>, notice: Notice) -> String {
    page("Portcullis", session, |html| {
        write_notice(html, Some(notice));
        html.raw("<p><a href=\"/console\">Back to the approvals</a></p>");
    })
}

/// Pending approvals and the latest decisions.
pub(crate) fn dashboard(session: &Session, pending: &[Approval], recent: &[Approval]) -> String {
    page("Approvals", Some(session), |html| {
        html.raw("<h1>Pending approvals</h1>");
        if pending.is_empty() {
            html.raw("<p class=\"empty\">No calls are waiting for approval.</p>");
        } else {
            html.raw(
                "<table id=\"pending\"><thead><tr><th>ID</th><th>Created</th><th>Expires</th>\
                 <th>Principal</th><th>Tenant</th><th>Server</th><th>Tool</th><th>Reasons</th>\
                 </tr></thead><tbody>",
            );
            for approval in pending {
                let request = &approval.request;
                html.raw("<tr class=\"approval\" data-id=\"")
                    .text(&request.id)
                    .raw("\"><td>");
                approval_link(html, &request.id);
                html.raw("</td><td>")
                    .text(&rfc3339_utc(request.created_at_ms));
                html.raw("</td><td>")
                    .text(&rfc3339_utc(request.expires_at_ms));
                html.raw("</td><td>").text(&request.principal);
                html.raw("</td><td>")
                    .text(request.tenant.as_deref().unwrap_or("-"));
                html.raw("</td><td>").text(&request.server);
                html.raw("</td><td>").text(&request.tool);
                html.raw("</td><td>").text(&request.reasons.join("; "));
                html.raw("</td></tr>");
            }
            html.raw("</tbody></table>");
        }
        html.raw("<h2>Recent decisions</h2>");
        if recent.is_empty() {
            html.raw("<p class=\"empty\">No decisions yet.</p>");
            return;
        }
        html.raw(
            "<table id=\"recent\"><thead><tr><th>ID</th><th>Status</th><th>Server</th>\
             <th>Tool</th><th>Principal</th><th>By</th><th>Reason</th><th>When</th></tr>\
             </thead><tbody>",
        );
        for approval in recent {
            let request = &approval.request;
            html.raw("<tr class=\"decision\" data-id=\"")
                .text(&request.id)
                .raw("\"><td>");
            approval_link(html, &request.id);
            html.raw("</td><td>").text(approval.status.as_str());
            html.raw("</td><td>").text(&request.server);
            html.raw("</td><td>").text(&request.tool);
            html.raw("</td><td>").text(&request.principal);
            html.raw("</td><td>")
                .text(approval.decided_by.as_deref().unwrap_or("-"));
            html.raw("</td><td>")
                .text(approval.decision_reason.as_deref().unwrap_or("-"));
            html.raw("</td><td>")
                .text(&optional_time(approval.decided_at_ms));
            html.raw("</td></tr>");
        }
        html.raw("</tbody></table>");
    })
}

/// One approval in full, with the decision forms when it is pending and the user may decide.
pub(crate) fn approval(session: &Session, approval: &Approval, notice: Option<Notice>) -> String {
    let request = &approval.request;
    page("Approval", Some(session), |html| {
        html.raw("<h1>Approval <code>")
            .text(&request.id)
            .raw("</code></h1>");
        write_notice(html, notice);
        html.raw("<dl><dt>Status</dt><dd id=\"status\">")
            .text(approval.status.as_str());
        for (label, value) in [
            ("<dt>Created</dt><dd>", rfc3339_utc(request.created_at_ms)),
            ("<dt>Expires</dt><dd>", rfc3339_utc(request.expires_at_ms)),
        ] {
            html.raw("</dd>").raw(label).text(&value);
        }
        for (label, value) in [
            ("<dt>Principal</dt><dd>", request.principal.as_str()),
            (
                "<dt>Tenant</dt><dd>",
                request.tenant.as_deref().unwrap_or("-"),
            ),
            ("<dt>Route</dt><dd>", request.route.as_str()),
            ("<dt>Server</dt><dd>", request.server.as_str()),
            ("<dt>Tool</dt><dd>", request.tool.as_str()),
            ("<dt>Request id</dt><dd>", request.request_id.as_str()),
            ("<dt>Held by</dt><dd>", request.instance.as_str()),
        ] {
            html.raw("</dd>").raw(label).text(value);
        }
        html.raw("</dd><dt>Reasons</dt><dd>");
        if request.reasons.is_empty() {
            html.raw("-");
        } else {
            html.raw("<ul>");
            for reason in &request.reasons {
                html.raw("<li>").text(reason).raw("</li>");
            }
            html.raw("</ul>");
        }
        html.raw("</dd>");
        if approval.status != ApprovalStatus::Pending {
            html.raw("<dt>Decided by</dt><dd>")
                .text(approval.decided_by.as_deref().unwrap_or("-"));
            html.raw("</dd><dt>Decided at</dt><dd>")
                .text(&optional_time(approval.decided_at_ms));
            html.raw("</dd><dt>Decision reason</dt><dd>")
                .text(approval.decision_reason.as_deref().unwrap_or("-"));
            html.raw("</dd>");
        }
        html.raw("</dl><h2>Arguments</h2><pre id=\"arguments\">")
            .text(&pretty(&request.arguments));
        html.raw("</pre><h2>Findings</h2><pre id=\"findings\">")
            .text(&pretty(&request.findings));
        html.raw("</pre>");
        if approval.status == ApprovalStatus::Pending && session.operator.may(AdminRole::Approver) {
            decision_forms(html, session, &request.id);
        }
    })
}

fn decision_forms(html: &mut Html, session: &Session, id: &str) {
    let target = path_segment(id);
    html.raw("<section class=\"decide\"><form method=\"post\" action=\"/console/approvals/")
        .text(&target)
        .raw("/approve\">");
    csrf_field(html, session);
    html.raw("<label>Reason (optional)<textarea name=\"reason\" maxlength=\"");
    html.number(MAX_REASON_CHARS as i64);
    html.raw(
        "\"></textarea></label><button type=\"submit\" id=\"approve\">Approve</button></form>\
         <form method=\"post\" action=\"/console/approvals/",
    )
    .text(&target)
    .raw("/deny\">");
    csrf_field(html, session);
    html.raw("<label>Reason (required)<textarea name=\"reason\" required maxlength=\"");
    html.number(MAX_REASON_CHARS as i64);
    html.raw(
        "\"></textarea></label><button type=\"submit\" id=\"deny\">Deny</button></form></section>",
    );
}

fn csrf_field(html: &mut Html, session: &Session) {
    html.raw("<input type=\"hidden\" name=\"csrf\" value=\"")
        .text(&session.csrf)
        .raw("\">");
}

fn approval_link(html: &mut Html, id: &str) {
    html.raw("<a href=\"/console/approvals/")
        .text(&path_segment(id))
        .raw("\">")
        .text(id)
        .raw("</a>");
}

fn write_notice(html: &mut Html, notice: Option<Notice>) {
    let Some(notice) = notice else { return };
    if notice.is_error() {
        html.raw("<p class=\"notice error\" role=\"alert\">");
    } else {
        html.raw("<p class=\"notice ok\" role=\"status\">");
    }
    html.text(notice.text()).raw("</p>");
}

fn optional_time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), rfc3339_utc)
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The frame around every page: head, style, the signed-in user and the sign-out form.
fn page(title: &'static str, session: Option<&Session>, body: impl FnOnce(&mut Html)) -> String {
    let mut html = Html::new();
    html.raw(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"same-origin\"><title>",
    )
    .raw(title)
    .raw(" · Portcullis</title>")
    .raw(STYLE)
    .raw("</head><body><header><a href=\"/console\">Portcullis approvals</a>");
    if let Some(session) = session {
        html.raw("<span class=\"who\">")
            .text(&session.operator.name)
            .raw(" (")
            .text(session.operator.role.as_str())
            .raw(")</span><form method=\"post\" action=\"/console/logout\">");
        csrf_field(&mut html, session);
        html.raw("<button type=\"submit\" id=\"logout\">Sign out</button></form>");
    }
    html.raw("</header><main>");
    body(&mut html);
    html.raw("</main></body></html>");
    html.finish()
}
