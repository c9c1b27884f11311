//! The route table: every route of the HTTP surface with its method, path
//! template, who may call it ([`Access`]) and its documentation. The router
//! is built from this table, the OpenAPI document is generated from it, and
//! the authorization matrix test walks it — so a route cannot exist without
//! a classification.

use crate::AppState;
use axum::http::Method;
use axum::routing::MethodRouter;

/// Who may call a route. The operator and metrics guards are applied by the
/// router from this classification; the others by the handlers' extractors
/// (and proven by the authorization matrix over this table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Anyone: health, OAuth, operator login, the OpenAPI document.
    Public,
    /// `/metrics`: loopback peers while `MOSAIC_METRICS_TOKEN` is unset,
    /// else that token; an operator credential always.
    Metrics,
    /// Any active user of a tenant; answers are limited to what the user
    /// may see (describe global, API versions, queries through sharing).
    Session,
    /// A user of the tenant with the permission the route needs on the
    /// object or record it names (object permissions, field-level security,
    /// sharing); others get 403 or 404.
    Permission,
    /// A system administrator of the tenant (the admin API: users,
    /// permissions, sharing, connected apps, dead letters).
    TenantAdmin,
    /// A system administrator, or a user of the tenant whose permission
    /// sets grant "Customize Application": the routes that build the
    /// application (the metadata API, the formula editor, the AI builders).
    Customize,
    /// A platform operator: `MOSAIC_OPERATOR_TOKEN` or an operator session;
    /// never a tenant role. Every change lands in the platform audit log.
    Operator,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Metrics => "metrics",
            Access::Session => "session",
            Access::Permission => "permission",
            Access::TenantAdmin => "tenant_admin",
            Access::Customize => "customize_application",
            Access::Operator => "operator",
        }
    }
}

/// What a route's request body is (for the OpenAPI document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    /// A JSON object.
    Json,
    /// A JSON array (the composite batches).
    JsonArray,
    /// `application/x-www-form-urlencoded` (OAuth).
    Form,
    /// A SOAP envelope (`text/xml`).
    Xml,
    /// CSV data (`text/csv`): the Bulk API's uploads.
    Csv,
}

/// One route: method, path template (axum syntax, `{param}`), access,
/// documentation and handler.
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    /// Unique operation id (`data.create`); also the action name of
    /// operator changes in the platform audit log.
    pub operation: &'static str,
    pub summary: &'static str,
    pub body: Body,
    /// Query parameters the route reads.
    pub query: &'static [&'static str],
    /// Changes through this route land in the tenant's audit log (the
    /// metadata API).
    pub(crate) tenant_audit: bool,
    pub(crate) handler: MethodRouter<AppState>,
}

impl std::fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSpec")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("access", &self.access)
            .field("operation", &self.operation)
            .finish()
    }
}

impl RouteSpec {
    /// A route without body or query parameters; `handler` answers `method`
    /// only (`get(h)`, `post(h)`, …).
    pub(crate) fn new(
        method: Method,
        path: &'static str,
        access: Access,
        operation: &'static str,
        summary: &'static str,
        handler: MethodRouter<AppState>,
    ) -> RouteSpec {
        let body = if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            Body::Json
        } else {
            Body::None
        };
        RouteSpec {
            method,
            path,
            access,
            operation,
            summary,
            body,
            query: &[],
            tenant_audit: false,
            handler,
        }
    }

    pub(crate) fn body(mut self, body: Body) -> RouteSpec {
        self.body = body;
        self
    }

    /// Successful changes are written to the tenant's audit log.
    pub(crate) fn audited(mut self) -> RouteSpec {
        self.tenant_audit = true;
        self
    }

    pub(crate) fn query(mut self, params: &'static [&'static str]) -> RouteSpec {
        self.query = params;
        self
    }

    /// The path's parameters, in order (`{object}` → `object`).
    pub fn params(&self) -> Vec<&'static str> {
        path_params(self.path)
    }
}

/// The `{name}` parameters of a path template, in order.
pub fn path_params(path: &'static str) -> Vec<&'static str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// Shorthands for the modules' tables.
pub(crate) mod build {
    pub use super::{Access, Body, RouteSpec};
    pub use axum::http::Method;
    pub use axum::routing::{delete, get, patch, post, put};
}

/// Every route of the HTTP surface.
pub fn route_table() -> Vec<RouteSpec> {
    let mut all = Vec::new();
    all.extend(crate::health::routes());
    all.extend(crate::observe::routes());
    all.extend(crate::openapi::routes());
    all.extend(crate::operator::routes());
    all.extend(crate::oauth::routes());
    all.extend(crate::soap::routes());
    all.extend(crate::identity::routes());
    all.extend(crate::status::routes());
    all.extend(crate::maintenance::routes());
    all.extend(crate::moves::routes());
    all.extend(crate::cache::routes());
    all.extend(crate::admin::routes());
    all.extend(crate::accounts::routes());
    all.extend(crate::metadata::routes());
    all.extend(crate::views::metadata_routes());
    all.extend(crate::formula::routes());
    all.extend(crate::automation::metadata_routes());
    all.extend(crate::data::routes());
    all.extend(crate::files::routes());
    all.extend(crate::recycle::routes());
    all.extend(crate::recycle::metadata_routes());
    all.extend(crate::views::data_routes());
    all.extend(crate::query::routes());
    all.extend(crate::composite::routes());
    all.extend(crate::rest::routes());
    all.extend(crate::automation::routes());
    all.extend(crate::sharing::routes());
    all.extend(crate::ai::routes());
    all.extend(crate::bulk::routes());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_unique_and_named_once() {
        let table = route_table();
        let mut seen = std::collections::HashSet::new();
        let mut ops = std::collections::HashSet::new();
        for r in &table {
            assert!(
                seen.insert((r.method.clone(), r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            assert!(ops.insert(r.operation), "operation {} twice", r.operation);
            assert!(
                !r.summary.is_empty(),
                "{} {} has no summary",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn path_parameters_in_order() {
        assert_eq!(
            path_params("/services/data/{version}/sobjects/{object}/{id}"),
            ["version", "object", "id"]
        );
        assert!(path_params("/healthz").is_empty());
    }
}
