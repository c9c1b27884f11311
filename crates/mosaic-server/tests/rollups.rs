//! Roll-up summary fields over HTTP (decision 0039), on SQLite and — with
//! `MOSAIC_TEST_BACKEND=postgres` — PostgreSQL: COUNT / SUM / MIN / MAX with
//! and without filter criteria after every kind of detail write (insert,
//! update, reparent, delete to the bin, undelete), SOQL filters and sorts
//! on roll-ups, formulas and validation rules reading them, describe, the
//! dependency checks and bad definitions.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn fields_of(name: &str) -> String {
    format!("{META}/objects/{name}/fields")
}

async fn add_field(c: &Client, object: &str, def: Value) -> (StatusCode, Value) {
    c.post(&fields_of(object), def).await
}

/// Invoice__c ← Line__c (master-detail) with roll-ups on the invoice.
async fn setup(c: &Client) {
    c.create_object(json!({"api_name": "Invoice__c", "fields": [
        {"api_name": "Limit__c", "data_type": "currency", "precision": 18, "scale": 2}
    ]}))
    .await;
    c.create_object(json!({"api_name": "Line__c", "fields": [
        {"api_name": "Invoice__c", "data_type": "master_detail", "lookup_object": "Invoice__c"},
        {"api_name": "Amount__c", "data_type": "currency", "precision": 18, "scale": 2},
        {"api_name": "Shipped__c", "data_type": "date"},
        {"api_name": "Kind__c", "data_type": "picklist", "picklist_values": [
            {"value": "Goods", "label": "Goods"}, {"value": "Service", "label": "Service"}
        ]},
        {"api_name": "Note__c", "data_type": "text", "length": 80}
    ]}))
    .await;
    for def in [
        json!({"api_name": "Lines__c", "data_type": "rollup_summary",
               "summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "count"}),
        json!({"api_name": "Total__c", "data_type": "rollup_summary",
               "summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "sum",
               "summarized_field": "Line__c.Amount__c"}),
        json!({"api_name": "Goods__c", "data_type": "rollup_summary",
               "summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "sum",
               "summarized_field": "Amount__c",
               "summary_filter_items": [{"field": "Kind__c", "operation": "equals", "value": "Goods"}]}),
        json!({"api_name": "Smallest__c", "data_type": "rollup_summary",
               "summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "min",
               "summarized_field": "Line__c.Amount__c"}),
        json!({"api_name": "Last_Ship__c", "data_type": "rollup_summary",
               "summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "max",
               "summarized_field": "Line__c.Shipped__c"}),
        json!({"api_name": "Big__c", "data_type": "rollup_summary",
               "summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "count",
               "summary_filter_items": [{"field": "Amount__c", "operation": "greaterOrEqual", "value": "100"}]}),
    ] {
        let (s, v) = add_field(c, "Invoice__c", def).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
}

async fn invoice(c: &Client, id: &str) -> Value {
    let (s, v) = c.get(&format!("{DATA}/sobjects/Invoice__c/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Lines, Total, Goods, Smallest, Last_Ship, Big of one invoice.
async fn summary(c: &Client, id: &str) -> [String; 6] {
    let v = invoice(c, id).await;
    [
        num(&v["Lines__c"]),
        num(&v["Total__c"]),
        num(&v["Goods__c"]),
        num(&v["Smallest__c"]),
        num(&v["Last_Ship__c"]),
        num(&v["Big__c"]),
    ]
}

async fn query(c: &Client, soql: &str) -> Value {
    let (s, v) = c.get(&format!("{DATA}/query?q={}", enc(soql))).await;
    assert_eq!(s, StatusCode::OK, "{soql}: {v}");
    v
}

fn s6(a: [&str; 6]) -> [String; 6] {
    a.map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_follow_every_detail_write() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    setup(&c).await;
    let a = c.create_record("Invoice__c", json!({"Name": "A"})).await;
    let b = c.create_record("Invoice__c", json!({"Name": "B"})).await;
    // No detail records: count and sum 0, min and max blank.
    assert_eq!(
        summary(&c, &a).await,
        s6(["0", "0.00", "0.00", "null", "null", "0"])
    );

    let l1 = c
        .create_record(
            "Line__c",
            json!({"Name": "1", "Invoice__c": a, "Amount__c": 100.10, "Kind__c": "Goods", "Shipped__c": "2024-03-01"}),
        )
        .await;
    let l2 = c
        .create_record(
            "Line__c",
            json!({"Name": "2", "Invoice__c": a, "Amount__c": 20.05, "Kind__c": "Service", "Shipped__c": "2024-05-01"}),
        )
        .await;
    let l3 = c
        .create_record(
            "Line__c",
            json!({"Name": "3", "Invoice__c": a, "Amount__c": 0.1, "Kind__c": "Goods"}),
        )
        .await;
    assert_eq!(
        summary(&c, &a).await,
        s6(["3", "120.25", "100.20", "0.10", "2024-05-01", "1"])
    );

    // Update: exact decimals, filter criteria re-applied.
    let (s, v) = c
        .patch(
            &format!("{DATA}/sobjects/Line__c/{l2}"),
            json!({"Kind__c": "Goods", "Amount__c": 200.2}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        summary(&c, &a).await,
        s6(["3", "300.40", "300.40", "0.10", "2024-05-01", "2"])
    );

    // Reparent: leaves A's totals, joins B's.
    let (s, v) = c
        .patch(
            &format!("{DATA}/sobjects/Line__c/{l1}"),
            json!({"Invoice__c": b}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        summary(&c, &a).await,
        s6(["2", "200.30", "200.30", "0.10", "2024-05-01", "1"])
    );
    assert_eq!(
        summary(&c, &b).await,
        s6(["1", "100.10", "100.10", "100.10", "2024-03-01", "1"])
    );

    // Delete to the recycle bin: no longer counted; undelete: counted again.
    let (s, v) = c.delete(&format!("{DATA}/sobjects/Line__c/{l2}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        summary(&c, &a).await,
        s6(["1", "0.10", "0.10", "0.10", "null", "0"])
    );
    let (s, v) = c
        .post(&format!("{DATA}/sobjects/Line__c/{l2}/undelete"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        summary(&c, &a).await,
        s6(["2", "200.30", "200.30", "0.10", "2024-05-01", "1"])
    );
    let _ = l3;

    // SOQL: selected, filtered and sorted on.
    let v = query(
        &c,
        "SELECT Name, Total__c, Lines__c FROM Invoice__c WHERE Total__c > 150 ORDER BY Total__c DESC",
    )
    .await;
    assert_eq!(v["totalSize"], 1, "{v}");
    assert_eq!(v["records"][0]["Name"], "A", "{v}");
    assert_eq!(num(&v["records"][0]["Total__c"]), "200.30", "{v}");
    let v = query(&c, "SELECT Name FROM Invoice__c ORDER BY Total__c ASC").await;
    let names: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["B", "A"], "{v}");
    let v = query(
        &c,
        "SELECT Name FROM Invoice__c WHERE Lines__c = 1 AND Last_Ship__c < 2024-04-01",
    )
    .await;
    assert_eq!(v["totalSize"], 1, "{v}");
    assert_eq!(v["records"][0]["Name"], "B", "{v}");
    // Through the master-detail relationship from the detail.
    let v = query(
        &c,
        &format!("SELECT Invoice__r.Total__c FROM Line__c WHERE Id = '{l1}'"),
    )
    .await;
    assert_eq!(
        num(&v["records"][0]["Invoice__r"]["Total__c"]),
        "100.10",
        "{v}"
    );

    // Cascade delete of the master: its lines go to the bin with it; the
    // other invoice's totals are untouched.
    let (s, v) = c.delete(&format!("{DATA}/sobjects/Invoice__c/{a}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        summary(&c, &b).await,
        s6(["1", "100.10", "100.10", "100.10", "2024-03-01", "1"])
    );
    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Invoice__c/{a}/undelete"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        summary(&c, &a).await,
        s6(["2", "200.30", "200.30", "0.10", "2024-05-01", "1"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formulas_validation_rules_and_describe_see_rollups() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    setup(&c).await;
    let (s, v) = add_field(
        &c,
        "Invoice__c",
        json!({"api_name": "Average__c", "data_type": "formula", "formula_return_type": "currency",
               "formula_expression": "IF(Lines__c > 0, Total__c / Lines__c, 0)", "scale": 2}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = c
        .post(
            &format!("{META}/objects/Invoice__c/validations"),
            json!({"name": "Over_Limit", "formula_expression": "NOT(ISBLANK(Limit__c)) && Total__c > Limit__c",
                   "error_message": "The lines exceed the invoice's limit"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let a = c.create_record("Invoice__c", json!({"Name": "A"})).await;
    for amount in [10, 20, 31] {
        c.create_record(
            "Line__c",
            json!({"Name": "l", "Invoice__c": a, "Amount__c": amount}),
        )
        .await;
    }
    let v = invoice(&c, &a).await;
    assert_eq!(num(&v["Average__c"]), "20.33", "{v}");

    // The parent's rule reads the roll-up when the parent is saved.
    let (s, v) = c
        .patch(
            &format!("{DATA}/sobjects/Invoice__c/{a}"),
            json!({"Limit__c": 50}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(codes(&v), ["FIELD_CUSTOM_VALIDATION_EXCEPTION"]);
    let (s, v) = c
        .patch(
            &format!("{DATA}/sobjects/Invoice__c/{a}"),
            json!({"Limit__c": 61}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    // Roll-ups are read only.
    let (s, v) = c
        .patch(
            &format!("{DATA}/sobjects/Invoice__c/{a}"),
            json!({"Total__c": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // Describe: the result type, calculated.
    let (s, d) = c.get(&format!("{DATA}/sobjects/Invoice__c/describe")).await;
    assert_eq!(s, StatusCode::OK);
    let f = |n: &str| {
        d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(f("Total__c")["type"], "currency");
    assert_eq!(f("Total__c")["calculated"], true);
    assert_eq!(f("Total__c")["updateable"], false);
    assert_eq!(f("Total__c")["scale"], 2);
    assert_eq!(f("Lines__c")["type"], "double");
    assert_eq!(f("Last_Ship__c")["type"], "date");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_and_dependents_are_refused() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    setup(&c).await;
    c.create_object(json!({"api_name": "Note__c", "fields": [
        {"api_name": "Invoice__c", "data_type": "lookup", "lookup_object": "Invoice__c"},
        {"api_name": "Size__c", "data_type": "number"}
    ]}))
    .await;
    let bad = [
        (
            json!({"summary_foreign_key": "Note__c.Invoice__c", "summary_operation": "count"}),
            "summary_foreign_key",
            "master_detail",
        ),
        (
            json!({"summary_foreign_key": "Nope__c.Invoice__c", "summary_operation": "count"}),
            "summary_foreign_key",
            "Nope__c",
        ),
        (
            json!({"summary_foreign_key": "Line__c.Nope__c", "summary_operation": "count"}),
            "summary_foreign_key",
            "Nope__c",
        ),
        (
            json!({"summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "avg"}),
            "summary_operation",
            "avg",
        ),
        (
            json!({"summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "sum"}),
            "summarized_field",
            "required",
        ),
        (
            json!({"summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "sum", "summarized_field": "Line__c.Note__c"}),
            "summarized_field",
            "text",
        ),
        (
            json!({"summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "sum", "summarized_field": "Line__c.Shipped__c"}),
            "summarized_field",
            "date",
        ),
        (
            json!({"summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "count", "summarized_field": "Amount__c"}),
            "summarized_field",
            "count",
        ),
        (
            json!({"summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "count",
                   "summary_filter_items": [{"field": "Missing__c", "operation": "equals", "value": "x"}]}),
            "summary_filter_items[0]",
            "Missing__c",
        ),
        (
            json!({"summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "count",
                   "summary_filter_items": [{"field": "Amount__c", "operation": "greaterThan", "value": "lots"}]}),
            "summary_filter_items[0]",
            "lots",
        ),
        (
            json!({"summary_foreign_key": "Line__c.Invoice__c", "summary_operation": "count",
                   "summary_filter_items": [{"field": "Amount__c", "operation": "like", "value": "1"}]}),
            "summary_filter_items[0]",
            "like",
        ),
    ];
    for (i, (opts, field, says)) in bad.into_iter().enumerate() {
        let mut def = json!({"api_name": format!("Bad{i}__c"), "data_type": "rollup_summary"});
        for (k, v) in opts.as_object().unwrap() {
            def[k] = v.clone();
        }
        let (s, v) = add_field(&c, "Invoice__c", def).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{i}: {v}");
        assert_eq!(v[0]["fields"][0], field, "{i}: {v}");
        assert!(v[0]["message"].as_str().unwrap().contains(says), "{i}: {v}");
    }
    // Roll-up options on another type.
    let (s, v) = add_field(
        &c,
        "Invoice__c",
        json!({"api_name": "X__c", "data_type": "number", "summary_operation": "count"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v[0]["fields"][0], "summary_operation", "{v}");
    // The summarized field, the filtered field and the relationship cannot
    // be deleted while a roll-up uses them; nor the detail object.
    for f in ["Amount__c", "Kind__c", "Invoice__c"] {
        let (s, v) = c
            .delete(&format!("{META}/objects/Line__c/fields/{f}"))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{f}: {v}");
        assert!(
            v.to_string().contains("roll-up summary Invoice__c."),
            "{f}: {v}"
        );
    }
    let (s, v) = c.delete(&format!("{META}/objects/Line__c")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("roll-up summary"), "{v}");
    // A roll-up is not a group or aggregate key.
    let (s, v) = c
        .get(&format!(
            "{DATA}/query?q={}",
            enc("SELECT Total__c, COUNT(Id) FROM Invoice__c GROUP BY Total__c")
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // A roll-up field itself can be deleted.
    let (s, v) = c
        .delete(&format!("{META}/objects/Invoice__c/fields/Smallest__c"))
        .await;
    assert!(s.is_success(), "{v}");
}
