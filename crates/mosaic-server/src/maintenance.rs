//! `GET|POST /services/admin/v1/maintenance`: the maintenance switch
//! (degradation level 4). Platform-wide, so an operator route: only an
//! operator credential turns it (no tenant role does), and each switch
//! lands in the platform audit log (the router's operator guard).

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::operator::Operator;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use mosaic_runtime::resilience::Maintenance;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let path = crate::resilience::MAINTENANCE_PATH;
    vec![
        RouteSpec::new(
            Method::GET,
            path,
            Access::Operator,
            "operator.maintenance.get",
            "The maintenance switch's state",
            get(show),
        ),
        RouteSpec::new(
            Method::POST,
            path,
            Access::Operator,
            "operator.maintenance.switch",
            "Turn maintenance mode on or off for every instance",
            post(switch),
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchInput {
    enabled: bool,
    #[serde(default)]
    message: Option<String>,
}

fn body(s: &AppState, m: &Maintenance) -> Value {
    json!({
        "enabled": m.enabled,
        "message": m.enabled.then(|| m.text()),
        "updated_at": m.updated_at.map(|t| mosaic_types::value::format_datetime(&t)),
        "updated_by": m.updated_by,
        "degradation_level": s.platform.degradation_level().level(),
    })
}

async fn show(State(s): State<AppState>) -> Json<Value> {
    Json(body(&s, &s.platform.maintenance()))
}

async fn switch(
    State(s): State<AppState>,
    Extension(op): Extension<Operator>,
    JsonBody(input): JsonBody<SwitchInput>,
) -> Result<Json<Value>, ApiError> {
    let m = s
        .platform
        .set_maintenance(input.enabled, input.message, &op.actor())
        .await?;
    Ok(Json(body(&s, &m)))
}
