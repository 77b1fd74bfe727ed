//! MCP tool labels: what a tool does with data, as the configuration declares it.

/// How the configuration labels a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ToolLabel {
    /// Returns content from outside (web pages, e-mail, tickets): may carry injections.
    UntrustedSource,
    /// Reads private data (files, databases, customer records).
    PrivateData,
    /// Sends data out (e-mail, HTTP posts, messages).
    ExternalSink,
}

impl ToolLabel {
    /// The config and policy name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UntrustedSource => "untrusted_source",
            Self::PrivateData => "private_data",
            Self::ExternalSink => "external_sink",
        }
    }

    /// Parses a config name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "untrusted_source" => Self::UntrustedSource,
            "private_data" => Self::PrivateData,
            "external_sink" => Self::ExternalSink,
            _ => return None,
        })
    }
}
