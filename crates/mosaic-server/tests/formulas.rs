//! Formula fields, default formulas, validation rules, dependency refusal
//! and cycle detection, end to end over HTTP.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn setup(c: &Client) -> (String, String) {
    c.create_object(json!({"api_name": "Account__c", "fields": [
        {"api_name": "Tier__c", "data_type": "text"},
        {"api_name": "Discount__c", "data_type": "percent", "precision": 5, "scale": 2},
        {"api_name": "Parent__c", "data_type": "lookup", "lookup_object": "Account__c"}
    ]}))
    .await;
    c.create_object(json!({"api_name": "Opp__c", "fields": [
        {"api_name": "Amount__c", "data_type": "currency"},
        {"api_name": "Close__c", "data_type": "date"},
        {"api_name": "Stage__c", "data_type": "picklist", "picklist_values": [{"value": "Open"}, {"value": "Won"}]},
        {"api_name": "Account__c", "data_type": "lookup", "lookup_object": "Account__c"},
        {"api_name": "Commission__c", "data_type": "formula", "formula_return_type": "currency", "scale": 2,
         "formula_expression": "IF(Amount__c > 1000, Amount__c * 0.1, 0)"},
        {"api_name": "Net__c", "data_type": "formula", "formula_return_type": "currency", "scale": 2,
         "formula_expression": "Amount__c * (1 - Account__r.Discount__c / 100) - Commission__c"},
        {"api_name": "Label__c", "data_type": "formula", "formula_return_type": "text",
         "formula_expression": "Name & \" / \" & BLANKVALUE(Account__r.Parent__r.Tier__c, \"none\") & \" / \" & TEXT(Stage__c)"},
        {"api_name": "Due__c", "data_type": "formula", "formula_return_type": "date",
         "formula_expression": "ADDMONTHS(Close__c, 1)"},
        {"api_name": "Big__c", "data_type": "formula", "formula_return_type": "boolean",
         "formula_expression": "Amount__c >= 10000"}
    ]}))
    .await;
    let parent = c
        .create_record("Account__c", json!({"Name": "Root", "Tier__c": "Gold"}))
        .await;
    let acc = c
        .create_record(
            "Account__c",
            json!({"Name": "Acme", "Discount__c": 10, "Parent__c": parent}),
        )
        .await;
    (parent, acc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formula_fields_compute_on_read_across_lookups() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    let (_parent, acc) = setup(&c).await;
    let id = c
        .create_record("Opp__c", json!({"Name": "Deal", "Amount__c": 2000, "Account__c": acc, "Close__c": "2024-01-31", "Stage__c": "Won"}))
        .await;
    let (s, v) = c.get(&format!("{DATA}/sobjects/Opp__c/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["Commission__c"].to_string(), "200.00");
    assert_eq!(v["Net__c"].to_string(), "1600.00", "2000 * 0.9 - 200");
    assert_eq!(v["Label__c"], "Deal / Gold / Won");
    assert_eq!(
        v["Due__c"], "2024-02-29",
        "ADDMONTHS keeps month ends, leap year"
    );
    assert_eq!(v["Big__c"], false);

    // Only the asked-for fields, formulas included.
    let (_, v) = c
        .get(&format!("{DATA}/sobjects/Opp__c/{id}?fields=Net__c"))
        .await;
    assert_eq!(v["Net__c"].to_string(), "1600.00");
    assert!(v.get("Amount__c").is_none());

    // A change on the related record shows on the next read.
    let (s, _) = c
        .patch(
            &format!("{DATA}/sobjects/Account__c/{acc}"),
            json!({"Discount__c": 50}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = c.get(&format!("{DATA}/sobjects/Opp__c/{id}")).await;
    assert_eq!(v["Net__c"].to_string(), "800.00");

    // No lookup: cross-object values are blank; nulls propagate.
    let lone = c.create_record("Opp__c", json!({"Name": "Lone"})).await;
    let (_, v) = c.get(&format!("{DATA}/sobjects/Opp__c/{lone}")).await;
    assert_eq!(
        v["Commission__c"].to_string(),
        "0.00",
        "IF(null > 1000…) takes the else branch"
    );
    assert_eq!(v["Net__c"], Value::Null);
    assert_eq!(v["Label__c"], "Lone / none / ");
    assert_eq!(v["Due__c"], Value::Null);

    // Formula fields are read-only and described as calculated.
    let (s, v) = c
        .patch(
            &format!("{DATA}/sobjects/Opp__c/{id}"),
            json!({"Commission__c": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&v), vec!["INVALID_FIELD_FOR_INSERT_UPDATE"]);
    let (_, d) = c.get(&format!("{DATA}/sobjects/Opp__c/describe")).await;
    let f = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Net__c")
        .unwrap();
    assert_eq!(f["calculated"], true);
    assert_eq!(f["type"], "currency");
    assert_eq!(f["updateable"], false);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formula_fields_are_checked_when_saved() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    setup(&c).await;
    let add = |body: Value| {
        let c = c.clone();
        async move { c.post(&format!("{META}/objects/Opp__c/fields"), body).await }
    };
    // Syntax error with a position.
    let (s, v) = add(json!({"api_name": "Bad__c", "data_type": "formula", "formula_return_type": "number", "formula_expression": "Amount__c +"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v[0]["message"].as_str().unwrap().contains("column"), "{v}");
    // Unknown field.
    let (s, v) = add(json!({"api_name": "Bad__c", "data_type": "formula", "formula_return_type": "number", "formula_expression": "Nope__c * 2"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v[0]["message"].as_str().unwrap().contains("Nope__c"), "{v}");
    // Wrong return type.
    let (s, v) = add(json!({"api_name": "Bad__c", "data_type": "formula", "formula_return_type": "date", "formula_expression": "Amount__c * 2"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Missing expression / return type.
    let (s, _) =
        add(json!({"api_name": "Bad__c", "data_type": "formula", "formula_return_type": "number"}))
            .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Function argument checks name the function and the argument.
    let (s, v) = add(json!({"api_name": "Bad__c", "data_type": "formula", "formula_return_type": "text", "formula_expression": "LEFT(Amount__c, 2)"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v[0]["message"].as_str().unwrap().contains("LEFT"), "{v}");
    // Nothing was added.
    let (_, o) = c.get(&format!("{META}/objects/Opp__c")).await;
    assert!(!o.to_string().contains("Bad__c"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_are_refused_with_their_path() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Calc__c", "fields": [
        {"api_name": "A__c", "data_type": "formula", "formula_return_type": "number", "formula_expression": "1"},
        {"api_name": "B__c", "data_type": "formula", "formula_return_type": "number", "formula_expression": "A__c + 1"},
        {"api_name": "C__c", "data_type": "formula", "formula_return_type": "number", "formula_expression": "B__c * 2"}
    ]}))
    .await;
    let id = c.create_record("Calc__c", json!({"Name": "x"})).await;
    let (_, v) = c.get(&format!("{DATA}/sobjects/Calc__c/{id}")).await;
    assert_eq!(
        v["C__c"].to_string(),
        "4",
        "evaluated in dependency order: {v}"
    );
    let (s, v) = c
        .patch(
            &format!("{META}/objects/Calc__c/fields/A__c"),
            json!({"formula_expression": "C__c - 1"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let msg = v[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("cycle")
            && msg.contains("A__c")
            && msg.contains("B__c")
            && msg.contains("C__c"),
        "{msg}"
    );
    // Self reference is a cycle too.
    let (s, v) = c
        .post(&format!("{META}/objects/Calc__c/fields"), json!({"api_name": "D__c", "data_type": "formula", "formula_return_type": "number", "formula_expression": "D__c + 1"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // The definition is unchanged.
    let (_, v) = c.get(&format!("{DATA}/sobjects/Calc__c/{id}")).await;
    assert_eq!(v["C__c"].to_string(), "4");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_used_by_formulas_cannot_be_deleted_or_renamed() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    setup(&c).await;
    c.post(
        &format!("{META}/objects/Opp__c/validations"),
        json!({"name": "Needs_Close", "formula_expression": "ISBLANK(Close__c) && TEXT(Stage__c) = \"Won\"", "error_message": "Won deals need a close date"}),
    )
    .await;
    for (object, field, user) in [
        ("Opp__c", "Amount__c", "formula field Opp__c.Commission__c"),
        ("Account__c", "Discount__c", "formula field Opp__c.Net__c"),
        ("Account__c", "Parent__c", "formula field Opp__c.Label__c"),
        ("Opp__c", "Commission__c", "formula field Opp__c.Net__c"),
        ("Opp__c", "Close__c", "validation rule Opp__c.Needs_Close"),
    ] {
        let (s, v) = c
            .delete(&format!("{META}/objects/{object}/fields/{field}"))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{object}.{field}: {v}");
        assert_eq!(codes(&v), vec!["DELETE_FAILED"]);
        assert!(v[0]["message"].as_str().unwrap().contains(user), "{v}");
    }
    let (s, v) = c
        .patch(
            &format!("{META}/objects/Opp__c/fields/Amount__c"),
            json!({"api_name": "Total__c"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // An unused field can go.
    let (s, _) = c
        .delete(&format!("{META}/objects/Account__c/fields/Tier__c"))
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "Tier__c is read through Parent__r by Label__c"
    );
    let (s, _) = c
        .delete(&format!("{META}/objects/Opp__c/fields/Big__c"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_formulas_apply_on_create() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Task__c", "fields": [
        {"api_name": "Due__c", "data_type": "date", "default_value_formula": "TODAY() + 7"},
        {"api_name": "Owner_Name__c", "data_type": "text", "default_value_formula": "$User.Username"},
        {"api_name": "Score__c", "data_type": "number", "precision": 5, "scale": 1, "default_value_formula": "ROUND(10 / 3, 1)"}
    ]}))
    .await;
    let id = c.create_record("Task__c", json!({"Name": "t"})).await;
    let (_, v) = c.get(&format!("{DATA}/sobjects/Task__c/{id}")).await;
    let expected = (chrono::Utc::now().date_naive() + chrono::Duration::days(7))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(v["Due__c"], expected.as_str());
    assert_eq!(v["Owner_Name__c"], c.username.as_str());
    assert_eq!(v["Score__c"].to_string(), "3.3");
    // Given values win over defaults.
    let id = c
        .create_record("Task__c", json!({"Name": "t", "Due__c": "2030-01-01"}))
        .await;
    let (_, v) = c.get(&format!("{DATA}/sobjects/Task__c/{id}")).await;
    assert_eq!(v["Due__c"], "2030-01-01");
    // A default formula that cannot fit its field is refused at save time.
    let (s, v) = c
        .post(&format!("{META}/objects/Task__c/fields"), json!({"api_name": "When__c", "data_type": "date", "default_value_formula": "\"tomorrow\""}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Default formulas see no record fields.
    let (s, _) = c
        .post(
            &format!("{META}/objects/Task__c/fields"),
            json!({"api_name": "Copy__c", "data_type": "text", "default_value_formula": "Name"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_rules_block_saves_and_see_prior_values() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    let (_, acc) = setup(&c).await;
    let base = format!("{META}/objects/Opp__c/validations");
    let (s, v) = c
        .post(&base, json!({"name": "Positive", "formula_expression": "Amount__c < 0", "error_message": "Amount must not be negative", "error_display_field": "Amount__c"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = c
        .post(&base, json!({"name": "Locked", "formula_expression": "NOT(ISNEW()) && ISCHANGED(Amount__c) && ISPICKVAL(PRIORVALUE(Stage__c), \"Won\")", "error_message": "Won deals are locked"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = c
        .post(&base, json!({"name": "Big_Accounts", "formula_expression": "Net__c > 100000 && Account__r.Discount__c > 20", "error_message": "Too big for this discount"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // Invalid rules are refused.
    let (s, _) = c
        .post(
            &base,
            json!({"name": "NotBool", "formula_expression": "Amount__c", "error_message": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = c
        .post(
            &base,
            json!({"name": "Positive", "formula_expression": "false", "error_message": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "duplicate name");
    let (s, _) = c.post(&base, json!({"name": "Where", "formula_expression": "false", "error_message": "x", "error_display_field": "Nope__c"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Opp__c"),
            json!({"Name": "n", "Amount__c": -1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v[0]["errorCode"], "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert_eq!(v[0]["message"], "Amount must not be negative");
    assert_eq!(v[0]["fields"], json!(["Amount__c"]));

    let id = c
        .create_record(
            "Opp__c",
            json!({"Name": "n", "Amount__c": 10, "Stage__c": "Won", "Account__c": acc}),
        )
        .await;
    // PRIORVALUE/ISCHANGED see the stored record on update.
    let (s, v) = c
        .patch(
            &format!("{DATA}/sobjects/Opp__c/{id}"),
            json!({"Amount__c": 20}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v[0]["message"], "Won deals are locked");
    let (s, _) = c
        .patch(
            &format!("{DATA}/sobjects/Opp__c/{id}"),
            json!({"Name": "renamed"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "unchanged amount passes");
    let (_, v) = c.get(&format!("{DATA}/sobjects/Opp__c/{id}")).await;
    assert_eq!(
        v["Amount__c"].to_string(),
        "10.00",
        "the refused update changed nothing"
    );
    // Cross-object and formula-field references in rules.
    let big = c
        .create_record(
            "Opp__c",
            json!({"Name": "big", "Amount__c": 500000, "Account__c": acc}),
        )
        .await;
    let (s, _) = c
        .patch(
            &format!("{DATA}/sobjects/Account__c/{acc}"),
            json!({"Discount__c": 30}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = c
        .patch(
            &format!("{DATA}/sobjects/Opp__c/{big}"),
            json!({"Name": "still big"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v[0]["message"], "Too big for this discount");
    // Deactivated rules don't fire; deleted rules are gone.
    let (s, _) = c
        .patch(&format!("{base}/Big_Accounts"), json!({"active": false}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = c
        .patch(
            &format!("{DATA}/sobjects/Opp__c/{big}"),
            json!({"Name": "still big"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c.delete(&format!("{base}/Positive")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c
        .post(
            &format!("{DATA}/sobjects/Opp__c"),
            json!({"Name": "n", "Amount__c": -1}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, list) = c.get(&base).await;
    assert_eq!(list["validations"].as_array().unwrap().len(), 2);
    // Batches report rule failures per record.
    let (s, v) = c
        .post(&format!("{DATA}/composite/sobjects"), json!({"records": [
            {"attributes": {"type": "Opp__c"}, "Name": "ok", "Amount__c": 1},
            {"attributes": {"type": "Opp__c"}, "Name": "bad", "Amount__c": 2000000, "Account__c": acc}
        ]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["success"], true);
    assert_eq!(v[1]["success"], true, "Big_Accounts is inactive");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_endpoints_check_and_evaluate() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    let (_, acc) = setup(&c).await;
    let (s, v) = c
        .post(&format!("{META}/formula/check"), json!({"object": "Opp__c", "expression": "Amount__c * (1 - Account__r.Discount__c / 100)", "return_type": "currency"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["return_type"], "number");
    assert_eq!(
        v["referenced_fields"],
        json!(["Account__r.Discount__c", "Amount__c"])
    );
    let (_, v) = c
        .post(
            &format!("{META}/formula/check"),
            json!({"expression": "1 +* 2"}),
        )
        .await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["position"], 3);
    assert_eq!(v["errors"][0]["column"], 4);
    let (_, v) = c
        .post(
            &format!("{META}/formula/check"),
            json!({"expression": "\"a\"", "return_type": "number"}),
        )
        .await;
    assert_eq!(v["ok"], false);

    let id = c
        .create_record(
            "Opp__c",
            json!({"Name": "Deal", "Amount__c": 3000, "Account__c": acc}),
        )
        .await;
    let (s, v) = c
        .post(
            &format!("{META}/formula/evaluate"),
            json!({"object": "Opp__c", "record_id": id, "expression": "Net__c + Commission__c"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["value"].to_string(), "2700.00");
    assert_eq!(v["type"], "number");
    let (_, v) = c
        .post(&format!("{META}/formula/evaluate"), json!({"object": "Opp__c", "record": {"Amount__c": 5000}, "expression": "Commission__c"}))
        .await;
    assert_eq!(v["value"].to_string(), "500.00");
    let (_, v) = c
        .post(&format!("{META}/formula/evaluate"), json!({"expression": "IF(n > 1, UPPER(t), \"no\") & TEXT(d)", "record": {"n": 2, "t": "abc", "d": null}}))
        .await;
    assert_eq!(v["value"], "ABC");
    let (_, v) = c
        .post(
            &format!("{META}/formula/evaluate"),
            json!({"expression": "1/0"}),
        )
        .await;
    assert_eq!(v["value"], Value::Null, "division by zero is null");
    let (s, v) = c
        .post(
            &format!("{META}/formula/evaluate"),
            json!({"expression": "NOPE(1)"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = c
        .post(
            &format!("{META}/formula/evaluate"),
            json!({"object": "Nope__c", "expression": "1"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_select_formula_fields_in_batches() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    let (_, acc) = setup(&c).await;
    for (i, amount) in [500, 2000, 3000].iter().enumerate() {
        c.create_record("Opp__c", json!({"Name": format!("q{i}"), "Amount__c": amount, "Account__c": acc, "Stage__c": "Open"}))
            .await;
    }
    let q =
        "SELECT Name, Commission__c, Net__c, Label__c, Account__r.Name FROM Opp__c ORDER BY Name";
    let (s, v) = c.get(&format!("{DATA}/query?q={}", urlencode(q))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["totalSize"], 3);
    let recs = v["records"].as_array().unwrap();
    let got: Vec<(String, String, String)> = recs
        .iter()
        .map(|r| {
            (
                r["Commission__c"].to_string(),
                r["Net__c"].to_string(),
                r["Label__c"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("0.00".into(), "450.00".into(), "q0 / Gold / Open".into()),
            ("200.00".into(), "1600.00".into(), "q1 / Gold / Open".into()),
            ("300.00".into(), "2400.00".into(), "q2 / Gold / Open".into()),
        ]
    );
    assert_eq!(recs[0]["Account__r"]["Name"], "Acme");
    // Through a child subquery and a parent path.
    let q = "SELECT Name, (SELECT Name, Commission__c FROM Opps__r ORDER BY Name) FROM Account__c WHERE Name = 'Acme'";
    let (s, v) = c.get(&format!("{DATA}/query?q={}", urlencode(q))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let kids = v["records"][0]["Opps__r"]["records"].as_array().unwrap();
    assert_eq!(kids.len(), 3);
    assert_eq!(kids[2]["Commission__c"].to_string(), "300.00");
    server.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
