//! `portcullis approvals list|show|approve|deny`: a client of a running gateway's admin REST
//! API (docs/admin-api.md), for approvers at a terminal and for scripts (`--json`).
//!
//! The token comes from `PORTCULLIS_ADMIN_TOKEN` or `--token-file`, never from a flag (it would
//! end up in shell history and `ps`). Plain HTTP only: reach a remote admin listener through a
//! port-forward or tunnel. Text from the API is printed with control characters escaped, so a
//! tool name cannot drive the terminal.
//!
//! Exit codes: 0 done, 1 the API refused (the message on stderr), 2 usage or connection error.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis_proxy::body::read_limited;
use portcullis_proxy::rfc3339_utc;
use portcullis_store::Approval;
use serde_json::{Value, json};

/// Environment variable holding the admin token.
const TOKEN_ENV: &str = "PORTCULLIS_ADMIN_TOKEN";
/// Bound on one API call, connect to last byte.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response read (a list of 1000 approvals with their arguments).
const MAX_RESPONSE_BYTES: u64 = 32 << 20;

/// `portcullis approvals`.
#[derive(Debug, Args)]
pub(crate) struct ApprovalsArgs {
    /// Base URL of the admin listener (`admin.listen`).
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_ADMIN_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    url: String,
    /// File holding the admin token (default: the PORTCULLIS_ADMIN_TOKEN variable).
    #[arg(long, global = true, value_name = "PATH")]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: ApprovalsCommand,
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// List approvals, newest first.
    List {
        /// Only approvals with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one approval in full.
    Show {
        /// Approval id.
        id: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending approval: the held call proceeds.
    Approve {
        /// Approval id.
        id: String,
        /// Why (recorded with the decision).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a pending approval: the held call is refused.
    Deny {
        /// Approval id.
        id: String,
        /// Why (required; recorded with the decision).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusArg {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl StatusArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }
}

/// How a command failed, deciding the exit code.
enum Failure {
    /// The API answered with a 4xx refusal: exit 1.
    Refused(String),
    /// Usage, connection or server error: exit 2.
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::Error(error)
    }
}

pub(crate) fn run(args: ApprovalsArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(execute(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Error(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn execute(args: ApprovalsArgs) -> Result<(), Failure> {
    let token = read_token(args.token_file.as_deref())?;
    let api = AdminApi::new(&args.url, &token)?;
    drop(token);
    match args.command {
        ApprovalsCommand::List {
            status,
            limit,
            json,
        } => {
            let mut path = format!("/admin/v1/approvals?limit={limit}");
            if let Some(status) = status {
                let _ = write!(path, "&status={}", status.as_str());
            }
            let value = api.call(Method::GET, &path, None).await?;
            if json {
                print_json(&value)?;
            } else {
                let list: Vec<Approval> = serde_json::from_value(value["data"].clone())
                    .context("the API's list is not a list of approvals")?;
                print!("{}", table(&list));
            }
        }
        ApprovalsCommand::Show { id, json } => {
            let value = api.call(Method::GET, &approval_path(&id, ""), None).await?;
            if json {
                print_json(&value)?;
            } else {
                let approval: Approval =
                    serde_json::from_value(value).context("the API's answer is not an approval")?;
                print!("{}", block(&approval));
            }
        }
        ApprovalsCommand::Approve { id, reason } => {
            let body = reason.map(|reason| json!({ "reason": reason }));
            let value = api
                .call(Method::POST, &approval_path(&id, "/approve"), body)
                .await?;
            print_decision(&value)?;
        }
        ApprovalsCommand::Deny { id, reason } => {
            let body = Some(json!({ "reason": reason }));
            let value = api
                .call(Method::POST, &approval_path(&id, "/deny"), body)
                .await?;
            print_decision(&value)?;
        }
    }
    Ok(())
}

/// The token from `--token-file` or the environment, trimmed.
fn read_token(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?,
        None => std::env::var(TOKEN_ENV)
            .map_err(|_| anyhow!("set {TOKEN_ENV} or pass --token-file PATH"))?,
    };
    let token = token.trim();
    if token.is_empty() {
        bail!("the admin token is empty");
    }
    Ok(token.to_owned())
}

/// The admin API of one gateway.
struct AdminApi {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    authorization: HeaderValue,
}

impl AdminApi {
    fn new(url: &str, token: &str) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("--url {url:?} is not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => bail!(
                "--url: https is not supported; reach the admin listener over http (a port-forward or tunnel)"
            ),
            _ => bail!("--url {url:?} must start with http://"),
        }
        if uri.authority().is_none() {
            bail!("--url {url:?} has no host");
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow!("the admin token has characters not allowed in a header"))?;
        authorization.set_sensitive(true);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: url.trim_end_matches('/').to_owned(),
            authorization,
        })
    }

    /// One call; the JSON of a 2xx answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header(AUTHORIZATION, self.authorization.clone());
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = request
            .body(Full::new(body))
            .with_context(|| format!("building a request to {url}"))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = read_limited(response.into_body(), MAX_RESPONSE_BYTES, CALL_TIMEOUT, None)
                .await
                .map_err(|error| anyhow!("reading the response: {error:?}"))?;
            anyhow::Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("{url}: no answer within {} s", CALL_TIMEOUT.as_secs()))?
            .with_context(|| format!("calling {url}"))?;
        let value: Value = serde_json::from_slice(&body).map_err(|_| {
            anyhow!(
                "{url}: HTTP {} with a body that is not JSON",
                status.as_u16()
            )
        })?;
        if status.is_success() {
            return Ok(value);
        }
        let message = value
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        let code = value
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let text = format!("{} ({code}, HTTP {})", clean(message), status.as_u16());
        if status.is_client_error() {
            Err(Failure::Refused(text))
        } else {
            Err(Failure::Error(anyhow!(text)))
        }
    }
}

/// `/admin/v1/approvals/{id}{suffix}` with the id percent-encoded.
fn approval_path(id: &str, suffix: &str) -> String {
    let mut path = String::from("/admin/v1/approvals/");
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            path.push(char::from(byte));
        } else {
            let _ = write!(path, "%{byte:02X}");
        }
    }
    path.push_str(suffix);
    path
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_decision(value: &Value) -> anyhow::Result<()> {
    let approval: Approval =
        serde_json::from_value(value.clone()).context("the API's answer is not an approval")?;
    println!(
        "{} {} by {}",
        clean(&approval.request.id),
        clean(approval.status.as_str()),
        clean(approval.decided_by.as_deref().unwrap_or("-"))
    );
    Ok(())
}

/// The list as an aligned table.
fn table(list: &[Approval]) -> String {
    if list.is_empty() {
        return "no approvals\n".to_owned();
    }
    let header = [
        "ID",
        "STATUS",
        "CREATED",
        "EXPIRES",
        "PRINCIPAL",
        "SERVER",
        "TOOL",
        "DECIDED BY",
    ];
    let rows: Vec<[String; 8]> = list
        .iter()
        .map(|a| {
            [
                clean(&a.request.id),
                clean(a.status.as_str()),
                rfc3339_utc(a.request.created_at_ms),
                rfc3339_utc(a.request.expires_at_ms),
                clean(&a.request.principal),
                clean(&a.request.server),
                clean(&a.request.tool),
                clean(a.decided_by.as_deref().unwrap_or("-")),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

/// One approval as a block of `label: value` lines.
fn block(a: &Approval) -> String {
    let mut out = String::new();
    let mut field = |label: &str, value: &str| {
        let line = format!("{label:<16}{value}");
        let _ = writeln!(out, "{}", line.trim_end());
    };
    field("id:", &clean(&a.request.id));
    field("status:", &clean(a.status.as_str()));
    field("created:", &rfc3339_utc(a.request.created_at_ms));
    field("expires:", &rfc3339_utc(a.request.expires_at_ms));
    field("principal:", &clean(&a.request.principal));
    field(
        "tenant:",
        &clean(a.request.tenant.as_deref().unwrap_or("-")),
    );
    field("route:", &clean(&a.request.route));
    field("server:", &clean(&a.request.server));
    field("tool:", &clean(&a.request.tool));
    field("request id:", &clean(&a.request.request_id));
    field("held by:", &clean(&a.request.instance));
    if let Some(by) = &a.decided_by {
        field("decided by:", &clean(by));
    }
    if let Some(at) = a.decided_at_ms {
        field("decided at:", &rfc3339_utc(at));
    }
    if let Some(reason) = &a.decision_reason {
        field("decision reason:", &clean(reason));
    }
    if a.request.reasons.is_empty() {
        field("reasons:", "-");
    }
    for (i, reason) in a.request.reasons.iter().enumerate() {
        field(
            if i == 0 { "reasons:" } else { "" },
            &format!("- {}", clean(reason)),
        );
    }
    for (label, value) in [
        ("arguments:", &a.request.arguments),
        ("findings:", &a.request.findings),
    ] {
        let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
        field(label, "");
        for line in pretty.lines() {
            field("", &clean(line));
        }
    }
    out
}

/// Text from the API with control characters (newlines, escape sequences, C1 controls)
/// shown escaped, so it cannot move the cursor or restyle the terminal.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use portcullis_store::{ApprovalStatus, NewApproval};

    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            clean("a\u{1b}[31mred\nb\u{9b}c"),
            "a\\u{1b}[31mred\\nb\\u{9b}c"
        );
        assert_eq!(clean("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn ids_are_percent_encoded() {
        assert_eq!(
            approval_path("apr_0f", "/deny"),
            "/admin/v1/approvals/apr_0f/deny"
        );
        assert_eq!(approval_path("a/b?c", ""), "/admin/v1/approvals/a%2Fb%3Fc");
    }

    /// An approval with these values and empty others.
    fn approval(id: &str, status: ApprovalStatus, tool: &str) -> Approval {
        Approval {
            request: NewApproval {
                id: id.into(),
                created_at_ms: 0,
                expires_at_ms: 0,
                request_id: String::new(),
                principal: String::new(),
                tenant: None,
                route: String::new(),
                server: String::new(),
                tool: tool.into(),
                arguments: Value::Null,
                findings: Value::Null,
                reasons: Vec::new(),
                instance: String::new(),
            },
            status,
            decided_by: None,
            decided_at_ms: None,
            decision_reason: None,
        }
    }

    #[test]
    fn blocks_show_every_field() {
        let mut approval = approval("apr_1", ApprovalStatus::Denied, "send\u{1b}[2J");
        approval.request.arguments = serde_json::json!({"to": "a@b"});
        approval.request.reasons = vec!["one".into(), "two".into()];
        approval.decided_by = Some("alice".into());
        approval.decided_at_ms = Some(0);
        approval.decision_reason = Some("no".into());
        let text = block(&approval);
        assert!(
            text.starts_with("id:             apr_1\nstatus:         denied\n"),
            "{text}"
        );
        assert!(text.contains("tool:           send\\u{1b}[2J\n"), "{text}");
        assert!(
            text.contains("reasons:        - one\n                - two\n"),
            "{text}"
        );
        assert!(text.contains("decided by:     alice\n"), "{text}");
        assert!(
            text.contains("arguments:\n                {\n                  \"to\": \"a@b\"\n"),
            "{text}"
        );
        assert!(!text.lines().any(|line| line.ends_with(' ')), "{text}");
    }

    #[test]
    fn tables_align_their_columns() {
        let list = vec![
            approval("apr_1", ApprovalStatus::Pending, "send_email"),
            Approval {
                decided_by: Some("alice".into()),
                ..approval("apr_22", ApprovalStatus::Denied, "x")
            },
        ];
        let text = table(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID      STATUS   CREATED"), "{text}");
        assert!(
            lines[2].starts_with("apr_22  denied   1970-01-01T00:00:00Z"),
            "{text}"
        );
        assert!(lines[2].ends_with("alice"), "{text}");
        assert_eq!(table(&[]), "no approvals\n");
    }
}
