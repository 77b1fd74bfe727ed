//! The validated MCP settings: which tool servers `/mcp/{server}` reaches, how, and the labels
//! of their tools.

use std::collections::BTreeMap;
use std::time::Duration;

use portcullis_core::ToolLabel;

use crate::ConfigError;
use crate::raw::RawMcp;

/// Most MCP servers.
const MAX_SERVERS: usize = 256;
const MIB: u64 = 1024 * 1024;

/// How an MCP upstream is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTransport {
    /// Streamable HTTP at this URL.
    Http(http::Uri),
    /// A child process speaking JSON-RPC over stdio, one per client session.
    Stdio {
        /// Program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Extra environment.
        env: BTreeMap<String, String>,
    },
}

/// One MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServer {
    /// Route and policy name.
    pub name: String,
    /// How it is reached.
    pub transport: McpTransport,
    /// Labels by tool name; `"*"` applies to all.
    tools: BTreeMap<String, Vec<ToolLabel>>,
}

impl McpServer {
    /// A server with no tool labels (the `mcp stdio` command's).
    pub fn new(name: impl Into<String>, transport: McpTransport) -> Self {
        Self {
            name: name.into(),
            transport,
            tools: BTreeMap::new(),
        }
    }

    /// The labels of tool `tool`: its own and those of `"*"`, sorted, without repeats.
    pub fn labels(&self, tool: &str) -> Vec<ToolLabel> {
        let mut out: Vec<ToolLabel> = self
            .tools
            .get(tool)
            .into_iter()
            .chain(self.tools.get("*"))
            .flatten()
            .copied()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Validated MCP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mcp {
    /// Servers in file order.
    pub servers: Vec<McpServer>,
    /// Largest message, either direction.
    pub max_message_bytes: u64,
    /// Most open sessions.
    pub max_sessions: usize,
    /// Idle sessions close after this.
    pub session_idle_timeout: Duration,
    /// Bound on one upstream answer.
    pub request_timeout: Duration,
}

impl Mcp {
    /// The server named `name`.
    pub fn server(&self, name: &str) -> Option<&McpServer> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// Settings with defaults and these servers (the `mcp stdio` command's).
    pub fn with_servers(servers: Vec<McpServer>) -> Self {
        Self {
            servers,
            max_message_bytes: 4 * MIB,
            max_sessions: 1024,
            session_idle_timeout: Duration::from_secs(1800),
            request_timeout: Duration::from_secs(60),
        }
    }
}

pub(crate) fn validate(errors: &mut Vec<ConfigError>, raw: &RawMcp) -> Mcp {
    let mut out = Mcp::with_servers(Vec::new());
    if let Some(bytes) = raw.max_message_bytes {
        if bytes == 0 || bytes > 256 * MIB {
            errors.push(ConfigError::new(
                "mcp.max_message_bytes",
                "must be between 1 and 268435456 bytes",
            ));
        } else {
            out.max_message_bytes = bytes;
        }
    }
    if let Some(sessions) = raw.max_sessions {
        if sessions == 0 || sessions > 1_000_000 {
            errors.push(ConfigError::new(
                "mcp.max_sessions",
                "must be between 1 and 1000000",
            ));
        } else {
            out.max_sessions = sessions as usize;
        }
    }
    for (path, value, slot) in [
        (
            "mcp.session_idle_timeout_ms",
            raw.session_idle_timeout_ms,
            &mut out.session_idle_timeout,
        ),
        (
            "mcp.request_timeout_ms",
            raw.request_timeout_ms,
            &mut out.request_timeout,
        ),
    ] {
        match value {
            Some(ms) if ms == 0 || ms > 24 * 60 * 60 * 1000 => {
                errors.push(ConfigError::new(path, "must be between 1 and 86400000 ms"))
            }
            Some(ms) => *slot = Duration::from_millis(ms),
            None => {}
        }
    }
    if raw.servers.len() > MAX_SERVERS {
        errors.push(ConfigError::new(
            "mcp.servers",
            format!("at most {MAX_SERVERS} servers"),
        ));
    }
    for (i, server) in raw.servers.iter().enumerate() {
        let at = format!("mcp.servers[{i}]");
        let name_ok = !server.name.is_empty()
            && server.name.len() <= 64
            && server
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            errors.push(ConfigError::new(
                format!("{at}.name"),
                "must be 1 to 64 letters, digits, `-` or `_`",
            ));
        }
        if raw.servers[..i].iter().any(|s| s.name == server.name) {
            errors.push(ConfigError::new(
                format!("{at}.name"),
                format!("`{}` is used twice", server.name),
            ));
        }
        let transport = match (&server.url, server.command.split_first()) {
            (Some(url), None) => match url.parse::<http::Uri>() {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.authority().is_some() =>
                {
                    Some(McpTransport::Http(uri))
                }
                _ => {
                    errors.push(ConfigError::new(
                        format!("{at}.url"),
                        "must be an http:// or https:// URL with a host",
                    ));
                    None
                }
            },
            (None, Some((program, args))) if !program.is_empty() => Some(McpTransport::Stdio {
                program: program.clone(),
                args: args.to_vec(),
                env: server.env.clone(),
            }),
            (Some(_), Some(_)) => {
                errors.push(ConfigError::new(
                    at.clone(),
                    "give `url` or `command`, not both",
                ));
                None
            }
            _ => {
                errors.push(ConfigError::new(
                    at.clone(),
                    "needs `url` (Streamable HTTP) or `command` (stdio)",
                ));
                None
            }
        };
        if !server.env.is_empty() && server.url.is_some() {
            errors.push(ConfigError::new(
                format!("{at}.env"),
                "only applies to `command` servers",
            ));
        }
        let mut tools = BTreeMap::new();
        for (tool, labels) in &server.tools {
            let mut parsed = Vec::new();
            for (j, label) in labels.iter().enumerate() {
                match ToolLabel::parse(label) {
                    Some(l) => parsed.push(l),
                    None => errors.push(ConfigError::new(
                        format!("{at}.tools.{tool}[{j}]"),
                        format!(
                            "unknown label `{label}`; use untrusted_source, private_data or external_sink"
                        ),
                    )),
                }
            }
            tools.insert(tool.clone(), parsed);
        }
        if let Some(transport) = transport {
            out.servers.push(McpServer {
                name: server.name.clone(),
                transport,
                tools,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::{Config, parse_yaml};

    fn config(yaml: &str) -> Result<Config, String> {
        let raw = parse_yaml(yaml).map_err(|e| e.to_string())?;
        Config::from_raw(&raw).map_err(|e| e.to_string())
    }

    #[test]
    fn servers_validate_with_their_labels() {
        let c = config(
            "mcp:\n  servers:\n    - name: web\n      url: http://127.0.0.1:9/mcp\n      tools:\n        fetch: [untrusted_source]\n        \"*\": [private_data]\n    - name: mail\n      command: [python, mail.py]\n      env: {A: b}\n",
        )
        .unwrap();
        let web = c.mcp.server("web").unwrap();
        assert_eq!(
            web.labels("fetch"),
            [
                portcullis_core::ToolLabel::UntrustedSource,
                portcullis_core::ToolLabel::PrivateData
            ]
        );
        assert_eq!(
            web.labels("other"),
            [portcullis_core::ToolLabel::PrivateData]
        );
        assert!(matches!(
            c.mcp.server("mail").unwrap().transport,
            super::McpTransport::Stdio { .. }
        ));
        assert!(c.upstreams.is_empty());
    }

    #[test]
    fn every_mistake_is_reported_with_its_path() {
        let err = config(
            "mcp:\n  max_sessions: 0\n  servers:\n    - name: \"a b\"\n      url: ftp://x\n    - name: c\n    - name: d\n      url: http://x/mcp\n      command: [x]\n    - name: e\n      url: http://x/mcp\n      tools:\n        t: [evil]\n",
        )
        .unwrap_err();
        for needle in [
            "mcp.max_sessions",
            "mcp.servers[0].name",
            "mcp.servers[0].url",
            "mcp.servers[1]: needs `url`",
            "mcp.servers[2]: give `url` or `command`",
            "mcp.servers[3].tools.t[0]",
        ] {
            assert!(err.contains(needle), "{needle} missing in {err}");
        }
    }
}
