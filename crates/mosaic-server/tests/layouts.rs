//! Page layouts and list views as metadata: the metadata API's CRUD, the
//! derived defaults, cleanup when a field goes, layouts never looser than
//! field-level security, Salesforce's shapes in the Data API, and ETags
//! that answer 304 and change with every metadata change.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ADMIN: &str = "/services/admin/v1";
const PASSWORD: &str = "correct-horse-battery";

async fn deal_and_lines(a: &Client) {
    a.create_object(json!({
        "api_name": "Deal__c", "label": "Deal", "plural_label": "Deals",
        "fields": [
            {"api_name": "Amount__c", "data_type": "currency", "precision": 12, "scale": 2, "is_required": true},
            {"api_name": "Stage__c", "data_type": "picklist", "picklist_values": [
                {"value": "Open", "is_default": true}, {"value": "Won"}, {"value": "Lost", "is_active": false}]},
            {"api_name": "Secret__c", "data_type": "text", "length": 40},
            {"api_name": "Notes__c", "data_type": "long_text", "length": 2000}
        ]
    }))
    .await;
    a.create_object(json!({
        "api_name": "Line__c", "label": "Line",
        "fields": [
            {"api_name": "Deal__c", "data_type": "master_detail", "lookup_object": "Deal__c"},
            {"api_name": "Qty__c", "data_type": "number", "precision": 6, "scale": 0}
        ]
    }))
    .await;
}

/// A standard user who reads and edits deals but cannot see `Secret__c`
/// and cannot edit `Stage__c`.
async fn standard_user(a: &Client) -> Client {
    let username = format!("std-{}@example.test", a.tenant_id);
    let (s, v) = a
        .post(
            &format!("{ADMIN}/users"),
            json!({"username": username, "password": PASSWORD, "profile": "standard"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let uid = v["id"].as_str().unwrap().to_string();
    let (s, ps) = a
        .post(
            &format!("{ADMIN}/permission-sets"),
            json!({"name": "Deals",
                   "object_permissions": [
                       {"object": "Deal__c", "read": true, "edit": true, "create": true},
                       {"object": "Line__c", "read": true}],
                   "field_permissions": [
                       {"object": "Deal__c", "field": "Amount__c", "read": true, "edit": true},
                       {"object": "Deal__c", "field": "Stage__c", "read": true},
                       {"object": "Deal__c", "field": "Notes__c", "read": true, "edit": true},
                       {"object": "Line__c", "field": "Deal__c", "read": true},
                       {"object": "Line__c", "field": "Qty__c", "read": true}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ps}");
    let (s, v) = a
        .post(
            &format!(
                "{ADMIN}/permission-sets/{}/assignments",
                ps["id"].as_str().unwrap()
            ),
            json!({"user_id": uid}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", a.base))
        .form(&[
            ("grant_type", "password"),
            ("username", username.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let t: Value = res.json().await.unwrap();
    a.with_token(t["access_token"].as_str().unwrap())
}

/// A GET with optional `If-None-Match`: status, ETag, Cache-Control.
async fn conditional(c: &Client, path: &str, tag: Option<&str>) -> (StatusCode, String, String) {
    let mut rb = c
        .http
        .get(format!("{}{path}", c.base))
        .bearer_auth(c.token.as_deref().unwrap());
    if let Some(t) = tag {
        rb = rb.header("if-none-match", t);
    }
    let res = rb.send().await.unwrap();
    let h = |n: &str| {
        res.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    (res.status(), h("etag"), h("cache-control"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layouts_are_metadata_with_a_derived_default() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    deal_and_lines(&a).await;

    // No layout yet: one is derived, with a related list per child.
    let (s, v) = a.get(&format!("{META}/objects/Deal__c/layouts")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let derived = &v["layouts"][0];
    assert_eq!(derived["id"], "default");
    let items: Vec<&str> = derived["sections"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        &items[..5],
        ["Name", "Amount__c", "Stage__c", "Secret__c", "Notes__c"]
    );
    assert_eq!(derived["related_lists"][0]["object"], "Line__c");
    assert_eq!(derived["related_lists"][0]["field"], "Deal__c");

    // Create one: sections, related list, compact layout.
    let (s, l) = a
        .post(
            &format!("{META}/objects/Deal__c/layouts"),
            json!({"name": "Sales", "sections": [
                    {"label": "Main", "columns": 2, "items": ["Name", {"field": "Amount__c"}, {"field": "Stage__c", "required": true}, "Secret__c"]},
                    {"label": "More", "columns": 1, "items": [{"field": "Notes__c", "read_only": true}]}],
                   "related_lists": [{"object": "Line__c", "columns": ["Name", "Qty__c"], "sort_field": "Qty__c", "sort_direction": "desc", "page_size": 3}],
                   "compact_fields": ["Name", "Amount__c"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    assert_eq!(l["is_default"], true, "the first layout is the default");
    let id = l["id"].as_str().unwrap().to_string();

    // Bad input names the field.
    for (body, field) in [
        (
            json!({"name": "X", "sections": [{"items": ["Nope__c"]}]}),
            "sections[0].items[0].field",
        ),
        (
            json!({"name": "X", "related_lists": [{"object": "Deal__c"}]}),
            "related_lists[0].object",
        ),
        (json!({"name": "Sales"}), "name"),
        (json!({"name": "X", "bogus": 1}), ""),
    ] {
        let (s, e) = a
            .post(&format!("{META}/objects/Deal__c/layouts"), body)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        if !field.is_empty() {
            assert_eq!(e[0]["fields"][0], field, "{e}");
        }
    }

    // Update with a stale version → 409; delete a field → it leaves the layout.
    let (s, e) = a
        .patch(
            &format!("{META}/objects/Deal__c/layouts/{id}"),
            json!({"name": "Renamed", "version": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let (s, _) = a
        .delete(&format!("{META}/objects/Deal__c/fields/Secret__c"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, l) = a.get(&format!("{META}/objects/Deal__c/layouts/{id}")).await;
    assert!(
        !l.to_string().contains("Secret__c"),
        "a deleted field leaves every layout: {l}"
    );
    // Deleting the child's field removes the parent's related list.
    let (s, _) = a
        .delete(&format!("{META}/objects/Line__c/fields/Qty__c"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, l) = a.get(&format!("{META}/objects/Deal__c/layouts/{id}")).await;
    assert_eq!(l["related_lists"][0]["columns"], json!(["Name"]), "{l}");
    let (s, _) = a
        .delete(&format!("{META}/objects/Line__c/fields/Deal__c"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, l) = a.get(&format!("{META}/objects/Deal__c/layouts/{id}")).await;
    assert_eq!(l["related_lists"], json!([]), "{l}");

    let (s, _) = a
        .delete(&format!("{META}/objects/Deal__c/layouts/{id}"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = a.get(&format!("{META}/objects/Deal__c/layouts/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_layouts_follow_field_level_security() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    deal_and_lines(&a).await;
    let (s, l) = a
        .post(
            &format!("{META}/objects/Deal__c/layouts"),
            json!({"name": "Sales", "sections": [{"label": "Main", "items": [
                "Name", {"field": "Amount__c", "required": false}, "Stage__c", "Secret__c", "Notes__c"]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    let u = standard_user(&a).await;
    let (s, v) = u
        .get(&format!("{DATA}/sobjects/Deal__c/describe/layouts"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let items: Vec<Value> = v["layouts"][0]["editLayoutSections"][0]["layoutRows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["layoutItems"].as_array().unwrap().clone())
        .collect();
    let item = |name: &str| {
        items
            .iter()
            .find(|i| i["layoutComponents"][0]["value"] == name)
            .cloned()
    };
    assert!(item("Secret__c").is_none(), "a hidden field is never there");
    assert_eq!(
        item("Amount__c").unwrap()["required"],
        true,
        "a required field stays required whatever the layout says"
    );
    assert_eq!(
        item("Stage__c").unwrap()["editableForUpdate"],
        false,
        "a field the user cannot edit is read-only"
    );
    assert_eq!(item("Notes__c").unwrap()["editableForUpdate"], true);
    assert!(!v.to_string().contains("Secret__c"), "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_views_in_salesforce_shapes() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    deal_and_lines(&a).await;
    for (name, amount, stage) in [
        ("Alpha", 10, "Open"),
        ("beta", 20, "Won"),
        ("Gamma", 30, "Open"),
    ] {
        a.create_record(
            "Deal__c",
            json!({"Name": name, "Amount__c": amount, "Stage__c": stage}),
        )
        .await;
    }
    let (s, v) = a
        .post(
            &format!("{META}/objects/Deal__c/listviews"),
            json!({"name": "Big_Open", "label": "Big open deals", "columns": ["Name", "Amount__c"],
                   "filter_criteria": {"logic": "1 AND 2", "conditions": [
                       {"field": "Stage__c", "operator": "equals", "value": "Open"},
                       {"field": "Amount__c", "operator": "greater_than", "value": 15}]},
                   "sort": [{"field": "Amount__c", "direction": "desc"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (s, e) = a
        .post(
            &format!("{META}/objects/Deal__c/listviews"),
            json!({"name": "Bad", "columns": ["Nope__c"]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e[0]["fields"][0], "columns[0]");

    let (s, v) = a.get(&format!("{DATA}/sobjects/Deal__c/listviews")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["sobjectType"], "Deal__c");
    assert_eq!(v["listviews"][0]["id"], "all");
    assert_eq!(v["listviews"][0]["label"], "All Deals");
    assert_eq!(v["listviews"][1]["developerName"], "Big_Open");
    assert_eq!(
        v["listviews"][1]["resultsUrl"],
        format!("{DATA}/sobjects/Deal__c/listviews/{id}/results")
    );

    let (s, r) = a
        .get(&format!("{DATA}/sobjects/Deal__c/listviews/{id}/results"))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["size"], 1, "{r}");
    assert_eq!(r["records"][0]["columns"][0]["fieldNameOrPath"], "Name");
    assert_eq!(r["records"][0]["columns"][0]["value"], "Gamma");
    assert_eq!(r["columns"][1]["sortDirection"], "descending");

    let (s, all) = a
        .get(&format!(
            "{DATA}/sobjects/Deal__c/listviews/all/results?limit=2"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(all["size"], 2);
    assert_eq!(all["done"], false);
    let (s, all2) = a
        .get(&format!(
            "{DATA}/sobjects/Deal__c/listviews/all/results?limit=2&offset=2"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{all2}");
    assert_eq!(all2["size"], 1);
    let (s, e) = a
        .get(&format!(
            "{DATA}/sobjects/Deal__c/listviews/all/results?limit=0"
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e[0]["fields"][0], "limit");

    let (s, d) = a
        .get(&format!("{DATA}/sobjects/Deal__c/listviews/{id}/describe"))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["whereCondition"]["conjunction"], "custom");
    assert_eq!(d["whereCondition"]["conditions"][0]["field"], "Stage__c");
    assert_eq!(d["orderBy"][0]["sortDirection"], "descending");
    assert!(d["query"]
        .as_str()
        .unwrap()
        .starts_with("SELECT Id, Name, Amount__c FROM Deal__c WHERE"));

    let (s, _) = a
        .get(&format!("{DATA}/sobjects/Deal__c/listviews/nope/results"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A field deleted leaves the view's columns and filters.
    let (s, _) = a
        .delete(&format!("{META}/objects/Deal__c/fields/Stage__c"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = a
        .get(&format!("{META}/objects/Deal__c/listviews/{id}"))
        .await;
    assert!(v["filter_criteria"].is_null(), "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_carry_etags_that_change_with_metadata() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    deal_and_lines(&a).await;
    let paths = [
        format!("{DATA}/sobjects/Deal__c/describe"),
        format!("{DATA}/sobjects/Deal__c/describe/layouts"),
        format!("{DATA}/sobjects/Deal__c/listviews"),
        format!("{DATA}/sobjects/Deal__c/listviews/all/describe"),
        format!("{DATA}/ui-api/object-info/Deal__c/picklist-values/012000000000000AAA/Stage__c"),
        format!("{META}/objects/Deal__c"),
        format!("{META}/objects/Deal__c/layouts"),
    ];
    let mut tags = Vec::new();
    for p in &paths {
        let (s, tag, cc) = conditional(&a, p, None).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert!(tag.starts_with('"') && tag.len() > 10, "{p}: {tag}");
        assert_eq!(cc, "public, no-cache", "{p}");
        let (s, again, _) = conditional(&a, p, Some(&tag)).await;
        assert_eq!(s, StatusCode::NOT_MODIFIED, "{p}");
        assert_eq!(again, tag);
        tags.push(tag);
    }
    // A metadata change: every definition that shows it gets a new tag.
    let (s, v) = a
        .patch(
            &format!("{META}/objects/Deal__c/fields/Stage__c"),
            json!({"picklist_values": [{"value": "Open", "is_default": true}, {"value": "Won"}, {"value": "Pending"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (p, tag) in paths.iter().zip(&tags) {
        if p.contains("/listviews") {
            continue; // the list views do not show picklist values
        }
        let (s, now, _) = conditional(&a, p, Some(tag)).await;
        assert_eq!(s, StatusCode::OK, "{p} must change with the picklist");
        assert_ne!(&now, tag, "{p}");
    }
    // The picklist endpoint: active values only, the default named.
    let (_, v) = a
        .get(&format!(
            "{DATA}/ui-api/object-info/Deal__c/picklist-values/012000000000000AAA/Stage__c"
        ))
        .await;
    assert_eq!(v["values"].as_array().unwrap().len(), 3);
    assert_eq!(v["defaultValue"]["value"], "Open");
    let (s, _) = a
        .get(&format!(
            "{DATA}/ui-api/object-info/Deal__c/picklist-values/012000000000000AAA/Amount__c"
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    server.stop().await;
}
