//! The admin listener's metric family: requests answered, by surface (REST API or console)
//! and status. Both labels are closed sets; a refused sign-in or token shows as status 401.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Metrics;

/// Which part of the admin listener answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminSurface {
    /// The REST API (`/admin/v1`), and unknown paths.
    Api,
    /// The web console (`/console`).
    Console,
}

impl AdminSurface {
    fn label(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Console => "console",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdminLabels {
    surface: &'static str,
    status: &'static str,
}

/// The admin family, registered with the rest.
#[derive(Debug)]
pub(super) struct AdminMetrics {
    requests: Family<AdminLabels, Counter>,
}

impl AdminMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let requests = Family::<AdminLabels, Counter>::default();
        registry.register(
            "admin_requests",
            "Admin listener requests answered, by surface (api, console) and status",
            requests.clone(),
        );
        Self { requests }
    }
}

/// The status label: the codes the admin listener sends, anything else as `other`.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        303 => "303",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        415 => "415",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

impl Metrics {
    /// Counts one admin request answered with `status`.
    pub fn admin_request(&self, surface: AdminSurface, status: u16) {
        self.admin
            .requests
            .get_or_create(&AdminLabels {
                surface: surface.label(),
                status: status_label(status),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_requests_are_counted_with_closed_labels() {
        let metrics = Metrics::new();
        metrics.admin_request(AdminSurface::Api, 401);
        metrics.admin_request(AdminSurface::Console, 299);
        let text = metrics.encode();
        assert!(
            text.contains(r#"portcullis_admin_requests_total{surface="api",status="401"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"surface="console",status="other"} 1"#),
            "{text}"
        );
    }
}
