//! The metadata API over real HTTP: objects and fields, their validation,
//! optimistic locking, flex-slot allocation and reuse, and the Data API's
//! describe following every change at once.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn obj(name: &str) -> String {
    format!("{META}/objects/{name}")
}

fn fields_of(name: &str) -> String {
    format!("{META}/objects/{name}/fields")
}

fn field(object: &str, f: &str) -> String {
    format!("{META}/objects/{object}/fields/{f}")
}

fn fields_of_error(v: &Value) -> Vec<Value> {
    v.as_array()
        .map(|a| a.iter().map(|e| e["fields"].clone()).collect())
        .unwrap_or_default()
}

fn message(v: &Value) -> String {
    v[0]["message"].as_str().unwrap_or("").to_string()
}

async fn describe(c: &Client, o: &str) -> Value {
    let (s, v) = c.get(&format!("{DATA}/sobjects/{o}/describe")).await;
    assert_eq!(s, StatusCode::OK, "describe {o}: {v}");
    v
}

fn describe_field<'a>(d: &'a Value, name: &str) -> Option<&'a Value> {
    d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_lifecycle_with_versions() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    let (s, v) = c
        .post(
            &format!("{META}/objects"),
            json!({
                "api_name": "Invoice__c",
                "label": "Invoice",
                "plural_label": "Invoices",
                "description": "Bills we send",
                "sharing_model": "private",
                "fields": [
                    {"api_name": "Amount__c", "data_type": "currency", "is_required": true},
                    {"api_name": "Status__c", "data_type": "picklist", "picklist_values": [{"value": "Draft", "is_default": true}, {"value": "Sent"}]}
                ]
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["api_name"], "Invoice__c");
    assert_eq!(v["label"], "Invoice");
    assert_eq!(v["plural_label"], "Invoices");
    assert_eq!(v["description"], "Bills we send");
    assert_eq!(v["sharing_model"], "private");
    assert_eq!(v["version"], 1);
    assert!(v["id"].is_string());
    let f = &v["fields"];
    assert_eq!(f.as_array().unwrap().len(), 2);
    assert_eq!(f[0]["api_name"], "Amount__c");
    assert_eq!(f[0]["data_type"], "currency");
    assert_eq!(f[0]["is_required"], true);
    assert_eq!(f[0]["precision"], 18);
    assert_eq!(f[0]["scale"], 2);
    assert!(
        f[0]["storage_slot"]
            .as_str()
            .unwrap()
            .starts_with("number_"),
        "{f}"
    );
    assert_eq!(f[1]["picklist_values"][0]["value"], "Draft");
    assert_eq!(f[1]["picklist_values"][0]["is_default"], true);
    assert_eq!(f[1]["picklist_values"][1]["is_active"], true);
    assert_ne!(f[0]["storage_slot"], f[1]["storage_slot"]);

    // List and get (case-insensitive name).
    c.create_object(json!({"api_name": "Another"})).await;
    let (s, list) = c.get(&format!("{META}/objects")).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["api_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Another", "Invoice__c"]);
    let (s, got) = c.get(&obj("iNVOICE__C")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["id"], v["id"]);
    assert_eq!(got["fields"], v["fields"]);
    let (s, got) = c.get(&fields_of("invoice__c")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["fields"].as_array().unwrap().len(), 2);
    let (s, e) = c.get(&obj("Nope__c")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(codes(&e), vec!["NOT_FOUND"]);

    // Update: version increments; stale version → 409; no version applies.
    let (s, u) = c
        .patch(&obj("Invoice__c"), json!({"label": "Bill", "version": 1}))
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["label"], "Bill");
    assert_eq!(u["version"], 2);
    assert_eq!(u["plural_label"], "Invoices", "unmentioned keys are kept");
    let (s, e) = c
        .patch(&obj("Invoice__c"), json!({"label": "Stale", "version": 1}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(codes(&e), vec!["CONFLICT"]);
    let (_, g) = c.get(&obj("Invoice__c")).await;
    assert_eq!(g["label"], "Bill");
    assert_eq!(g["version"], 2);
    let (s, u) = c
        .patch(
            &obj("Invoice__c"),
            json!({"plural_label": "Bills", "enable_history": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["version"], 3);
    assert_eq!(u["enable_history"], true);
    // A GET result can be sent back as the update body.
    let (_, mut g) = c.get(&obj("Invoice__c")).await;
    g.as_object_mut().unwrap().remove("fields");
    g.as_object_mut().unwrap().remove("validation_rules");
    g["description"] = json!("round trip");
    let (s, u) = c.patch(&obj("Invoice__c"), g).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["version"], 4);
    assert_eq!(u["description"], "round trip");
    // Fields are not changed through the object.
    let (s, e) = c.patch(&obj("Invoice__c"), json!({"fields": []})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    // Bad values.
    for body in [
        json!({"label": ""}),
        json!({"label": "x".repeat(81)}),
        json!({"sharing_model": "everyone"}),
        json!({"sharing_model": "controlled_by_parent"}),
    ] {
        let (s, e) = c.patch(&obj("Invoice__c"), body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
    }

    // Rename: old name 404 at once, records follow the object.
    let rid = c
        .create_record("Invoice__c", json!({"Name": "i1", "Amount__c": 5}))
        .await;
    let (s, u) = c
        .patch(&obj("Invoice__c"), json!({"api_name": "Bill__c"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    let (s, _) = c.get(&obj("Invoice__c")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = c.get(&format!("{DATA}/sobjects/Invoice__c/{rid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, r) = c.get(&format!("{DATA}/sobjects/Bill__c/{rid}")).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["attributes"]["type"], "Bill__c");
    let (s, e) = c
        .patch(&obj("Bill__c"), json!({"api_name": "another"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(codes(&e), vec!["DUPLICATE_VALUE"]);

    // Delete: 204, then 404; its records are gone, even if the name comes back.
    let (s, _) = c.delete(&obj("Bill__c")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c.get(&obj("Bill__c")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = c.delete(&obj("Bill__c")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = c.get(&format!("{DATA}/sobjects/Bill__c/{rid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    c.create_object(json!({"api_name": "Bill__c", "fields": [{"api_name": "Amount__c", "data_type": "currency"}]})).await;
    let (s, _) = c.get(&format!("{DATA}/sobjects/Bill__c/{rid}")).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a deleted object's record came back"
    );
    let (_, list) = c.get(&format!("{META}/objects")).await;
    assert_eq!(list["objects"].as_array().unwrap().len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_others_point_at_cannot_be_deleted() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Account__c", "fields": [
        {"api_name": "Parent__c", "data_type": "lookup", "lookup_object": "Account__c"}
    ]}))
    .await;
    c.create_object(json!({"api_name": "Contact__c", "fields": [
        {"api_name": "Account__c", "data_type": "lookup", "lookup_object": "Account__c"}
    ]}))
    .await;
    c.create_object(json!({"api_name": "Line__c", "fields": [
        {"api_name": "Acct__c", "data_type": "master_detail", "lookup_object": "account__c"}
    ]}))
    .await;
    let (s, e) = c.delete(&obj("Account__c")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let m = message(&e);
    assert!(
        m.contains("Contact__c.Account__c") && m.contains("Line__c.Acct__c"),
        "{m}"
    );
    assert!(
        !m.contains("Account__c.Parent__c"),
        "a self-lookup is no dependent: {m}"
    );
    let (s, _) = c.get(&obj("Account__c")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = c.delete(&field("Contact__c", "Account__c")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = c.delete(&obj("Account__c")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(message(&e).contains("Line__c.Acct__c"));
    let (s, _) = c.delete(&obj("Line__c")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = c.delete(&obj("account__C")).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{e}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_validated_and_unique_case_insensitively() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    let bad = [
        "",
        "1abc",
        "a__b",
        "a_",
        "_a",
        "a b",
        "a-b",
        "Robert'); DROP TABLE",
        "__c",
        "a__c__c",
        "ünï",
        "a.b",
        &"a".repeat(41),
    ];
    for name in bad {
        let (s, e) = c
            .post(&format!("{META}/objects"), json!({"api_name": name}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "object {name:?}: {e}");
        assert_eq!(
            fields_of_error(&e),
            vec![json!(["api_name"])],
            "object {name:?}"
        );
    }
    let (s, e) = c
        .post(&format!("{META}/objects"), json!({"label": "no name"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(fields_of_error(&e), vec![json!(["api_name"])]);
    for ok in [
        "A",
        "Invoice",
        "Line_Item__c",
        &"a".repeat(40),
        &format!("{}__c", "b".repeat(40)),
    ] {
        let (s, e) = c
            .post(&format!("{META}/objects"), json!({"api_name": ok}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "object {ok:?}: {e}");
    }
    // Duplicates, case-insensitively.
    for dup in ["invoice", "INVOICE", "LINE_ITEM__c"] {
        let (s, e) = c
            .post(&format!("{META}/objects"), json!({"api_name": dup}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{dup}: {e}");
        assert_eq!(codes(&e), vec!["DUPLICATE_VALUE"], "{dup}");
        assert_eq!(fields_of_error(&e), vec![json!(["api_name"])]);
    }
    // Field names.
    for name in bad
        .iter()
        .chain(["Name", "Id", "ownerid", "CreatedDate", "IsDeleted"].iter())
    {
        let (s, e) = c
            .post(
                &fields_of("Invoice"),
                json!({"api_name": name, "data_type": "text"}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "field {name:?}: {e}");
        assert_eq!(
            fields_of_error(&e),
            vec![json!(["api_name"])],
            "field {name:?}"
        );
    }
    let (s, e) = c
        .post(&format!("{META}/objects"), json!({"api_name": "Bad", "fields": [{"api_name": "Ok__c", "data_type": "text"}, {"api_name": "no good", "data_type": "text"}]}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(fields_of_error(&e), vec![json!(["fields[1].api_name"])]);
    let (s, _) = c.get(&obj("Bad")).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a refused create left an object behind"
    );
    let (s, e) = c
        .post(&format!("{META}/objects"), json!({"api_name": "Bad", "fields": [{"api_name": "Code__c", "data_type": "text"}, {"api_name": "CODE__c", "data_type": "number"}]}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(codes(&e), vec!["DUPLICATE_VALUE"]);
    let (s, _) = c
        .post(
            &fields_of("Invoice"),
            json!({"api_name": "Code__c", "data_type": "text"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = c
        .post(
            &fields_of("Invoice"),
            json!({"api_name": "Other__c", "data_type": "text"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, e) = c
        .post(
            &fields_of("Invoice"),
            json!({"api_name": "CODE__c", "data_type": "date"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(codes(&e), vec!["DUPLICATE_VALUE"]);
    let (s, e) = c
        .patch(
            &field("Invoice", "Other__c"),
            json!({"api_name": "CODE__c"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(codes(&e), vec!["DUPLICATE_VALUE"]);
    // Renaming a field to another case of itself is fine.
    let (s, e) = c
        .patch(
            &field("Invoice", "Other__c"),
            json!({"api_name": "OTHER__c"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["api_name"], "OTHER__c");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_and_bad_options_are_refused() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(
        json!({"api_name": "Thing", "fields": [{"api_name": "T__c", "data_type": "text"}]}),
    )
    .await;
    for (path, patch, body) in [
        (
            format!("{META}/objects"),
            false,
            json!({"api_name": "X", "colour": "red"}),
        ),
        (
            format!("{META}/objects"),
            false,
            json!({"api_name": "X", "fields": [{"api_name": "A__c", "data_type": "text", "maxlen": 3}]}),
        ),
        (
            format!("{META}/objects"),
            false,
            json!({"api_name": "X", "name_field": {"label": "N", "kind": "x"}}),
        ),
        (obj("Thing"), true, json!({"lable": "typo"})),
        (
            fields_of("Thing"),
            false,
            json!({"api_name": "B__c", "data_type": "text", "requried": true}),
        ),
        (field("Thing", "T__c"), true, json!({"is_requird": true})),
        (
            fields_of("Thing"),
            false,
            json!({"api_name": "P__c", "data_type": "picklist", "picklist_values": [{"value": "a", "colour": "red"}]}),
        ),
    ] {
        let (s, e) = if patch {
            c.patch(&path, body.clone()).await
        } else {
            c.post(&path, body.clone()).await
        };
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {body}: {e}");
        assert!(e.is_array() && !codes(&e).is_empty(), "{e}");
    }
    let (_, t) = c.get(&obj("Thing")).await;
    assert_eq!(t["version"], 1, "a refused change bumped the version");
    let (s, _) = c.get(&obj("X")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Options that don't fit the type, with the offending key named.
    for (body, key) in [
        (
            json!({"api_name": "A__c", "data_type": "text", "length": 0}),
            "length",
        ),
        (
            json!({"api_name": "A__c", "data_type": "text", "length": 256}),
            "length",
        ),
        (
            json!({"api_name": "A__c", "data_type": "number", "length": 5}),
            "length",
        ),
        (
            json!({"api_name": "A__c", "data_type": "number", "precision": 19}),
            "precision",
        ),
        (
            json!({"api_name": "A__c", "data_type": "number", "precision": 3, "scale": 4}),
            "scale",
        ),
        (
            json!({"api_name": "A__c", "data_type": "text", "precision": 3}),
            "precision",
        ),
        (
            json!({"api_name": "A__c", "data_type": "picklist"}),
            "picklist_values",
        ),
        (
            json!({"api_name": "A__c", "data_type": "picklist", "picklist_values": [{"value": "a"}, {"value": "A"}]}),
            "picklist_values",
        ),
        (
            json!({"api_name": "A__c", "data_type": "picklist", "picklist_values": [{"value": "a", "is_default": true}, {"value": "b", "is_default": true}]}),
            "picklist_values",
        ),
        (
            json!({"api_name": "A__c", "data_type": "multi_picklist", "picklist_values": [{"value": "a;b"}]}),
            "picklist_values",
        ),
        (
            json!({"api_name": "A__c", "data_type": "text", "picklist_values": [{"value": "a"}]}),
            "picklist_values",
        ),
        (
            json!({"api_name": "A__c", "data_type": "auto_number"}),
            "auto_number_format",
        ),
        (
            json!({"api_name": "A__c", "data_type": "auto_number", "auto_number_format": "INV"}),
            "auto_number_format",
        ),
        (
            json!({"api_name": "A__c", "data_type": "lookup"}),
            "lookup_object",
        ),
        (
            json!({"api_name": "A__c", "data_type": "text", "lookup_object": "Thing"}),
            "lookup_object",
        ),
        (
            json!({"api_name": "A__c", "data_type": "long_text", "is_unique": true}),
            "is_unique",
        ),
        (
            json!({"api_name": "A__c", "data_type": "encrypted_text", "is_external_id": true}),
            "is_external_id",
        ),
        (
            json!({"api_name": "A__c", "data_type": "lookup", "lookup_object": "Thing", "cascade_delete": true}),
            "cascade_delete",
        ),
        (
            json!({"api_name": "A__c", "data_type": "master_detail", "lookup_object": "Thing", "cascade_delete": false}),
            "cascade_delete",
        ),
        (
            json!({"api_name": "A__c", "data_type": "number", "default_value": "abc"}),
            "default_value",
        ),
        (
            json!({"api_name": "A__c", "data_type": "picklist", "is_restricted": true, "picklist_values": [{"value": "a"}], "default_value": "zzz"}),
            "default_value",
        ),
        (
            json!({"api_name": "A__c", "data_type": "text", "length": 3, "default_value": "toolong"}),
            "default_value",
        ),
        (
            json!({"api_name": "A__c", "data_type": "text", "label": ""}),
            "label",
        ),
        (
            json!({"api_name": "A__c", "data_type": "text", "is_restricted": true}),
            "is_restricted",
        ),
    ] {
        let (s, e) = c.post(&fields_of("Thing"), body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
        assert_eq!(fields_of_error(&e), vec![json!([key])], "{body}: {e}");
        assert!(!message(&e).is_empty());
    }
    let (_, t) = c.get(&obj("Thing")).await;
    assert_eq!(t["fields"].as_array().unwrap().len(), 1);

    // Unknown data_type lists the valid ones; roll-up summaries are not built yet;
    // a type change is not supported.
    let (s, e) = c
        .post(
            &fields_of("Thing"),
            json!({"api_name": "M__c", "data_type": "money"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(fields_of_error(&e), vec![json!(["data_type"])]);
    let m = message(&e);
    for t in [
        "text",
        "currency",
        "multi_picklist",
        "geolocation",
        "encrypted_text",
        "auto_number",
    ] {
        assert!(m.contains(t), "{m}");
    }
    let (s, e) = c
        .post(
            &fields_of("Thing"),
            json!({"api_name": "R__c", "data_type": "rollup_summary"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(codes(&e), vec!["INVALID_INPUT"]);
    assert!(e.to_string().contains("summary_foreign_key"), "{e}");
    let (s, e) = c
        .patch(&field("Thing", "T__c"), json!({"data_type": "number"}))
        .await;
    assert_eq!(s, StatusCode::NOT_IMPLEMENTED, "{e}");
    assert_eq!(codes(&e), vec!["NOT_IMPLEMENTED"]);
    let (s, e) = c
        .patch(
            &field("Thing", "T__c"),
            json!({"data_type": "text", "label": "Same type"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_are_created_updated_and_deleted() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Thing"})).await;
    let (s, f) = c
        .post(&fields_of("Thing"), json!({"api_name": "Size__c", "data_type": "number", "precision": 5, "scale": 1, "help_text": "how big", "version": 1}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["api_name"], "Size__c");
    assert_eq!(f["label"], "Size");
    assert_eq!(f["precision"], 5);
    assert_eq!(f["scale"], 1);
    assert_eq!(f["help_text"], "how big");
    assert_eq!(f["object_version"], 2);
    // A stale version is refused for fields too.
    let (s, e) = c
        .post(
            &fields_of("Thing"),
            json!({"api_name": "Late__c", "data_type": "text", "version": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let (s, e) = c
        .patch(
            &field("Thing", "Size__c"),
            json!({"label": "Late", "version": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let (s, e) = c
        .delete(&format!("{}?version=1", field("Thing", "Size__c")))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");

    let id = c
        .create_record("Thing", json!({"Name": "t", "Size__c": 1234.56}))
        .await;
    let (_, r) = c.get(&format!("{DATA}/sobjects/Thing/{id}")).await;
    assert_eq!(r["Size__c"].to_string(), "1234.6");
    let (s, f) = c
        .patch(
            &field("Thing", "size__c"),
            json!({"label": "Dimension", "is_required": true, "scale": 2, "precision": 6}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["label"], "Dimension");
    assert_eq!(f["object_version"], 3);
    let (_, g) = c.get(&field("Thing", "Size__c")).await;
    assert_eq!(g["label"], "Dimension");
    assert_eq!(g["is_required"], true);
    // The new rules apply to writes at once.
    let (s, e) = c
        .post(&format!("{DATA}/sobjects/Thing"), json!({"Name": "t2"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&e), vec!["REQUIRED_FIELD_MISSING"]);
    let id2 = c
        .create_record("Thing", json!({"Name": "t2", "Size__c": 1.005}))
        .await;
    let (_, r) = c.get(&format!("{DATA}/sobjects/Thing/{id2}")).await;
    assert_eq!(r["Size__c"].to_string(), "1.01");

    let (s, _) = c.delete(&field("Thing", "SIZE__C")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = c.get(&field("Thing", "Size__c")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, _) = c.delete(&field("Thing", "Size__c")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, e) = c
        .patch(&field("Thing", "Size__c"), json!({"label": "x"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (_, r) = c.get(&format!("{DATA}/sobjects/Thing/{id}")).await;
    assert!(r.get("Size__c").is_none(), "{r}");
    let (s, e) = c
        .patch(
            &format!("{DATA}/sobjects/Thing/{id}"),
            json!({"Size__c": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&e), vec!["INVALID_FIELD"]);
    let (s, e) = c
        .get(&format!("{DATA}/sobjects/Thing/{id}?fields=Size__c"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&e), vec!["INVALID_FIELD"]);
    let (s, _) = c
        .post(
            &fields_of("Nope__c"),
            json!({"api_name": "A__c", "data_type": "text"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_targets_must_be_objects_of_the_same_tenant() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    let other = server.tenant().await;
    other.create_object(json!({"api_name": "Theirs__c"})).await;
    c.create_object(json!({"api_name": "Mine__c"})).await;
    for target in ["Nope__c", "Theirs__c"] {
        for dt in ["lookup", "master_detail"] {
            let (s, e) = c
                .post(
                    &fields_of("Mine__c"),
                    json!({"api_name": "Ref__c", "data_type": dt, "lookup_object": target}),
                )
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{dt} → {target}: {e}");
            assert_eq!(fields_of_error(&e), vec![json!(["lookup_object"])]);
            assert!(message(&e).contains("not an object of this tenant"), "{e}");
        }
        let (s, e) = c
            .post(&format!("{META}/objects"), json!({"api_name": "New__c", "fields": [{"api_name": "R__c", "data_type": "lookup", "lookup_object": target}]}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        assert!(message(&e).contains("not an object of this tenant"), "{e}");
    }
    // Same tenant, any case; self references allowed; the target is fixed.
    let (s, f) = c
        .post(
            &fields_of("Mine__c"),
            json!({"api_name": "Self__c", "data_type": "lookup", "lookup_object": "mine__C"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["lookup_object"], "Mine__c");
    assert_eq!(f["relationship_name"], "Mines__r");
    c.create_object(json!({"api_name": "Other__c"})).await;
    let (s, e) = c
        .patch(
            &field("Mine__c", "Self__c"),
            json!({"lookup_object": "Other__c"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, o) = c
        .post(&format!("{META}/objects"), json!({"api_name": "Tree__c", "fields": [{"api_name": "Up__c", "data_type": "lookup", "lookup_object": "Tree__c"}]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["fields"][0]["lookup_object"], "Tree__c");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pools_are_a_clear_400_and_deleted_slots_are_reused() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    // Creating with too many clob fields at once refuses the whole object.
    let clobs: Vec<Value> = (0..11)
        .map(|i| json!({"api_name": format!("L{i}__c"), "data_type": if i % 2 == 0 { "long_text" } else { "rich_text" }}))
        .collect();
    let (s, e) = c
        .post(
            &format!("{META}/objects"),
            json!({"api_name": "Big__c", "fields": clobs}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(codes(&e), vec!["LIMIT_EXCEEDED"]);
    let (s, _) = c.get(&obj("Big__c")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    c.create_object(json!({"api_name": "Big__c"})).await;
    let mut slots = Vec::new();
    for i in 0..10 {
        let (s, f) = c
            .post(
                &fields_of("Big__c"),
                json!({"api_name": format!("L{i}__c"), "data_type": "long_text"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{f}");
        slots.push(f["storage_slot"].as_str().unwrap().to_string());
    }
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), 10);
    assert!(slots.iter().all(|s| s.starts_with("clob_")), "{slots:?}");
    let (s, e) = c
        .post(
            &fields_of("Big__c"),
            json!({"api_name": "L10__c", "data_type": "long_text"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(codes(&e), vec!["LIMIT_EXCEEDED"]);
    let m = message(&e);
    assert!(m.contains("clob") && m.contains("10"), "{m}");
    let (s, e) = c
        .post(
            &fields_of("Big__c"),
            json!({"api_name": "R__c", "data_type": "rich_text"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "rich text shares the clob pool: {e}"
    );
    // Other pools are unaffected.
    for i in 0..20 {
        let (s, f) = c
            .post(
                &fields_of("Big__c"),
                json!({"api_name": format!("B{i}__c"), "data_type": "boolean"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "boolean {i}: {f}");
    }
    let (s, e) = c
        .post(
            &fields_of("Big__c"),
            json!({"api_name": "B20__c", "data_type": "boolean"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(codes(&e), vec!["LIMIT_EXCEEDED"]);
    assert!(message(&e).contains("boolean"), "{e}");
    let (_, o) = c.get(&obj("Big__c")).await;
    assert_eq!(o["fields"].as_array().unwrap().len(), 30);
    // Freeing one slot makes room again, in the same slot.
    let (_, gone) = c.get(&field("Big__c", "L3__c")).await;
    let (s, _) = c.delete(&field("Big__c", "L3__c")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, f) = c
        .post(
            &fields_of("Big__c"),
            json!({"api_name": "L10__c", "data_type": "rich_text"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["storage_slot"], gone["storage_slot"]);
    // Records with every slot in use still work.
    let id = c
        .create_record(
            "Big__c",
            json!({"Name": "full", "L10__c": "<p>x</p>", "B19__c": true}),
        )
        .await;
    let (_, r) = c.get(&format!("{DATA}/sobjects/Big__c/{id}")).await;
    assert_eq!(r["L10__c"], "<p>x</p>");
    assert_eq!(r["B19__c"], true);
    assert_eq!(r["B0__c"], false);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_fields_data_never_shows_in_its_successor() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Doc__c", "fields": [
        {"api_name": "Keep__c", "data_type": "text"},
        {"api_name": "Old__c", "data_type": "text", "is_unique": true, "is_external_id": true},
        {"api_name": "Flag__c", "data_type": "boolean"},
        {"api_name": "Qty__c", "data_type": "number"}
    ]}))
    .await;
    let (_, old) = c.get(&field("Doc__c", "Old__c")).await;
    let (_, old_flag) = c.get(&field("Doc__c", "Flag__c")).await;
    let (_, old_qty) = c.get(&field("Doc__c", "Qty__c")).await;
    let a = c.create_record("Doc__c", json!({"Name": "a", "Keep__c": "k", "Old__c": "SECRET-A", "Flag__c": true, "Qty__c": 7})).await;
    let b = c
        .create_record("Doc__c", json!({"Name": "b", "Old__c": "SECRET-B"}))
        .await;
    for f in ["Old__c", "Flag__c", "Qty__c"] {
        let (s, _) = c.delete(&field("Doc__c", f)).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    let (s, n) = c.post(&fields_of("Doc__c"), json!({"api_name": "New__c", "data_type": "text", "is_unique": true, "is_external_id": true})).await;
    assert_eq!(s, StatusCode::CREATED, "{n}");
    assert_eq!(n["storage_slot"], old["storage_slot"], "the slot is reused");
    let (_, nf) = c
        .post(
            &fields_of("Doc__c"),
            json!({"api_name": "Flag2__c", "data_type": "boolean"}),
        )
        .await;
    assert_eq!(nf["storage_slot"], old_flag["storage_slot"]);
    let (_, nq) = c
        .post(
            &fields_of("Doc__c"),
            json!({"api_name": "Qty2__c", "data_type": "number"}),
        )
        .await;
    assert_eq!(nq["storage_slot"], old_qty["storage_slot"]);
    for id in [&a, &b] {
        let (_, r) = c.get(&format!("{DATA}/sobjects/Doc__c/{id}")).await;
        assert_eq!(r["New__c"], Value::Null, "{r}");
        assert_eq!(r["Flag2__c"], false, "{r}");
        assert_eq!(r["Qty2__c"], Value::Null, "{r}");
        assert!(!r.to_string().contains("SECRET"), "{r}");
    }
    let (_, r) = c.get(&format!("{DATA}/sobjects/Doc__c/{a}")).await;
    assert_eq!(r["Keep__c"], "k");
    // The old unique values are gone from the index too.
    let (s, _) = c
        .get(&format!("{DATA}/sobjects/Doc__c/New__c/SECRET-A"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, e) = c
        .post(
            &format!("{DATA}/sobjects/Doc__c"),
            json!({"Name": "c", "New__c": "secret-a"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let (s, _) = c
        .get(&format!("{DATA}/sobjects/Doc__c/New__c/SECRET-A"))
        .await;
    assert_eq!(s, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_changes_that_existing_data_would_break_are_refused() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Item__c", "fields": [
        {"api_name": "Sku__c", "data_type": "text", "length": 50},
        {"api_name": "Secret__c", "data_type": "encrypted_text", "length": 100}
    ]}))
    .await;
    let a = c
        .create_record(
            "Item__c",
            json!({"Name": "a", "Sku__c": "abc-123", "Secret__c": "abc"}),
        )
        .await;
    let b = c
        .create_record("Item__c", json!({"Name": "b", "Sku__c": "ABC-123"}))
        .await;
    // Unique over duplicates (case-insensitive for text): refused, field unchanged.
    let (s, e) = c
        .patch(&field("Item__c", "Sku__c"), json!({"is_unique": true}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(codes(&e), vec!["DUPLICATE_VALUE"]);
    let (_, f) = c.get(&field("Item__c", "Sku__c")).await;
    assert_eq!(f["is_unique"], false);
    let (_, o) = c.get(&obj("Item__c")).await;
    assert_eq!(o["version"], 1);
    let (s, _) = c
        .post(
            &format!("{DATA}/sobjects/Item__c"),
            json!({"Name": "c", "Sku__c": "abc-123"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "the field must still accept duplicates"
    );
    // Once the data is clean, unique is accepted and enforced.
    let (s, _) = c
        .patch(
            &format!("{DATA}/sobjects/Item__c/{b}"),
            json!({"Sku__c": "B-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c
        .patch(
            &format!("{DATA}/sobjects/Item__c/{a}"),
            json!({"Sku__c": "A-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = c
        .patch(&field("Item__c", "Sku__c"), json!({"is_unique": true}))
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let (s, e) = c
        .post(
            &format!("{DATA}/sobjects/Item__c"),
            json!({"Name": "d", "Sku__c": "a-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(codes(&e), vec!["DUPLICATE_VALUE"]);
    // And dropping unique stops enforcing it.
    let (s, _) = c
        .patch(&field("Item__c", "Sku__c"), json!({"is_unique": false}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = c
        .post(
            &format!("{DATA}/sobjects/Item__c"),
            json!({"Name": "d", "Sku__c": "a-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // Shrinking below existing data is refused; to the longest value is fine.
    let (s, e) = c
        .patch(&field("Item__c", "Sku__c"), json!({"length": 6}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(fields_of_error(&e), vec![json!(["length"])]);
    let (_, f) = c.get(&field("Item__c", "Sku__c")).await;
    assert_eq!(f["length"], 50);
    let (s, e) = c
        .patch(&field("Item__c", "Sku__c"), json!({"length": 7}))
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let (s, e) = c
        .post(
            &format!("{DATA}/sobjects/Item__c"),
            json!({"Name": "e", "Sku__c": "12345678"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&e), vec!["STRING_TOO_LONG"]);
    // Encrypted values: shrinking below the stored plaintext is refused.
    let (s, e) = c
        .patch(&field("Item__c", "Secret__c"), json!({"length": 2}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (_, f) = c.get(&field("Item__c", "Secret__c")).await;
    assert_eq!(f["length"], 100);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_text_length_is_measured_by_plaintext() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Vault__c", "fields": [
        {"api_name": "Secret__c", "data_type": "encrypted_text", "length": 100}
    ]}))
    .await;
    c.create_record("Vault__c", json!({"Name": "v", "Secret__c": "abc"}))
        .await;
    let (s, e) = c
        .patch(&field("Vault__c", "Secret__c"), json!({"length": 10}))
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let (_, f) = c.get(&field("Vault__c", "Secret__c")).await;
    assert_eq!(f["length"], 10);
    // Shrinking below a stored secret's length is still refused.
    c.create_record("Vault__c", json!({"Name": "w", "Secret__c": "0123456789"}))
        .await;
    let (s, e) = c
        .patch(&field("Vault__c", "Secret__c"), json!({"length": 5}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_follows_every_metadata_change_at_once() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Account__c", "label": "Account"}))
        .await;
    c.create_object(json!({"api_name": "Contact__c"})).await;
    // Warm every cache.
    let d = describe(&c, "Account__c").await;
    assert_eq!(d["name"], "Account__c");
    assert_eq!(d["label"], "Account");
    assert_eq!(d["childRelationships"], json!([]));
    let names: Vec<&str> = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "Id",
            "Name",
            "OwnerId",
            "CreatedById",
            "CreatedDate",
            "LastModifiedById",
            "LastModifiedDate",
            "IsDeleted"
        ]
    );
    let name = describe_field(&d, "Name").unwrap();
    assert_eq!(name["nillable"], false);
    assert_eq!(name["updateable"], true);
    describe(&c, "Contact__c").await;
    let (_, g) = c.get(&format!("{DATA}/sobjects")).await;
    let global: Vec<&str> = g["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(global, vec!["Account__c", "Contact__c"]);

    // Fields appear with their properties.
    c.post(
        &fields_of("Account__c"),
        json!({"api_name": "Tier__c", "data_type": "picklist", "is_restricted": true,
        "picklist_values": [{"value": "Gold"}, {"value": "Silver", "is_default": true}]}),
    )
    .await;
    c.post(&fields_of("Account__c"), json!({"api_name": "Code__c", "data_type": "text", "length": 12, "is_unique": true, "is_external_id": true})).await;
    c.post(
        &fields_of("Account__c"),
        json!({"api_name": "Num__c", "data_type": "auto_number", "auto_number_format": "A-{000}"}),
    )
    .await;
    c.post(&fields_of("Contact__c"), json!({"api_name": "Account__c", "data_type": "lookup", "lookup_object": "Account__c", "child_relationship_name": "Contacts__r"})).await;
    c.post(&fields_of("Contact__c"), json!({"api_name": "Owner_Account__c", "data_type": "master_detail", "lookup_object": "Account__c"})).await;
    let d = describe(&c, "Account__c").await;
    let tier = describe_field(&d, "Tier__c").expect("Tier__c in describe");
    assert_eq!(tier["type"], "picklist");
    assert_eq!(tier["nillable"], true);
    assert_eq!(tier["updateable"], true);
    assert_eq!(tier["restrictedPicklist"], true);
    assert_eq!(
        tier["picklistValues"],
        json!([
            {"value": "Gold", "label": "Gold", "active": true, "defaultValue": false},
            {"value": "Silver", "label": "Silver", "active": true, "defaultValue": true}
        ])
    );
    let code = describe_field(&d, "Code__c").unwrap();
    assert_eq!(code["type"], "string");
    assert_eq!(code["length"], 12);
    assert_eq!(code["unique"], true);
    assert_eq!(code["externalId"], true);
    let num = describe_field(&d, "Num__c").unwrap();
    assert_eq!(num["autoNumber"], true);
    assert_eq!(num["updateable"], false);
    assert_eq!(num["createable"], false);
    let mut kids: Vec<Value> = d["childRelationships"].as_array().unwrap().clone();
    kids.sort_by_key(|k| k["field"].to_string());
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert_eq!(kids[0]["childSObject"], "Contact__c");
    assert_eq!(kids[0]["field"], "Account__c");
    assert_eq!(kids[0]["relationshipName"], "Contacts__r");
    assert_eq!(kids[0]["cascadeDelete"], false);
    assert_eq!(kids[1]["field"], "Owner_Account__c");
    assert_eq!(kids[1]["cascadeDelete"], true);
    let cd = describe(&c, "Contact__c").await;
    let acc = describe_field(&cd, "Account__c").unwrap();
    assert_eq!(acc["type"], "reference");
    assert_eq!(acc["referenceTo"], json!(["Account__c"]));
    assert_eq!(acc["relationshipName"], "Account__r");
    assert_eq!(acc["nillable"], true);
    let md = describe_field(&cd, "Owner_Account__c").unwrap();
    assert_eq!(md["nillable"], false);
    assert_eq!(md["cascadeDelete"], true);
    assert_eq!(md["relationshipName"], "Owner_Account__r");

    // Updates show at once.
    c.patch(
        &field("Account__c", "Tier__c"),
        json!({"label": "Level", "is_required": true,
        "picklist_values": [{"value": "Bronze"}, {"value": "Gold", "is_active": false}]}),
    )
    .await;
    c.patch(
        &obj("Account__c"),
        json!({"label": "Customer", "plural_label": "Customers"}),
    )
    .await;
    let d = describe(&c, "Account__c").await;
    assert_eq!(d["label"], "Customer");
    assert_eq!(d["labelPlural"], "Customers");
    let tier = describe_field(&d, "Tier__c").unwrap();
    assert_eq!(tier["label"], "Level");
    assert_eq!(tier["nillable"], false);
    assert_eq!(
        tier["picklistValues"],
        json!([
            {"value": "Bronze", "label": "Bronze", "active": true, "defaultValue": false},
            {"value": "Gold", "label": "Gold", "active": false, "defaultValue": false}
        ])
    );
    let (s, e) = c
        .post(
            &format!("{DATA}/sobjects/Account__c"),
            json!({"Name": "x", "Tier__c": "Silver"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "a removed picklist value is still accepted: {e}"
    );
    let (_, g) = c.get(&format!("{DATA}/sobjects")).await;
    let entry = g["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Account__c")
        .unwrap()
        .clone();
    assert_eq!(entry["label"], "Customer");
    let (_, info) = c.get(&format!("{DATA}/sobjects/Account__c")).await;
    assert_eq!(info["objectDescribe"]["label"], "Customer");

    // Deletes show at once, on both sides of a relationship.
    c.delete(&field("Contact__c", "Account__c")).await;
    c.delete(&field("Account__c", "Code__c")).await;
    let d = describe(&c, "Account__c").await;
    assert!(describe_field(&d, "Code__c").is_none());
    let kids = d["childRelationships"].as_array().unwrap();
    assert_eq!(kids.len(), 1, "{kids:?}");
    assert_eq!(kids[0]["field"], "Owner_Account__c");
    let cd = describe(&c, "Contact__c").await;
    assert!(describe_field(&cd, "Account__c").is_none());

    // A renamed parent is named in its children's referenceTo.
    c.patch(&obj("Account__c"), json!({"api_name": "Customer__c"}))
        .await;
    let cd = describe(&c, "Contact__c").await;
    assert_eq!(
        describe_field(&cd, "Owner_Account__c").unwrap()["referenceTo"],
        json!(["Customer__c"])
    );
    let (s, _) = c.get(&format!("{DATA}/sobjects/Account__c/describe")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    describe(&c, "customer__c").await;

    // Deleted objects leave describe global at once.
    c.delete(&obj("Contact__c")).await;
    let (s, _) = c.get(&format!("{DATA}/sobjects/Contact__c/describe")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, g) = c.get(&format!("{DATA}/sobjects")).await;
    let global: Vec<&str> = g["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(global, vec!["Customer__c"]);
    let d = describe(&c, "Customer__c").await;
    assert_eq!(d["childRelationships"], json!([]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_needs_a_token() {
    let server = TestServer::start().await;
    let anon = server.anonymous();
    for (s, v) in [
        anon.get(&format!("{META}/objects")).await,
        anon.post(&format!("{META}/objects"), json!({"api_name": "X"}))
            .await,
        anon.get(&format!("{DATA}/sobjects/X/describe")).await,
    ] {
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boolean_added_later_is_false_on_existing_records_everywhere() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Late__c"})).await;
    let id = c.create_record("Late__c", json!({"Name": "old"})).await;
    let (s, _) = c
        .post(
            &format!("{META}/objects/Late__c/fields"),
            json!({"api_name": "Flag__c", "data_type": "boolean"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, v) = c.get(&format!("{DATA}/sobjects/Late__c/{id}")).await;
    assert_eq!(v["Flag__c"], false);
    let (s, v) = c
        .get(&format!(
            "{DATA}/query?q=SELECT+Id+FROM+Late__c+WHERE+Flag__c+%3D+false"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["totalSize"], 1, "the query sees false, not null: {v}");
    server.stop().await;
}
