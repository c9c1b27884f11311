//! Relationship names as Salesforce has them: a lookup `Acct__c` is reached
//! as `Acct__r` from the child; the `relationship_name` chosen for the field
//! is the child relationship seen from the parent (`Opps__r`), with
//! `child_relationship_name` accepted as its alias; stored definitions of the
//! earlier format (custom parent-side names) are upgraded when loaded.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn fields_of(name: &str) -> String {
    format!("{META}/objects/{name}/fields")
}

async fn query(c: &Client, soql: &str) -> (StatusCode, Value) {
    c.get(&format!("{DATA}/query?q={}", enc(soql))).await
}

fn child_relationships(d: &Value) -> Vec<String> {
    d["childRelationships"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["relationshipName"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn field_of<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["fields"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|f| f["name"] == name || f["api_name"] == name)
        })
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn relationship_name_is_the_child_side() {
    let srv = TestServer::start().await;
    let c = srv.tenant().await;
    c.create_object(json!({"api_name": "Acct__c"})).await;
    c.create_object(json!({"api_name": "Opp__c"})).await;
    let (s, f) = c
        .post(
            &fields_of("Opp__c"),
            json!({"api_name": "Acct__c", "data_type": "lookup", "lookup_object": "Acct__c", "relationship_name": "Opps__r"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["relationship_name"], "Opps__r");
    assert!(f.get("child_relationship_name").is_none(), "{f}");

    // Describe: the field's relationshipName is the parent side, the
    // parent's childRelationships carry the chosen name.
    let (_, d) = c.get(&format!("{DATA}/sobjects/Opp__c/describe")).await;
    assert_eq!(field_of(&d, "Acct__c")["relationshipName"], "Acct__r");
    let (_, d) = c.get(&format!("{DATA}/sobjects/Acct__c/describe")).await;
    assert_eq!(child_relationships(&d), vec!["Opps__r".to_string()]);

    let acct = c.create_record("Acct__c", json!({"Name": "Acme"})).await;
    c.create_record("Opp__c", json!({"Name": "Deal", "Acct__c": acct}))
        .await;
    let (s, v) = query(&c, "SELECT Name, Acct__r.Name FROM Opp__c").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["records"][0]["Acct__r"]["Name"], "Acme");
    let (s, v) = query(&c, "SELECT Name, (SELECT Name FROM Opps__r) FROM Acct__c").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["records"][0]["Opps__r"]["records"][0]["Name"], "Deal");
    // The chosen name is not a parent-side name.
    let (s, v) = query(&c, "SELECT Opps__r.Name FROM Opp__c").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // A formula on the child reaches the parent as Acct__r.
    let (s, f) = c
        .post(
            &fields_of("Opp__c"),
            json!({"api_name": "AcctName__c", "data_type": "formula", "formula_return_type": "text", "formula_expression": "Acct__r.Name"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (_, v) = query(&c, "SELECT AcctName__c FROM Opp__c").await;
    assert_eq!(v["records"][0]["AcctName__c"], "Acme");

    // Renaming the child relationship through the alias.
    let (s, f) = c
        .patch(
            &format!("{META}/objects/Opp__c/fields/Acct__c"),
            json!({"child_relationship_name": "Deals__r"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["relationship_name"], "Deals__r");
    let (s, v) = query(&c, "SELECT (SELECT Name FROM Deals__r) FROM Acct__c").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    srv.stop().await;
}

#[tokio::test]
async fn alias_and_conflicts() {
    let srv = TestServer::start().await;
    let c = srv.tenant().await;
    c.create_object(json!({"api_name": "Acct__c"})).await;
    c.create_object(json!({"api_name": "Line_Item__c"})).await;
    // The alias alone, and both names equal.
    let (s, f) = c
        .post(
            &fields_of("Line_Item__c"),
            json!({"api_name": "A__c", "data_type": "lookup", "lookup_object": "Acct__c", "child_relationship_name": "As__r"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["relationship_name"], "As__r");
    let (s, f) = c
        .post(
            &fields_of("Line_Item__c"),
            json!({"api_name": "B__c", "data_type": "lookup", "lookup_object": "Acct__c", "relationship_name": "Bs__r", "child_relationship_name": "Bs__r"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["relationship_name"], "Bs__r");
    // Different → 400 naming the alias.
    let (s, e) = c
        .post(
            &fields_of("Line_Item__c"),
            json!({"api_name": "C__c", "data_type": "lookup", "lookup_object": "Acct__c", "relationship_name": "Cs__r", "child_relationship_name": "Other__r"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e[0]["fields"], json!(["child_relationship_name"]), "{e}");
    // Not a reference → 400 naming the field given.
    let (s, e) = c
        .post(
            &fields_of("Line_Item__c"),
            json!({"api_name": "T__c", "data_type": "text", "relationship_name": "Ts__r"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e[0]["fields"], json!(["relationship_name"]), "{e}");
    let (s, e) = c
        .post(
            &fields_of("Line_Item__c"),
            json!({"api_name": "D__c", "data_type": "lookup", "lookup_object": "Acct__c", "relationship_name": "bad name"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e[0]["fields"], json!(["relationship_name"]), "{e}");
    // None chosen: the child object's plural.
    let (s, f) = c
        .post(
            &fields_of("Line_Item__c"),
            json!({"api_name": "E__c", "data_type": "lookup", "lookup_object": "Acct__c"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["relationship_name"], "Line_Items__r");
    srv.stop().await;
}

/// A definition stored in the earlier format: `relationship_name` held a
/// custom parent-side name and `child_relationship_name` the child side.
#[tokio::test]
async fn stored_definitions_of_the_earlier_format_are_upgraded() {
    let srv = TestServer::start().await;
    let c = srv.tenant().await;
    c.create_object(json!({"api_name": "Acct__c"})).await;
    c.create_object(json!({"api_name": "Old__c"})).await;
    for body in [
        json!({"api_name": "Acct__c", "data_type": "lookup", "lookup_object": "Acct__c"}),
        json!({"api_name": "Backup__c", "data_type": "lookup", "lookup_object": "Acct__c"}),
    ] {
        let (s, f) = c.post(&fields_of("Old__c"), body).await;
        assert_eq!(s, StatusCode::CREATED, "{f}");
    }
    let acct = c.create_record("Acct__c", json!({"Name": "Acme"})).await;
    c.create_record(
        "Old__c",
        json!({"Name": "Legacy", "Acct__c": acct, "Backup__c": acct}),
    )
    .await;

    // Rewrite the stored document as the earlier format wrote it.
    let store = &srv.platform.meta_store;
    let mut row = store
        .object_by_name(&c.tenant_id, "Old__c")
        .await
        .unwrap()
        .expect("stored Old__c");
    let mut doc: Value = serde_json::from_str(&row.definition).unwrap();
    let doc_obj = doc.as_object_mut().unwrap();
    doc_obj.remove("format");
    for f in doc_obj["fields"].as_array_mut().unwrap() {
        let f = f.as_object_mut().unwrap();
        f.remove("relationship_name");
        match f["api_name"].as_str() {
            Some("Acct__c") => {
                f.insert("relationship_name".into(), json!("Boss__r"));
                f.insert("child_relationship_name".into(), json!("Legacies__r"));
            }
            // No child name stored: the default is derived.
            _ => {
                f.insert("relationship_name".into(), json!("Spare__r"));
            }
        }
    }
    row.definition = serde_json::to_string(&doc).unwrap();
    let expected = row.version;
    row.version += 1;
    store.update_object(row, expected).await.unwrap();
    let def = srv
        .platform
        .meta
        .object(&c.tenant_id, "Old__c")
        .await
        .unwrap()
        .def
        .clone();
    srv.platform.meta.invalidate(&c.tenant_id, &def).await;

    let (s, o) = c.get(&format!("{META}/objects/Old__c")).await;
    assert_eq!(s, StatusCode::OK, "{o}");
    assert_eq!(field_of(&o, "Acct__c")["relationship_name"], "Legacies__r");
    assert_eq!(field_of(&o, "Backup__c")["relationship_name"], "Olds__r");
    assert!(field_of(&o, "Acct__c")
        .get("child_relationship_name")
        .is_none());

    // The parent side is the field's name with __r; the old custom
    // parent-side name is gone.
    let (s, v) = query(&c, "SELECT Acct__r.Name, Backup__r.Name FROM Old__c").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["records"][0]["Acct__r"]["Name"], "Acme");
    assert_eq!(v["records"][0]["Backup__r"]["Name"], "Acme");
    let (s, v) = query(&c, "SELECT Boss__r.Name FROM Old__c").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // The old child names keep working.
    let (s, v) = query(
        &c,
        "SELECT (SELECT Name FROM Legacies__r), (SELECT Name FROM Olds__r) FROM Acct__c",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["records"][0]["Legacies__r"]["records"][0]["Name"],
        "Legacy"
    );
    assert_eq!(v["records"][0]["Olds__r"]["records"][0]["Name"], "Legacy");

    // The next change stores the current format.
    let (s, f) = c
        .post(
            &fields_of("Old__c"),
            json!({"api_name": "Note__c", "data_type": "text"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let row = store
        .object_by_name(&c.tenant_id, "Old__c")
        .await
        .unwrap()
        .unwrap();
    let doc: Value = serde_json::from_str(&row.definition).unwrap();
    assert_eq!(doc["format"], 2);
    assert!(!row.definition.contains("child_relationship_name"));
    assert!(!row.definition.contains("Boss__r"));
    srv.stop().await;
}
