//! `portcullis serve`: load the configuration, bind, serve, reload on SIGHUP and on file
//! change, drain on SIGTERM/SIGINT.
//!
//! Reload is all or nothing: read → parse → validate → build the snapshot (credentials, TLS
//! clients) → swap. Any failure keeps the running snapshot, is logged once per change and
//! counted as `portcullis_config_reload_total{result="error"}`. The listen address cannot
//! change while running; a reload that changes it is refused the same way.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portcullis_proxy::{AdminServer, ControlPlane, Gateway, Server, Services};
use portcullis_telemetry::{LogHandle, Metrics, ReloadResult};
use tokio::signal::unix::{SignalKind, signal};

use crate::load::{Source, raw_from_flags};

/// Arguments of `portcullis serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Configuration file (YAML); see docs/config.md.
    #[arg(long, short, env = "PORTCULLIS_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address `ip:port`, overriding the file's `listen`.
    #[arg(long)]
    listen: Option<String>,
    /// Upstream for quick use without a config file: `URL` (the default upstream) or
    /// `MODELS=URL` with comma-separated model names or patterns. Repeatable.
    #[arg(
        long = "upstream",
        value_name = "[MODELS=]URL",
        conflicts_with = "config"
    )]
    upstreams: Vec<String>,
    /// Environment variable holding the upstream API key: once for all upstreams, or once per
    /// `--upstream` in order.
    #[arg(long = "upstream-key-env", value_name = "VAR", requires = "upstreams")]
    key_envs: Vec<String>,
    /// How often the config file and API key files are checked for changes (0 = never).
    /// SIGHUP always reloads.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    watch_interval_ms: u64,
}

/// Runs the gateway until SIGTERM or SIGINT. `log` gets the trace exporter when
/// `telemetry.tracing` is enabled.
pub(crate) async fn run(args: ServeArgs, log: LogHandle) -> anyhow::Result<()> {
    let source = match args.config {
        Some(path) => Source::File {
            path,
            listen: args.listen,
        },
        None => Source::Flags(Box::new(raw_from_flags(
            args.listen,
            &args.upstreams,
            &args.key_envs,
        )?)),
    };
    let loaded = source.load()?;
    let metrics = Arc::new(Metrics::new());
    let services = Services::start(loaded.snapshot.config(), &metrics)
        .await
        .context("starting the store, audit log and approvals")?;
    if let Some(traces) = &services.traces {
        log.export_spans(traces.otlp().tracer().clone());
    }
    let admin = match (loaded.snapshot.config().admin.listen, &services.approvals) {
        (Some(addr), Some(hub)) => {
            let plane = ControlPlane::new(
                &loaded.snapshot.config().admin,
                hub.clone(),
                metrics.clone(),
            )
            .context("admin.tokens")?;
            let server = AdminServer::bind(addr, plane)
                .await
                .context("starting the admin listener")?;
            if let Some(addr) = server.local_addr() {
                tracing::info!(addr = %addr, "admin API and console listening");
            }
            Some(server)
        }
        (Some(_), None) => anyhow::bail!(
            "admin.listen is set but approvals are disabled (approvals.enabled: false); the admin API serves approvals"
        ),
        (None, _) => None,
    };
    let gateway = Gateway::with_services(loaded.snapshot, metrics, services);
    let server = Server::bind(gateway.clone())
        .await
        .context("starting the listener")?;
    if let Some(addr) = server.local_addr() {
        tracing::info!(addr = %addr, version = env!("CARGO_PKG_VERSION"), "listening");
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let admin_task = admin.map(|admin| {
        let mut stopped = stopped.clone();
        tokio::spawn(admin.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    });
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let interval = Duration::from_millis(args.watch_interval_ms);
    let watcher_gateway = gateway.clone();
    let watcher = tokio::spawn(async move {
        let mut fingerprint = loaded.fingerprint;
        let mut ticker = tokio::time::interval(if interval.is_zero() {
            Duration::MAX / 4
        } else {
            interval
        });
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = hangup.recv() => reload(&source, &watcher_gateway, &mut fingerprint, "sighup"),
                _ = ticker.tick(), if !interval.is_zero() => {
                    let current = source.current_fingerprint(watcher_gateway.snapshot().config());
                    if current.is_some_and(|c| c != fingerprint) {
                        reload(&source, &watcher_gateway, &mut fingerprint, "file_change");
                    }
                }
            }
        }
    });
    server
        .run(async move {
            shutdown_signal().await;
            stop.send_replace(true);
        })
        .await;
    watcher.abort();
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    gateway.services().shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// One reload attempt; see the module docs.
fn reload(source: &Source, gateway: &Gateway, fingerprint: &mut u64, trigger: &'static str) {
    let metrics = gateway.metrics();
    if source.path().is_none() {
        tracing::info!(trigger, "configuration comes from flags; nothing to reload");
        metrics.config_reloaded(ReloadResult::Unchanged);
        return;
    }
    let current = gateway.snapshot();
    // What the files held before this attempt read them: if they change while it reads (a
    // ConfigMap's `..data` swap), a failure is remembered for this content, not the next.
    let seen = source.current_fingerprint(current.config());
    match source.load() {
        Ok(loaded) if restart_only_change(loaded.snapshot.config(), current.config()).is_some() => {
            *fingerprint = loaded.fingerprint;
            metrics.config_reloaded(ReloadResult::Error);
            tracing::error!(
                trigger,
                section = restart_only_change(loaded.snapshot.config(), current.config()),
                "configuration reload refused: this section cannot change while running; restart to apply"
            );
        }
        Ok(loaded) => {
            *fingerprint = loaded.fingerprint;
            gateway.swap(loaded.snapshot);
            metrics.config_reloaded(ReloadResult::Applied);
            tracing::info!(trigger, "configuration reloaded");
        }
        Err(error) => {
            // Remember what failed so the poller logs it once, not every interval.
            if let Some(failed) = seen {
                *fingerprint = failed;
            }
            metrics.config_reloaded(ReloadResult::Error);
            tracing::error!(
                trigger,
                error = format!("{error:#}"),
                "configuration reload failed; keeping the previous configuration"
            );
        }
    }
}

/// The first section that differs and only applies at start (listeners, store, audit log,
/// approvals, telemetry, the rate-limit backend), if any. Rate-limit rules reload.
fn restart_only_change(
    new: &portcullis_config::Config,
    old: &portcullis_config::Config,
) -> Option<&'static str> {
    if new.listen != old.listen {
        Some("listen")
    } else if new.store != old.store {
        Some("store")
    } else if new.audit != old.audit {
        Some("audit")
    } else if new.approvals != old.approvals {
        Some("approvals")
    } else if new.admin != old.admin {
        Some("admin")
    } else if new.telemetry != old.telemetry {
        Some("telemetry")
    } else if new.rate_limits.backend != old.rate_limits.backend
        || new.rate_limits.max_keys != old.rate_limits.max_keys
    {
        Some("rate_limits.backend")
    } else {
        None
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot install the SIGTERM handler");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
    }
}
