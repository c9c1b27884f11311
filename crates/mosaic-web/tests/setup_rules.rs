//! Setup's formula editor, layouts and list views, validation and workflow
//! rules, outbox — over HTTP (no browser): every form with its bad input
//! shown next to the input and kept, stale saves refused with 409, the
//! write-only signing secret, and 403 for a standard user on every URL.
//! Runs on SQLite, and on PostgreSQL with `MOSAIC_TEST_BACKEND=postgres`.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn admin(server: &WebServer, tag: &str) -> (Api, Browser) {
    let api = server.tenant(tag).await;
    sales_app(&api).await;
    let mut b = Browser::new(&server.base);
    let p = b.login(&api.username, PASSWORD).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    (api, b)
}

async fn csrf(b: &mut Browser, path: &str) -> String {
    let p = b.get(path).await;
    assert_eq!(p.status, StatusCode::OK, "{path}: {}", p.body);
    p.csrf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_user_gets_403_on_every_url_of_these_areas() {
    let server = WebServer::start().await;
    let (api, mut b) = admin(&server, "sr403").await;
    let token = csrf(&mut b, "/setup/formula").await;
    let (_, std) = api.user("std", "standard").await;
    let mut s = Browser::new(&server.base);
    s.login(&std, PASSWORD).await;
    let home = s.get("/").await;
    assert!(!home.body.contains(">Setup</a>"), "no Setup link for them");
    let theirs = home.csrf();
    for path in [
        "/setup/formula",
        "/setup/formula?object=Deal__c&expression=1",
        "/setup/layouts",
        "/setup/layouts/Deal__c",
        "/setup/layouts/Deal__c/default",
        "/setup/list-views",
        "/setup/list-views/Deal__c",
        "/setup/list-views/Deal__c/new",
        "/setup/validation-rules",
        "/setup/validation-rules/Deal__c",
        "/setup/validation-rules/Deal__c/new",
        "/setup/workflow-rules",
        "/setup/workflow-rules/Deal__c",
        "/setup/workflow-rules/Deal__c/new",
        "/setup/outbox",
    ] {
        let p = s.get(path).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "GET {path}");
        assert!(
            !p.body.contains("Amount__c"),
            "{path} renders nothing of the area"
        );
    }
    for path in [
        "/setup/formula/check",
        "/setup/formula/generate",
        "/setup/layouts/Deal__c/default",
        "/setup/list-views/Deal__c/new",
        "/setup/validation-rules/Deal__c/new",
        "/setup/workflow-rules/Deal__c/new",
        "/setup/outbox/x/replay",
        "/setup/outbox/x/discard",
    ] {
        let p = s
            .post(
                path,
                &[("_csrf", &theirs), ("expression", "1"), ("name", "X")],
            )
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "POST {path}");
    }
    // Without the CSRF token even the admin's post is refused.
    let p = b.post("/setup/formula/check", &[("expression", "1")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(!token.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_formula_editor_checks_evaluates_and_lists_fields_and_functions() {
    let server = WebServer::start().await;
    let (api, mut b) = admin(&server, "srfx").await;
    let acc = api
        .record(
            "Account__c",
            json!({"Name": "Globex", "Industry__c": "Energy"}),
        )
        .await;
    let deal = api
        .record(
            "Deal__c",
            json!({"Name": "D1", "Account__c": acc, "Amount__c": 200, "Probability__c": 50}),
        )
        .await;
    let page = b.get("/setup/formula?object=Deal__c").await;
    assert_eq!(page.status, StatusCode::OK);
    // The function reference, from docs/formula.md.
    assert!(page
        .body
        .contains("BLANKVALUE(expression, substitute_expression)"));
    assert!(page
        .body
        .contains("substitute_expression when expression is blank"));
    // The field picker lists the object's fields and walks lookups.
    assert!(page.body.contains("data-insert=\"Amount__c\""));
    assert!(page.body.contains("Currency"), "types by their labels");
    let down = b.get("/setup/formula?object=Deal__c&path=Account__r").await;
    assert!(
        down.body.contains("data-insert=\"Account__r.Industry__c\""),
        "{}",
        down.body
    );
    let token = page.csrf();
    // Live check (the script's JSON): the error with its line and column.
    let res = b
        .http
        .post(format!("{}/setup/formula/check", server.base))
        .header(
            "cookie",
            b.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
        .header("accept", "application/json")
        .form(&[
            ("_csrf", token.as_str()),
            ("object", "Deal__c"),
            ("expression", "Amount__c *\n  (Probability__c +"),
            ("return_type", "currency"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["errors"][0]["line"], 2, "{v}");
    assert!(v["errors"][0]["column"].as_u64().unwrap() >= 1);
    // Without script: the page, the error under the expression, the text kept.
    let p = b
        .post(
            "/setup/formula/check",
            &[
                ("_csrf", &token),
                ("object", "Deal__c"),
                ("expression", "Amount__c + Nope__c"),
                ("return_type", ""),
                ("_op", "check"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("Line 1, column"), "{}", p.body);
    assert!(p.body.contains("Amount__c + Nope__c"));
    // Fixed: valid, with its return type; evaluated against the record.
    let p = b
        .post(
            "/setup/formula/check",
            &[
                ("_csrf", &token),
                ("object", "Deal__c"),
                ("expression", "Amount__c * Probability__c / 100"),
                ("return_type", ""),
                ("record_id", &deal),
                ("_op", "evaluate"),
            ],
        )
        .await;
    assert!(p.body.contains("Valid — returns"), "{}", p.body);
    assert!(p.body.contains("<output>100</output>"), "{}", p.body);
    // No LLM configured: no AI assist box.
    assert!(!p.body.contains("AI assist"));
    // A record id that does not exist is said next to its input.
    let p = b
        .post(
            "/setup/formula/check",
            &[
                ("_csrf", &token),
                ("object", "Deal__c"),
                ("expression", "Amount__c"),
                ("record_id", "nope"),
                ("_op", "evaluate"),
            ],
        )
        .await;
    assert!(p.body.contains("id=\"formula-record-err\""), "{}", p.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_rules_are_built_toggled_and_refuse_stale_saves() {
    let server = WebServer::start().await;
    let (api, mut b) = admin(&server, "srvr").await;
    let token = csrf(&mut b, "/setup/validation-rules/Deal__c/new").await;
    let list = b.get("/setup/validation-rules/Deal__c").await;
    assert!(list.body.contains("Amount_Too_Large"));
    let version = list.hidden("version");
    // A bad name and a broken formula: errors next to the inputs, input kept.
    let p = b
        .post(
            "/setup/validation-rules/Deal__c/new",
            &[
                ("_csrf", &token),
                ("version", &version),
                ("name", "9 bad name"),
                ("active", "on"),
                ("formula_expression", "Amount__c < 0"),
                ("error_message", "Kept message"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"vr-name-err\""), "{}", p.body);
    assert!(p.body.contains("value=\"9 bad name\""));
    assert!(p.body.contains("Kept message"));
    let p = b
        .post(
            "/setup/validation-rules/Deal__c/new",
            &[
                ("_csrf", &token),
                ("version", &version),
                ("name", "No_Negative"),
                ("active", "on"),
                ("formula_expression", "Amount__c < "),
                ("error_message", "Amount cannot be negative"),
                ("error_display_field", "Amount__c"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("Line 1, column"), "{}", p.body);
    assert!(
        p.body.contains("Amount__c &lt; ") || p.body.contains("Amount__c &#60; "),
        "formula kept"
    );
    // Saved.
    let p = b
        .post(
            "/setup/validation-rules/Deal__c/new",
            &[
                ("_csrf", &token),
                ("version", &version),
                ("name", "No_Negative"),
                ("active", "on"),
                ("formula_expression", "Amount__c < 0"),
                ("error_message", "Amount cannot be negative"),
                ("error_display_field", "Amount__c"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let (s, v) = api
        .send(
            reqwest::Method::POST,
            &format!("{DATA}/sobjects/Deal__c"),
            Some(json!({"Name": "Neg", "Amount__c": -5})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("Amount cannot be negative"));
    // The old version is stale now: 409, nothing overwritten, a reload link.
    let p = b
        .post(
            "/setup/validation-rules/Deal__c/new",
            &[
                ("_csrf", &token),
                ("version", &version),
                ("name", "Other_Rule"),
                ("active", "on"),
                ("formula_expression", "Amount__c > 5"),
                ("error_message", "x"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("changed by someone else"));
    assert!(p.body.contains("Reload the current version"));
    // Deactivate from the list: the save goes through.
    let list = b.get("/setup/validation-rules/Deal__c").await;
    let at = list.body.find("No_Negative").unwrap();
    let toggle = list.body[at..]
        .split("action=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let p = b
        .post(
            &toggle,
            &[("_csrf", &token), ("version", &list.hidden("version"))],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let (s, _) = api
        .send(
            reqwest::Method::POST,
            &format!("{DATA}/sobjects/Deal__c"),
            Some(json!({"Name": "Neg", "Amount__c": -5})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_rules_fire_field_updates_and_never_show_the_secret() {
    let server = WebServer::start().await;
    let (api, mut b) = admin(&server, "srwf").await;
    let form = b.get("/setup/workflow-rules/Deal__c/new").await;
    let token = form.csrf();
    let version = form.hidden("version");
    for op in [
        "equals",
        "not_equals",
        "greater_than",
        "less_than",
        "greater_or_equal",
        "less_or_equal",
        "contains",
        "starts_with",
        "in",
        "not_in",
        "is_null",
        "changed",
        "changed_to",
        "changed_from",
    ] {
        assert!(
            form.body.contains(&format!("value=\"{op}\"")),
            "operator {op}"
        );
    }
    // A bad condition value: shown next to its row, the row kept.
    let p = b
        .post(
            "/setup/workflow-rules/Deal__c/new",
            &[
                ("_csrf", &token),
                ("version", &version),
                ("name", "Hot_Big"),
                ("trigger_type", "created_or_updated"),
                ("re_evaluation", "every_time"),
                ("is_active", "on"),
                ("criteria_kind", "conditions"),
                ("c0.field", "Amount__c"),
                ("c0.operator", "greater_than"),
                ("c0.value", "lots"),
                ("logic", "AND"),
                ("a0.type", "field_update"),
                ("a0.timing", "immediate"),
                ("a0.fu_field", "Hot__c"),
                ("a0.fu_value_type", "literal"),
                ("a0.fu_value", "true"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"c0-err\""), "{}", p.body);
    assert!(p.body.contains("value=\"lots\""));
    // Bad custom logic: next to the logic input.
    let p = b
        .post(
            "/setup/workflow-rules/Deal__c/new",
            &[
                ("_csrf", &token),
                ("version", &version),
                ("name", "Hot_Big"),
                ("trigger_type", "created_or_updated"),
                ("re_evaluation", "every_time"),
                ("is_active", "on"),
                ("criteria_kind", "conditions"),
                ("c0.field", "Amount__c"),
                ("c0.operator", "greater_than"),
                ("c0.value", "1000"),
                ("logic", "1 AND 7"),
                ("a0.type", "field_update"),
                ("a0.timing", "immediate"),
                ("a0.fu_field", "Hot__c"),
                ("a0.fu_value_type", "literal"),
                ("a0.fu_value", "true"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"wf-logic-err\""), "{}", p.body);
    // Saved, with an outbound message carrying a signing secret.
    let p = b
        .post(
            "/setup/workflow-rules/Deal__c/new",
            &[
                ("_csrf", &token),
                ("version", &version),
                ("name", "Hot_Big"),
                ("trigger_type", "created_or_updated"),
                ("re_evaluation", "every_time"),
                ("is_active", "on"),
                ("criteria_kind", "conditions"),
                ("c0.field", "Amount__c"),
                ("c0.operator", "greater_than"),
                ("c0.value", "1000"),
                ("c1.field", "Stage__c"),
                ("c1.operator", "in"),
                ("c1.value", "Open, Won"),
                ("logic", "1 AND 2"),
                ("a0.type", "field_update"),
                ("a0.timing", "immediate"),
                ("a0.fu_field", "Hot__c"),
                ("a0.fu_value_type", "literal"),
                ("a0.fu_value", "true"),
                ("a1.type", "outbound_message"),
                ("a1.timing", "immediate"),
                ("a1.om_url", "https://hooks.example.test/deal"),
                ("a1.om_fields", "Amount__c"),
                ("a1.om_secret", "s3cret-signing-key"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    // It fires on a save.
    let id = api
        .record(
            "Deal__c",
            json!({"Name": "Big", "Amount__c": 5000, "Stage__c": "Open"}),
        )
        .await;
    let (_, rec) = api.get(&format!("{DATA}/sobjects/Deal__c/{id}")).await;
    assert_eq!(rec["Hot__c"], true, "{rec}");
    // The list shows the order of execution; no page shows the secret.
    let list = b.get("/setup/workflow-rules/Deal__c").await;
    assert!(list.body.contains("Order of execution"));
    assert!(list.body.contains("Field update of Hot__c"));
    assert!(!list.body.contains("s3cret-signing-key"));
    let at = list.body.find("Hot_Big").unwrap();
    let edit = list.body[..at]
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let e = b.get(&edit).await;
    assert_eq!(e.status, StatusCode::OK, "{edit}");
    assert!(!e.body.contains("s3cret-signing-key"));
    assert!(e.body.contains("A secret is set"));
    // Saving the form again without typing a secret keeps it.
    let a1 = e.hidden("a1.id");
    let p = b
        .post(
            &edit,
            &[
                ("_csrf", &token),
                ("version", &e.hidden("version")),
                ("name", "Hot_Big"),
                ("trigger_type", "created_or_updated"),
                ("re_evaluation", "every_time"),
                ("is_active", "on"),
                ("criteria_kind", "formula"),
                ("formula", "Amount__c > 1000"),
                ("a0.id", &e.hidden("a0.id")),
                ("a0.type", "field_update"),
                ("a0.timing", "immediate"),
                ("a0.fu_field", "Hot__c"),
                ("a0.fu_value_type", "literal"),
                ("a0.fu_value", "true"),
                ("a1.id", &a1),
                ("a1.type", "outbound_message"),
                ("a1.timing", "immediate"),
                ("a1.om_url", "https://hooks.example.test/deal"),
                ("a1.om_fields", "Amount__c"),
                ("a1.om_secret", ""),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let (_, v) = api.get(&format!("{META}/objects/Deal__c/workflows")).await;
    let r = &v["workflows"][0];
    assert_eq!(r["formula"], "Amount__c > 1000", "{v}");
    let om = r["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action_type"] == "outbound_message")
        .unwrap();
    assert_eq!(
        om["action_config"]["has_secret"], true,
        "the secret was kept: {v}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_moves_show_on_the_record_page_and_list_views_are_edited() {
    let server = WebServer::start().await;
    let (api, mut b) = admin(&server, "srly").await;
    let id = api
        .record("Deal__c", json!({"Name": "Moved", "Amount__c": 10}))
        .await;
    let list = b.get("/setup/layouts/Deal__c").await;
    let at = list.body.find("Deal Layout").unwrap();
    let edit = list.body[..at]
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let e = b.get(&edit).await;
    assert_eq!(e.status, StatusCode::OK);
    assert!(e.body.contains("Preview"));
    // Collect the editor's form as posted, then move "Notes" above "Deal".
    let mut fields: Vec<(String, String)> = vec![
        ("_csrf".into(), e.csrf()),
        ("version".into(), e.hidden("version")),
        ("name".into(), "Deal Layout".into()),
        ("is_default".into(), "on".into()),
        ("s0.label".into(), "Deal".into()),
        ("s0.columns".into(), "2".into()),
    ];
    for (j, f) in ["Name", "Account__c", "Amount__c", "Stage__c"]
        .iter()
        .enumerate()
    {
        fields.push((format!("s0.i{j}.field"), f.to_string()));
    }
    fields.push(("s1.label".into(), "Notes".into()));
    fields.push(("s1.columns".into(), "1".into()));
    fields.push(("s1.i0.field".into(), "Notes__c".into()));
    fields.push(("compact".into(), "Name, Amount__c".into()));
    let mut moved = fields.clone();
    moved.push(("_op".into(), "sec-up:1".into()));
    let refs: Vec<(&str, &str)> = moved
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let p = b.post(&edit, &refs).await;
    assert_eq!(p.status, StatusCode::OK);
    let notes = p.body.find("name=\"s0.label\" value=\"Notes\"");
    assert!(
        notes.is_some(),
        "Notes is the first section now (not saved yet)"
    );
    // Save the moved layout.
    let mut saved: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| {
            let k = if k.starts_with("s0.") {
                k.replacen("s0.", "s1.", 1)
            } else if k.starts_with("s1.") {
                k.replacen("s1.", "s0.", 1)
            } else {
                k.clone()
            };
            (k, v.clone())
        })
        .collect();
    saved.push(("_op".into(), "save".into()));
    let refs: Vec<(&str, &str)> = saved
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let p = b.post(&edit, &refs).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let rec = b.get(&format!("/r/Deal__c/{id}")).await;
    let n = rec.body.find(">Notes<").expect("Notes section");
    let d = rec.body.find(">Deal<").expect("Deal section");
    assert!(n < d, "the record page shows Notes first");
    // A bad compact field: next to its input, the input kept.
    let mut bad = saved.clone();
    for (k, v) in bad.iter_mut() {
        if k == "compact" {
            *v = "Nope__c".into();
        }
        if k == "version" {
            *v = b.get(&edit).await.hidden("version");
        }
    }
    let refs: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let p = b.post(&edit, &refs).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"ly-compact-err\""), "{}", p.body);
    assert!(p.body.contains("value=\"Nope__c\""));

    // List views: a bad row limit next to its input, then saved and listed.
    let f = b.get("/setup/list-views/Deal__c/new").await;
    let token = f.csrf();
    let version = f.hidden("version");
    let p = b
        .post(
            "/setup/list-views/Deal__c/new",
            &[
                ("_csrf", &token),
                ("version", &version),
                ("name", "Big_Deals"),
                ("label", "Big deals"),
                ("columns", "Name, Amount__c"),
                ("c0.field", "Amount__c"),
                ("c0.operator", "greater_than"),
                ("c0.value", "1000"),
                ("logic", "AND"),
                ("sort_field", "Amount__c"),
                ("sort_direction", "desc"),
                ("row_limit", "-3"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"lv-limit-err\""), "{}", p.body);
    assert!(p.body.contains("value=\"-3\""));
    let p = b
        .post(
            "/setup/list-views/Deal__c/new",
            &[
                ("_csrf", &token),
                ("version", &version),
                ("name", "Big_Deals"),
                ("label", "Big deals"),
                ("columns", "Name, Amount__c"),
                ("c0.field", "Amount__c"),
                ("c0.operator", "greater_than"),
                ("c0.value", "1000"),
                ("logic", "AND"),
                ("sort_field", "Amount__c"),
                ("sort_direction", "desc"),
                ("row_limit", "100"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let l = b.get("/setup/list-views/Deal__c").await;
    assert!(l.body.contains("Big deals"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_lists_dead_letters_and_field_history() {
    let server = WebServer::start().await;
    let (api, mut b) = admin(&server, "srob").await;
    let id = api
        .record("Deal__c", json!({"Name": "Tracked", "Amount__c": 10}))
        .await;
    api.patch(
        &format!("{DATA}/sobjects/Deal__c/{id}"),
        json!({"Amount__c": 20}),
    )
    .await;
    let p = b.get("/setup/outbox").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("No dead letters."));
    let p = b
        .get(&format!("/setup/outbox?object=Deal__c&history_record={id}"))
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("Amount__c"), "{}", p.body);
    let p = b.get(&format!("/setup/outbox?record_id={id}")).await;
    assert!(p.body.contains("Nothing pending for this record."));
    // Replaying an unknown dead letter: 404, nothing changed.
    let token = p.csrf();
    let r = b
        .post("/setup/outbox/nope/replay", &[("_csrf", &token)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    server.stop().await;
}
