//! Turning configuration sources (a file, or the quick-start flags) into a validated
//! [`Snapshot`]. Every step can fail; none of them touches the running gateway, so a failed
//! reload leaves the old snapshot in place.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use portcullis_config::{
    Config, CredentialSource, PolicySource, RawConfig, RawUpstream, parse_yaml,
};
use portcullis_proxy::Snapshot;

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A YAML file, with an optional `--listen` override.
    File {
        path: PathBuf,
        listen: Option<String>,
    },
    /// Built from flags; never reloaded.
    Flags(Box<RawConfig>),
}

/// A loaded configuration and the fingerprint of everything it was read from (the file and
/// any API key files), to tell whether a reload would change anything.
pub(crate) struct Loaded {
    pub(crate) snapshot: Snapshot,
    pub(crate) fingerprint: u64,
}

/// A config file's text and its parsed (not yet validated) form, errors naming the file.
pub(crate) fn read_raw(path: &Path) -> anyhow::Result<(String, RawConfig)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let raw = parse_yaml(&text).with_context(|| format!("in {}", path.display()))?;
    Ok((text, raw))
}

impl Source {
    /// Reads, parses, validates and builds.
    pub(crate) fn load(&self) -> anyhow::Result<Loaded> {
        match self {
            Self::File { path, listen } => {
                let (text, mut raw) = read_raw(path)?;
                if listen.is_some() {
                    raw.listen.clone_from(listen);
                }
                let config =
                    Config::from_raw(&raw).with_context(|| format!("in {}", path.display()))?;
                let fingerprint = fingerprint(&text, &config);
                let snapshot =
                    Snapshot::build(config).with_context(|| format!("in {}", path.display()))?;
                Ok(Loaded {
                    snapshot,
                    fingerprint,
                })
            }
            Self::Flags(raw) => {
                let config = Config::from_raw(raw).context("in the command-line flags")?;
                let snapshot = Snapshot::build(config).context("in the command-line flags")?;
                Ok(Loaded {
                    snapshot,
                    fingerprint: 0,
                })
            }
        }
    }

    /// The file to watch, if any.
    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            Self::File { path, .. } => Some(path),
            Self::Flags(_) => None,
        }
    }

    /// A cheap fingerprint of the current inputs, without parsing.
    pub(crate) fn current_fingerprint(&self, config: &Config) -> Option<u64> {
        let path = self.path()?;
        let text = std::fs::read_to_string(path).ok()?;
        Some(fingerprint(&text, config))
    }
}

/// Hash of the config text plus the contents of the key files and policy bundle files the
/// *current* config names, so that rotating a mounted Secret or editing a policy ConfigMap
/// triggers a reload too.
fn fingerprint(text: &str, config: &Config) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    for upstream in &config.upstreams {
        if let Some(CredentialSource::File(path)) = &upstream.credential {
            std::fs::read(path).unwrap_or_default().hash(&mut hasher);
        }
    }
    for key in &config.auth.api_keys {
        if let portcullis_config::ApiKeySource::Secret(CredentialSource::File(path)) = &key.source {
            std::fs::read(path).unwrap_or_default().hash(&mut hasher);
        }
    }
    for issuer in &config.auth.jwt {
        // A rotated CA bundle; the token file is re-read on every key fetch anyway.
        if let Some(path) = &issuer.ca_file {
            std::fs::read(path).unwrap_or_default().hash(&mut hasher);
        }
    }
    if let PolicySource::Dir(dir) = &config.guard.policy {
        // The same reader the snapshot uses, so exactly the files that make the bundle count;
        // an unreadable bundle hashes its error, so fixing it triggers a reload too.
        match portcullis_proxy::read_bundle_dir(dir) {
            Ok(bundle) => {
                for module in bundle.modules() {
                    (&module.path, &module.source).hash(&mut hasher);
                }
                bundle.data().to_string().hash(&mut hasher);
            }
            Err(error) => error.to_string().hash(&mut hasher),
        }
    }
    hasher.finish()
}

/// Builds a configuration from `--upstream [MODELS=]URL` flags. A bare URL is the default
/// upstream (at most one); `MODELS` is a comma-separated list of names and patterns.
/// `--upstream-key-env` given once applies to every upstream, or once per upstream in order.
pub(crate) fn raw_from_flags(
    listen: Option<String>,
    upstreams: &[String],
    key_envs: &[String],
) -> anyhow::Result<RawConfig> {
    if upstreams.is_empty() {
        bail!("give --config FILE or at least one --upstream URL");
    }
    if !(key_envs.is_empty() || key_envs.len() == 1 || key_envs.len() == upstreams.len()) {
        bail!("--upstream-key-env must be given once (for all upstreams) or once per --upstream");
    }
    let mut raw = RawConfig {
        listen,
        ..RawConfig::default()
    };
    for (i, spec) in upstreams.iter().enumerate() {
        let (models, url) = match spec.split_once('=') {
            Some((models, url)) if !models.contains("://") => (
                models
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
                url,
            ),
            _ => (Vec::new(), spec.as_str()),
        };
        let name = format!("upstream-{}", i + 1);
        if models.is_empty() {
            if raw.default_upstream.is_some() {
                bail!(
                    "only one --upstream may be a bare URL (the default); give the others as MODELS=URL"
                );
            }
            raw.default_upstream = Some(name.clone());
        }
        let api_key_env = key_envs
            .get(i)
            .or(key_envs.first().filter(|_| key_envs.len() == 1))
            .cloned();
        raw.upstreams.push(RawUpstream {
            name,
            url: url.to_string(),
            models,
            api_key_env,
            ..RawUpstream::default()
        });
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_build_a_routed_config() {
        let raw = raw_from_flags(
            Some("127.0.0.1:0".into()),
            &[
                "http://127.0.0.1:11434/v1".into(),
                "gpt-4o,o?-mini=https://api.openai.com/v1".into(),
            ],
            &["LOCAL_KEY".into(), "OPENAI_KEY".into()],
        )
        .unwrap();
        let config = Config::from_raw(&raw).unwrap();
        assert_eq!(config.route_model("gpt-4o").map(|u| u.0), Some(1));
        assert_eq!(config.route_model("o3-mini").map(|u| u.0), Some(1));
        assert_eq!(config.route_model("llama3").map(|u| u.0), Some(0));
        assert_eq!(
            config.upstreams[1].credential,
            Some(CredentialSource::Env("OPENAI_KEY".into()))
        );
    }

    #[test]
    fn bad_flag_combinations_are_errors() {
        assert!(raw_from_flags(None, &[], &[]).is_err());
        assert!(raw_from_flags(None, &["http://a/v1".into(), "http://b/v1".into()], &[]).is_err());
        assert!(
            raw_from_flags(
                None,
                &[
                    "http://a/v1".into(),
                    "m=http://b/v1".into(),
                    "n=http://c/v1".into()
                ],
                &["A".into(), "B".into()]
            )
            .is_err()
        );
        let one_key = raw_from_flags(
            None,
            &["http://a/v1".into(), "m=http://b/v1".into()],
            &["K".into()],
        )
        .unwrap();
        assert!(
            one_key
                .upstreams
                .iter()
                .all(|u| u.api_key_env.as_deref() == Some("K"))
        );
    }
}
