//! The validated guard and policy settings: which routes are inspected, how a deny is answered,
//! where the policy bundle comes from and what happens when it cannot decide.

use std::path::PathBuf;

use portcullis_core::OnError;

use crate::ConfigError;
use crate::raw::{RawDenyWith, RawGuard, RawOnError, RawOverflow, RawPolicy, RawRouteGuard};

/// The guarded routes, by the names `guard.routes` is keyed with (the routes' metric labels).
/// `mcp` covers every `/mcp/{server}` route (`enabled` and `shadow` apply there; the others
/// are for the OpenAI routes).
pub const GUARD_ROUTES: [&str; 4] = ["chat_completions", "completions", "embeddings", "mcp"];

/// Default `guard.scan_cache_bytes`: 8 MiB.
const DEFAULT_SCAN_CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// Largest `guard.scan_cache_bytes`: 1 GiB.
const MAX_SCAN_CACHE_BYTES: u64 = 1024 * 1024 * 1024;

/// Most hosts in `guard.allowed_link_hosts`.
const MAX_LINK_HOSTS: usize = 10_000;

/// How a denied exchange is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyWith {
    /// An OpenAI-shaped error (status 400).
    Error,
    /// A synthetic refusal completion with `finish_reason: content_filter`.
    Refusal,
}

/// What a stream does when a possible finding outgrows the hold-back window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOverflow {
    /// End the stream.
    Block,
    /// Release the held text.
    Release,
}

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// The bundle embedded in the binary.
    Embedded,
    /// A bundle directory, read by the caller.
    Dir(PathBuf),
}

/// The guard settings of one route, overrides applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteGuard {
    /// Inspect and decide at all.
    pub enabled: bool,
    /// Decide and record, never enforce.
    pub shadow: bool,
    /// How a deny is answered.
    pub deny_with: DenyWith,
    /// Whether reasons reach the client.
    pub expose_reasons: bool,
    /// Insert and watch for a canary.
    pub canary: bool,
}

/// Validated guard and policy settings.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The policy bundle.
    pub policy: PolicySource,
    /// What an exchange gets when the policy cannot decide.
    pub on_error: OnError,
    /// Hosts links in answers may point at.
    pub allowed_link_hosts: Vec<String>,
    /// Stream window overflow.
    pub stream_overflow: StreamOverflow,
    /// Memory for remembered scans of repeated texts; 0 = no cache.
    pub scan_cache_bytes: u64,
    /// Per route, in [`GUARD_ROUTES`] order.
    routes: [RouteGuard; 4],
}

impl Guard {
    /// The settings of the route with this label; a label that is not a guarded route gets the
    /// first route's (all routes share the defaults unless overridden).
    pub fn route(&self, label: &str) -> RouteGuard {
        let index = GUARD_ROUTES.iter().position(|r| *r == label).unwrap_or(0);
        self.routes[index]
    }
}

pub(crate) fn validate(
    errors: &mut Vec<ConfigError>,
    policy: &RawPolicy,
    guard: &RawGuard,
) -> Guard {
    let source = match policy.bundle.as_deref() {
        None => PolicySource::Embedded,
        Some("") => {
            errors.push(ConfigError::new("policy.bundle", "must not be empty"));
            PolicySource::Embedded
        }
        Some(dir) => PolicySource::Dir(PathBuf::from(dir)),
    };
    let on_error = RawOnError::fail_mode(policy.on_error);
    let base = RouteGuard {
        enabled: guard.enabled.unwrap_or(true),
        shadow: guard.shadow.unwrap_or(false),
        deny_with: deny_with(guard.deny_with).unwrap_or(DenyWith::Error),
        expose_reasons: guard.expose_reasons.unwrap_or(true),
        canary: guard.canary.unwrap_or(false),
    };
    let mut routes = [base; 4];
    for (name, raw) in &guard.routes {
        match GUARD_ROUTES.iter().position(|r| r == name) {
            Some(index) => routes[index] = overridden(base, raw),
            None => errors.push(ConfigError::new(
                format!("guard.routes.{name}"),
                format!(
                    "not a guarded route; use one of {}",
                    GUARD_ROUTES.join(", ")
                ),
            )),
        }
    }
    if guard.allowed_link_hosts.len() > MAX_LINK_HOSTS {
        errors.push(ConfigError::new(
            "guard.allowed_link_hosts",
            format!("at most {MAX_LINK_HOSTS} hosts"),
        ));
    }
    for (i, host) in guard.allowed_link_hosts.iter().enumerate() {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        let valid = !bare.is_empty()
            && bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !valid {
            errors.push(ConfigError::new(
                format!("guard.allowed_link_hosts[{i}]"),
                "must be a host name, optionally starting with `*.`",
            ));
        }
    }
    let scan_cache_bytes = guard.scan_cache_bytes.unwrap_or(DEFAULT_SCAN_CACHE_BYTES);
    if scan_cache_bytes > MAX_SCAN_CACHE_BYTES {
        errors.push(ConfigError::new(
            "guard.scan_cache_bytes",
            format!("must be at most {MAX_SCAN_CACHE_BYTES} bytes (0 turns the cache off)"),
        ));
    }
    Guard {
        policy: source,
        scan_cache_bytes: scan_cache_bytes.min(MAX_SCAN_CACHE_BYTES),
        on_error,
        allowed_link_hosts: guard.allowed_link_hosts.clone(),
        stream_overflow: match guard.stream_overflow {
            None | Some(RawOverflow::Block) => StreamOverflow::Block,
            Some(RawOverflow::Release) => StreamOverflow::Release,
        },
        routes,
    }
}

fn deny_with(raw: Option<RawDenyWith>) -> Option<DenyWith> {
    raw.map(|d| match d {
        RawDenyWith::Error => DenyWith::Error,
        RawDenyWith::Refusal => DenyWith::Refusal,
    })
}

fn overridden(base: RouteGuard, raw: &RawRouteGuard) -> RouteGuard {
    RouteGuard {
        enabled: raw.enabled.unwrap_or(base.enabled),
        shadow: raw.shadow.unwrap_or(base.shadow),
        deny_with: deny_with(raw.deny_with).unwrap_or(base.deny_with),
        expose_reasons: raw.expose_reasons.unwrap_or(base.expose_reasons),
        canary: raw.canary.unwrap_or(base.canary),
    }
}
