//! `GET /services/openapi.json`: the OpenAPI 3.1 document of the whole HTTP
//! surface, generated from the route table (every route, its access class,
//! parameters and body kind), served without authentication.

use crate::routes::{route_table, Access, Body, RouteSpec};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};

pub const OPENAPI_PATH: &str = "/services/openapi.json";

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    vec![RouteSpec::new(
        Method::GET,
        OPENAPI_PATH,
        Access::Public,
        "openapi.document",
        "This OpenAPI document",
        get(document_endpoint),
    )]
}

async fn document_endpoint(State(s): State<AppState>) -> Json<Value> {
    Json(document(&s.instance_url))
}

/// The error array every failure answers with.
fn error_schema() -> Value {
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "errorCode": {"type": "string"},
                "fields": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["message", "errorCode"]
        }
    })
}

fn path_parameter(name: &str) -> Value {
    let schema = match name {
        "version" => {
            json!({"type": "string", "pattern": "^v[0-9]{1,3}(\\.[0-9]{1,2})?$", "examples": ["v60.0"]})
        }
        "object" => json!({"type": "string", "minLength": 1, "examples": ["Invoice__c"]}),
        _ => json!({"type": "string", "minLength": 1}),
    };
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn field_input() -> Value {
    let types: Vec<&str> = mosaic_types::DataType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    json!({
        "type": "object",
        "properties": {
            "api_name": {"type": "string", "maxLength": 50},
            "label": {"type": "string"},
            "data_type": {"type": "string", "enum": types},
            "length": {"type": "integer"},
            "precision": {"type": "integer"},
            "scale": {"type": "integer"},
            "is_required": {"type": "boolean"},
            "is_unique": {"type": "boolean"},
            "is_indexed": {"type": "boolean"},
            "is_external_id": {"type": "boolean"},
            "default_value": {},
            "picklist_values": {"type": "array", "items": {"type": "object", "properties": {"value": {"type": "string"}}}}
        }
    })
}

/// Request bodies described field by field where that helps callers (and
/// the fuzzer get past the first validation); other JSON bodies are objects.
fn json_body_schema(operation: &str) -> Value {
    let record = json!({
        "type": "object",
        "properties": {"Name": {"type": "string"}, "Amount__c": {"type": "number"}, "Code__c": {"type": "string"}},
        "additionalProperties": true
    });
    match operation {
        "data.create" | "data.update" | "data.upsert" => record,
        "data.composite_create" | "data.composite_update" => json!({
            "type": "object",
            "properties": {"allOrNone": {"type": "boolean"}, "records": {"type": "array", "items": record}},
            "required": ["records"]
        }),
        "metadata.objects.create" | "metadata.objects.update" => json!({
            "type": "object",
            "properties": {
                "api_name": {"type": "string", "maxLength": 50},
                "label": {"type": "string"},
                "version": {"type": "integer"},
                "sharing_model": {"type": "string", "enum": ["private", "public_read", "public_read_write"]},
                "fields": {"type": "array", "items": field_input()}
            }
        }),
        "metadata.fields.create" | "metadata.fields.update" => field_input(),
        "metadata.formula.check" | "metadata.formula.evaluate" => json!({
            "type": "object",
            "properties": {
                "object": {"type": "string"},
                "expression": {"type": "string"},
                "return_type": {"type": "string"}
            },
            "required": ["expression"]
        }),
        "query.run_post" | "query.run_all_post" => json!({
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "required": ["q"]
        }),
        "operator.login" => json!({
            "type": "object",
            "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
            "required": ["username", "password"]
        }),
        "admin.organization.update" => json!({
            "type": "object",
            "properties": {
                "time_zone": {"type": ["string", "null"], "description": "IANA zone name, e.g. Europe/Paris"},
                "locale": {"type": ["string", "null"], "description": "e.g. en_US, de_DE"}
            },
            "additionalProperties": false
        }),
        "operator.maintenance.switch" => json!({
            "type": "object",
            "properties": {"enabled": {"type": "boolean"}, "message": {"type": "string"}},
            "required": ["enabled"]
        }),
        _ => json!({"type": "object"}),
    }
}

/// Query parameters a route cannot do without.
fn required_query(operation: &str, name: &str) -> bool {
    name == "q" && operation.starts_with("query.")
}

fn request_body(body: Body, operation: &str) -> Option<Value> {
    match body {
        Body::None => None,
        Body::Json => Some(json!({
            "required": true,
            "content": {"application/json": {"schema": json_body_schema(operation)}}
        })),
        Body::JsonArray => Some(json!({
            "required": true,
            "content": {"application/json": {"schema": {"type": "array"}}}
        })),
        Body::Csv => Some(json!({
            "required": true,
            "content": {"text/csv": {"schema": {"type": "string", "description": "CSV: a header row of field API names, then one record per line"}}}
        })),
        Body::Xml => Some(json!({
            "required": true,
            "content": {"text/xml": {"schema": {"type": "string", "description": "A SOAP 1.1 envelope of the partner API (login, logout)"}}}
        })),
        Body::Form => Some(json!({
            "required": true,
            "content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object",
                "properties": {
                    "grant_type": {"type": "string", "enum": ["password", "refresh_token", "client_credentials"]},
                    "username": {"type": "string"},
                    "password": {"type": "string"},
                    "refresh_token": {"type": "string"},
                    "client_id": {"type": "string"},
                    "client_secret": {"type": "string"},
                    "token": {"type": "string"}
                }
            }}}
        })),
    }
}

fn security(access: Access) -> Value {
    match access {
        Access::Public => json!([]),
        Access::Metrics => json!([{}, {"metricsToken": []}, {"operatorToken": []}]),
        Access::Operator => json!([{"operatorToken": []}, {"operatorHeader": []}]),
        Access::Session | Access::Permission | Access::TenantAdmin | Access::Customize => {
            json!([{"bearer": []}])
        }
    }
}

fn operation(r: &RouteSpec) -> Value {
    let mut params: Vec<Value> = r.params().into_iter().map(path_parameter).collect();
    params.extend(r.query.iter().map(|q| {
        json!({"name": q, "in": "query", "required": required_query(r.operation, q), "schema": {"type": "string"}})
    }));
    let mut op = json!({
        "operationId": r.operation,
        "summary": r.summary,
        "tags": [r.access.name()],
        "x-mosaic-access": r.access.name(),
        "security": security(r.access),
        "parameters": params,
        "responses": {
            "2XX": {"description": "Success"},
            "4XX": {"description": "The client's mistake, or access refused",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}}},
            "503": {"description": "Unavailable for now (maintenance, an open circuit breaker, load shedding); see Retry-After"}
        }
    });
    if let Some(b) = request_body(r.body, r.operation) {
        op["requestBody"] = b;
    }
    op
}

/// The OpenAPI document for a server reached at `server_url`.
pub fn document(server_url: &str) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in route_table() {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.as_str().to_ascii_lowercase()] = operation(&r);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Mosaic API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Salesforce-style REST API of a Mosaic server: OAuth, the Data API, queries, the metadata API, administration and the operator's endpoints. Each operation's x-mosaic-access says who may call it (docs/security.md)."
        },
        "servers": [{"url": server_url}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A tenant user's access token (mos_…)"},
                "operatorToken": {"type": "http", "scheme": "bearer", "description": "MOSAIC_OPERATOR_TOKEN or an operator session token (mop_…)"},
                "operatorHeader": {"type": "apiKey", "in": "header", "name": "X-Mosaic-Operator-Token"},
                "metricsToken": {"type": "http", "scheme": "bearer", "description": "MOSAIC_METRICS_TOKEN (read-only, /metrics only)"}
            },
            "schemas": {"Errors": error_schema()}
        },
        "paths": paths,
    })
}
