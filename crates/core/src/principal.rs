//! Who is calling: the result of authentication, the subject of policy, rate limits and audit.

use std::collections::BTreeMap;
use std::sync::Arc;

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A configured API key.
    ApiKey,
    /// A JWT verified against an OIDC issuer's keys (a Kubernetes service-account token too).
    Jwt,
    /// No credential; allowed because the configuration says so.
    Anonymous,
}

impl AuthMethod {
    /// The name policy input and audit records use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Jwt => "jwt",
            Self::Anonymous => "anonymous",
        }
    }
}

/// A Kubernetes workload identity, from a verified service-account token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// The namespace.
    pub namespace: String,
    /// The service account's name.
    pub name: String,
    /// The service account's uid, when the token carries it.
    pub uid: Option<String>,
    /// The pod the token was bound to, when it was.
    pub pod: Option<String>,
}

/// An authenticated (or explicitly anonymous) caller.
///
/// Claims are kept as compact JSON text so this crate needs no JSON library; the proxy parses
/// them once when it builds the policy input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Stable id: the API key's name, the token's subject (`system:serviceaccount:NS:NAME` for a
    /// Kubernetes service account), or `anonymous`.
    pub id: String,
    /// Tenant, when one is known (an API key's, a claim's, or a service account's namespace).
    pub tenant: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// How the caller authenticated.
    pub auth: AuthMethod,
    /// The issuer that vouched for a JWT.
    pub issuer: Option<String>,
    /// The Kubernetes identity, for a service-account token.
    pub service_account: Option<ServiceAccount>,
    /// Selected token claims, name → compact JSON value text.
    pub claims: BTreeMap<String, String>,
}

impl Principal {
    /// The anonymous caller.
    pub fn anonymous() -> Self {
        Self {
            id: "anonymous".to_owned(),
            tenant: None,
            groups: Vec::new(),
            auth: AuthMethod::Anonymous,
            issuer: None,
            service_account: None,
            claims: BTreeMap::new(),
        }
    }

    /// A shared anonymous caller.
    pub fn anonymous_shared() -> Arc<Self> {
        Arc::new(Self::anonymous())
    }
}
