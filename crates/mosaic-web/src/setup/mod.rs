//! Setup: the administrators' console in the browser — the object
//! manager, the formula editor, layouts and list views, validation and
//! workflow rules, the outbox, security administration — and the
//! platform operators' view. Each area lives in its own module and adds
//! its routes here; every Setup page resolves its user through
//! [`setup_user`], so a standard user gets the 403 page before anything
//! is read, and no tenant user ever reaches the operator view.
//!
//! Like the end-user pages, Setup calls the runtime (`platform.meta`,
//! `platform.access`, …) as the signed-in user, never the REST API and
//! never SQL: every check the metadata and admin APIs make holds here too.

mod formulas;
mod layouts;
mod objects;
pub mod operator;
mod rules;
mod security;

use crate::pages::chrome;
use crate::session::{require_user, WebUser};
use crate::views::{forbidden_page, html, Chrome};
use crate::WebState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use mosaic_types::DataType;

/// Who may open a Setup area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Administrators, and users granted "Customize application":
    /// objects, fields, formulas, layouts, list views, rules, outbox.
    Customize,
    /// Administrators only: users, roles, groups, permission sets,
    /// sharing, connected apps, the audit log.
    Admin,
}

impl Need {
    pub fn allows(self, u: &WebUser) -> bool {
        let p = &u.caller.perms;
        match self {
            Need::Customize => p.is_admin() || p.can_customize_application(),
            Need::Admin => p.is_admin(),
        }
    }
}

/// A Setup area as the home page lists it.
pub struct Area {
    pub name: &'static str,
    pub href: &'static str,
    pub summary: &'static str,
    pub need: Need,
}

/// Every Setup area, in the order Setup's home lists them.
pub const AREAS: &[Area] = &[
    Area {
        name: "Object Manager",
        href: "/setup/objects",
        summary: "Objects, fields, relationships and pool usage.",
        need: Need::Customize,
    },
    Area {
        name: "Formula Editor",
        href: "/setup/formula",
        summary: "Write and check formulas with a field picker and the function reference.",
        need: Need::Customize,
    },
    Area {
        name: "Page Layouts",
        href: "/setup/layouts",
        summary: "Sections, fields and related lists of record pages.",
        need: Need::Customize,
    },
    Area {
        name: "List Views",
        href: "/setup/list-views",
        summary: "Filters, columns and sort of list views.",
        need: Need::Customize,
    },
    Area {
        name: "Validation Rules",
        href: "/setup/validation-rules",
        summary: "Conditions that stop a save, with their messages.",
        need: Need::Customize,
    },
    Area {
        name: "Workflow Rules",
        href: "/setup/workflow-rules",
        summary: "Criteria and actions: field updates, tasks, email alerts, outbound messages.",
        need: Need::Customize,
    },
    Area {
        name: "Outbox",
        href: "/setup/outbox",
        summary:
            "Dead letters to replay or discard, pending actions and field history of a record.",
        need: Need::Admin,
    },
    Area {
        name: "Users",
        href: "/setup/users",
        summary: "Create, deactivate, reset passwords, assign roles and permission sets.",
        need: Need::Admin,
    },
    Area {
        name: "Roles",
        href: "/setup/roles",
        summary: "The role hierarchy.",
        need: Need::Admin,
    },
    Area {
        name: "Public Groups",
        href: "/setup/groups",
        summary: "Groups of users, roles and other groups.",
        need: Need::Admin,
    },
    Area {
        name: "Permission Sets",
        href: "/setup/permission-sets",
        summary: "Object and field permissions.",
        need: Need::Admin,
    },
    Area {
        name: "Sharing Settings",
        href: "/setup/sharing",
        summary: "Organisation-wide defaults and sharing rules.",
        need: Need::Admin,
    },
    Area {
        name: "Connected Apps",
        href: "/setup/connected-apps",
        summary: "OAuth clients.",
        need: Need::Admin,
    },
    Area {
        name: "Audit Log",
        href: "/setup/audit-log",
        summary: "Who changed what in Setup.",
        need: Need::Admin,
    },
];

/// The signed-in user of a Setup page when they may open an area that
/// needs `need`: else the login redirect, or the 403 page (nothing of
/// the area is read or rendered).
pub async fn setup_user(
    s: &WebState,
    headers: &HeaderMap,
    uri: &Uri,
    need: Need,
) -> Result<WebUser, Response> {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/setup".into());
    let u = require_user(s, headers, &path).await?;
    if !need.allows(&u) {
        return Err(forbidden_page(match need {
            Need::Customize => {
                "Setup is for administrators and users allowed to customize the application."
            }
            Need::Admin => "This part of Setup is for administrators.",
        }));
    }
    Ok(u)
}

/// The chrome of a Setup page (object tabs, user menu, the Setup link).
pub async fn setup_chrome(s: &WebState, u: &WebUser) -> Chrome {
    chrome(s, u, None, "").await
}

/// A Setup area the user may open, as the home page shows it.
pub struct AreaLink {
    pub name: &'static str,
    pub href: &'static str,
    pub summary: &'static str,
}

#[derive(Template)]
#[template(path = "setup/home.html")]
pub struct SetupHome {
    pub chrome: Chrome,
    pub areas: Vec<AreaLink>,
}

async fn home(State(s): State<WebState>, headers: HeaderMap, uri: Uri) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let areas = AREAS
        .iter()
        .filter(|a| a.need.allows(&u))
        .map(|a| AreaLink {
            name: a.name,
            href: a.href,
            summary: a.summary,
        })
        .collect();
    html(&SetupHome {
        chrome: setup_chrome(&s, &u).await,
        areas,
    })
}

/// A field type by the label Setup shows for it, as Salesforce names it
/// (Setup never shows `multi_picklist`).
pub fn type_label(t: DataType) -> &'static str {
    match t {
        DataType::Text => "Text",
        DataType::Textarea => "Text Area",
        DataType::RichText => "Text Area (Rich)",
        DataType::LongText => "Text Area (Long)",
        DataType::Number => "Number",
        DataType::Currency => "Currency",
        DataType::Percent => "Percent",
        DataType::Date => "Date",
        DataType::Datetime => "Date/Time",
        DataType::Time => "Time",
        DataType::Boolean => "Checkbox",
        DataType::Picklist => "Picklist",
        DataType::MultiPicklist => "Picklist (Multi-Select)",
        DataType::Lookup => "Lookup",
        DataType::MasterDetail => "Master-Detail",
        DataType::Formula => "Formula",
        DataType::RollupSummary => "Roll-Up Summary",
        DataType::AutoNumber => "Auto Number",
        DataType::Email => "Email",
        DataType::Phone => "Phone",
        DataType::Url => "URL",
        DataType::EncryptedText => "Text (Encrypted)",
        DataType::Geolocation => "Geolocation",
    }
}

/// The manual-shares page of a record for a user who may share it (its
/// owner or an administrator; the runtime decides again on the page),
/// unless its object's records are shared through their master.
pub fn share_href(
    c: &mosaic_runtime::Caller,
    o: &mosaic_meta::model::ObjectMeta,
    id: &str,
    owner: &mosaic_types::Value,
) -> Option<String> {
    let owns = matches!(owner, mosaic_types::Value::Text(t) if *t == c.user_id);
    let shareable = o.def.sharing_model != mosaic_meta::model::SharingModel::ControlledByParent;
    (shareable && (owns || c.perms.is_admin()))
        .then(|| format!("/setup/shares/{}/{id}", o.api_name()))
}

/// Every Setup route (and the operator view's).
pub fn router() -> Router<WebState> {
    Router::new()
        .route("/setup", get(home))
        .merge(objects::routes())
        .merge(formulas::routes())
        .merge(layouts::routes())
        .merge(rules::routes())
        .merge(security::routes())
        .merge(operator::routes())
}
