//! Setup's Object Manager over HTTP (and in Chromium at the end): object
//! and field forms with their errors placed next to the input and what was
//! typed kept, version conflicts shown and never overwritten, dry runs of
//! destructive changes then their confirmation (and `?dry_run=true` on the
//! metadata API), and the 403 a standard user gets on every Setup URL.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A signed-in admin's page client and the tenant's API client.
async fn admin(server: &WebServer, tag: &str) -> (Api, Browser) {
    let api = server.tenant(tag).await;
    let mut b = Browser::new(&server.base);
    let p = b.login(&api.username, PASSWORD).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "admin login");
    (api, b)
}

/// Posts a form of `page` (its CSRF token added) to `path`.
async fn submit(b: &mut Browser, path: &str, csrf: &str, form: &[(&str, &str)]) -> Page {
    let mut all: Vec<(&str, &str)> = vec![("_csrf", csrf)];
    all.extend_from_slice(form);
    b.post(path, &all).await
}

async fn field_json(api: &Api, object: &str, field: &str) -> Value {
    let (s, v) = api
        .get(&format!("{META}/objects/{object}/fields/{field}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{object}.{field}: {v}");
    v
}

/// The text of the field error shown next to input `id`.
fn error_next_to(body: &str, id: &str) -> Option<String> {
    let at = body.find(&format!("id=\"{id}-err\">"))?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1;
    let end = rest.find("</p>")?;
    Some(rest[start..end].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_forms_errors_and_conflicts() {
    let server = WebServer::start().await;
    let (api, mut b) = admin(&server, "objf").await;

    // The home of Setup links to the Object Manager; the list is empty.
    let home = b.get("/setup").await;
    assert!(home
        .body
        .contains("href=\"/setup/objects\">Object Manager</a>"));
    let new = b.get("/setup/objects/new").await;
    assert_eq!(new.status, StatusCode::OK);
    let csrf = new.csrf();

    // A bad api name: the error sits next to the api name, input kept.
    let bad = submit(
        &mut b,
        "/setup/objects/new",
        &csrf,
        &[
            ("label", "Invoice <b>"),
            ("plural_label", "Invoices"),
            ("api_name", "1nvoice__c"),
            ("sharing_model", "private"),
            ("name_field.label", "Number"),
            ("name_field.data_type", "auto_number"),
            ("name_field.auto_number_format", "INV-{0000}"),
            ("name_field.auto_number_start", "100"),
            ("enable_history", "1"),
        ],
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let msg = error_next_to(&bad.body, "f-api_name").expect("an error next to the api name");
    assert!(msg.contains("1nvoice__c"), "{msg}");
    assert!(
        bad.body.contains("value=\"1nvoice__c\""),
        "what was typed is kept"
    );
    assert!(bad.body.contains("value=\"Invoice &"), "kept and escaped");
    assert!(!bad.body.contains("Invoice <b>"));

    // A bad auto number format: next to the format input.
    let bad = submit(
        &mut b,
        "/setup/objects/new",
        &csrf,
        &[
            ("label", "Invoice"),
            ("plural_label", "Invoices"),
            ("api_name", "Invoice__c"),
            ("sharing_model", "private"),
            ("name_field.data_type", "auto_number"),
            ("name_field.auto_number_format", "INV"),
            ("name_field.auto_number_start", "x1"),
        ],
    )
    .await;
    assert!(error_next_to(&bad.body, "f-name_field-auto_number_start")
        .unwrap()
        .contains("whole number"));
    let bad = submit(
        &mut b,
        "/setup/objects/new",
        &csrf,
        &[
            ("label", "Invoice"),
            ("plural_label", "Invoices"),
            ("api_name", "Invoice__c"),
            ("sharing_model", "private"),
            ("name_field.data_type", "auto_number"),
            ("name_field.auto_number_format", "INV"),
            ("name_field.auto_number_start", "1"),
        ],
    )
    .await;
    assert!(error_next_to(&bad.body, "f-name_field-auto_number_format")
        .unwrap()
        .contains("counter token"));

    // A good one: redirected to its page.
    let ok = submit(
        &mut b,
        "/setup/objects/new",
        &csrf,
        &[
            ("label", "Invoice"),
            ("plural_label", "Invoices"),
            ("api_name", "Invoice__c"),
            ("sharing_model", "private"),
            ("name_field.label", "Number"),
            ("name_field.data_type", "auto_number"),
            ("name_field.auto_number_format", "INV-{0000}"),
            ("name_field.auto_number_start", "100"),
            ("enable_history", "1"),
        ],
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(
        ok.location.as_deref(),
        Some("/setup/objects/Invoice__c?notice=created")
    );
    let (_, o) = api.get(&format!("{META}/objects/Invoice__c")).await;
    assert_eq!(o["sharing_model"], "private");
    assert_eq!(o["enable_history"], true);
    assert_eq!(o["name_field"]["auto_number_format"], "INV-{0000}");
    assert_eq!(o["name_field"]["auto_number_start"], 100);

    // A duplicate api name: next to the api name.
    let dup = submit(
        &mut b,
        "/setup/objects/new",
        &csrf,
        &[
            ("label", "Invoice"),
            ("plural_label", "Invoices"),
            ("api_name", "Invoice__c"),
            ("sharing_model", "private"),
            ("name_field.data_type", "text"),
        ],
    )
    .await;
    assert!(error_next_to(&dup.body, "f-api_name")
        .unwrap()
        .contains("already exists"));

    // The list: label, api name, field count, pool usage.
    let list = b.get("/setup/objects").await;
    assert!(list
        .body
        .contains("<a href=\"/setup/objects/Invoice__c\">Invoice</a>"));
    assert!(list.body.contains("0 of 220 slots used"), "{}", list.body);

    // Edit, then someone else edits meanwhile: 409, kept, not overwritten.
    let edit = b.get("/setup/objects/Invoice__c/edit").await;
    let version = edit.hidden("_version");
    let saved = submit(
        &mut b,
        "/setup/objects/Invoice__c/edit",
        &csrf,
        &[
            ("_version", &version),
            ("label", "Bill"),
            ("plural_label", "Bills"),
            ("sharing_model", "private"),
            ("name_field.label", "Number"),
            ("name_field.data_type", "auto_number"),
            ("name_field.auto_number_format", "B-{0000}"),
            ("name_field.auto_number_start", "100"),
            ("enable_history", "1"),
        ],
    )
    .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (s, _) = api
        .patch(
            &format!("{META}/objects/Invoice__c"),
            json!({"label": "Theirs"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let stale = submit(
        &mut b,
        "/setup/objects/Invoice__c/edit",
        &csrf,
        &[
            ("_version", &version),
            ("label", "Mine"),
            ("plural_label", "Mines"),
            ("sharing_model", "private"),
            ("name_field.data_type", "text"),
        ],
    )
    .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert!(stale.body.contains("Changed by someone else"));
    assert!(
        stale
            .body
            .contains("href=\"/setup/objects/Invoice__c/edit\""),
        "a reload choice"
    );
    assert!(stale.body.contains("value=\"Mine\""), "my input is kept");
    let (_, o) = api.get(&format!("{META}/objects/Invoice__c")).await;
    assert_eq!(o["label"], "Theirs", "never overwritten");

    // A forged form (no CSRF token) changes nothing.
    let forged = b
        .post(
            "/setup/objects/new",
            &[("label", "X"), ("api_name", "X__c")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_forms_for_every_type_with_errors() {
    let server = WebServer::start().await;
    let (api, mut b) = admin(&server, "fldf").await;
    api.post(
        &format!("{META}/objects"),
        json!({"api_name": "Account__c", "label": "Account"}),
    )
    .await;
    api.post(
        &format!("{META}/objects"),
        json!({"api_name": "Deal__c", "label": "Deal"}),
    )
    .await;
    let page = b.get("/setup/objects/Deal__c/fields/new").await;
    assert_eq!(page.status, StatusCode::OK);
    // The type chooser lists types by label.
    for label in [
        "Text Area",
        "Text Area (Long)",
        "Currency",
        "Date/Time",
        "Checkbox",
        "Picklist (Multi-Select)",
        "Master-Detail",
        "Auto Number",
        "Text (Encrypted)",
    ] {
        assert!(page.body.contains(&format!(">{label}</option>")), "{label}");
    }
    let bad_type = b
        .get("/setup/objects/Deal__c/fields/new?type=varchar")
        .await;
    assert_eq!(bad_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_next_to(&bad_type.body, "f-type")
        .unwrap()
        .contains("varchar"));

    // The options page shows only what applies to the type.
    let text = b.get("/setup/objects/Deal__c/fields/new?type=text").await;
    assert!(text.body.contains("name=\"length\"") && !text.body.contains("name=\"precision\""));
    let num = b
        .get("/setup/objects/Deal__c/fields/new?type=currency")
        .await;
    assert!(num.body.contains("name=\"precision\"") && !num.body.contains("name=\"length\""));
    let csrf = num.csrf();
    let version = num.hidden("_version");
    let v = version.as_str();

    // Bad input next to its input, kept.
    let p = submit(
        &mut b,
        "/setup/objects/Deal__c/fields/new?type=text",
        &csrf,
        &[
            ("_version", v),
            ("label", "Code"),
            ("api_name", "Code__c"),
            ("length", "abc"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_next_to(&p.body, "f-length").unwrap().contains("abc"));
    let p = submit(
        &mut b,
        "/setup/objects/Deal__c/fields/new?type=text",
        &csrf,
        &[
            ("_version", v),
            ("label", "Code"),
            ("api_name", "Code__c"),
            ("length", "999"),
        ],
    )
    .await;
    assert!(error_next_to(&p.body, "f-length")
        .unwrap()
        .contains("between 1 and 255"));
    assert!(p.body.contains("value=\"999\""));
    let p = submit(
        &mut b,
        "/setup/objects/Deal__c/fields/new?type=currency",
        &csrf,
        &[
            ("_version", v),
            ("label", "Amount"),
            ("api_name", "Amount__c"),
            ("precision", "30"),
        ],
    )
    .await;
    assert!(error_next_to(&p.body, "f-precision")
        .unwrap()
        .contains("precision"));
    let p = submit(
        &mut b,
        "/setup/objects/Deal__c/fields/new?type=text",
        &csrf,
        &[("_version", v), ("label", "Name"), ("api_name", "Name")],
    )
    .await;
    assert!(error_next_to(&p.body, "f-api_name")
        .unwrap()
        .contains("standard field"));

    // One field of each kind of option, each through the form.
    let add = |ty: &'static str, extra: Vec<(&'static str, String)>| (ty, extra);
    let fields = vec![
        add(
            "text",
            vec![
                ("label", "Code".into()),
                ("api_name", "Code__c".into()),
                ("length", "20".into()),
                ("is_unique", "1".into()),
                ("is_external_id", "1".into()),
                ("is_required", "1".into()),
                ("help_text", "The deal's code".into()),
                ("default_value", "NEW".into()),
            ],
        ),
        add(
            "currency",
            vec![
                ("label", "Amount".into()),
                ("api_name", "Amount__c".into()),
                ("precision", "12".into()),
                ("scale", "2".into()),
                ("is_indexed", "1".into()),
                ("default_value", "10.50".into()),
            ],
        ),
        add(
            "date",
            vec![
                ("label", "Close".into()),
                ("api_name", "Close__c".into()),
                ("default_value_formula", "TODAY() + 30".into()),
            ],
        ),
        add(
            "boolean",
            vec![
                ("label", "Won".into()),
                ("api_name", "Won__c".into()),
                ("default_value", "true".into()),
            ],
        ),
        add(
            "lookup",
            vec![
                ("label", "Account".into()),
                ("api_name", "Account__c".into()),
                ("lookup_object", "Account__c".into()),
                ("relationship_name", "Deals__r".into()),
            ],
        ),
        add(
            "auto_number",
            vec![
                ("label", "Ref".into()),
                ("api_name", "Ref__c".into()),
                ("auto_number_format", "D-{000}".into()),
                ("auto_number_start", "5".into()),
            ],
        ),
        add(
            "formula",
            vec![
                ("label", "Net".into()),
                ("api_name", "Net__c".into()),
                ("formula_return_type", "currency".into()),
                ("formula_expression", "Amount__c * 0.9".into()),
                ("precision", "12".into()),
                ("scale", "2".into()),
                ("formula_blank_as_zero", "1".into()),
            ],
        ),
        add(
            "long_text",
            vec![
                ("label", "Notes".into()),
                ("api_name", "Notes__c".into()),
                ("length", "5000".into()),
            ],
        ),
        add(
            "encrypted_text",
            vec![
                ("label", "Card".into()),
                ("api_name", "Card__c".into()),
                ("length", "100".into()),
            ],
        ),
    ];
    for (ty, extra) in &fields {
        let form = b
            .get(&format!("/setup/objects/Deal__c/fields/new?type={ty}"))
            .await;
        let ver = form.hidden("_version");
        let mut f: Vec<(&str, &str)> = vec![("_version", &ver)];
        f.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let p = submit(
            &mut b,
            &format!("/setup/objects/Deal__c/fields/new?type={ty}"),
            &csrf,
            &f,
        )
        .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{ty}: {}", p.body);
    }
    let code = field_json(&api, "Deal__c", "Code__c").await;
    assert_eq!(
        (
            code["length"].as_u64(),
            code["is_unique"].as_bool(),
            code["is_external_id"].as_bool()
        ),
        (Some(20), Some(true), Some(true))
    );
    assert_eq!(code["help_text"], "The deal's code");
    assert_eq!(code["default_value"], "NEW");
    let amount = field_json(&api, "Deal__c", "Amount__c").await;
    assert_eq!(
        (amount["precision"].as_u64(), amount["scale"].as_u64()),
        (Some(12), Some(2))
    );
    assert_eq!(
        field_json(&api, "Deal__c", "Close__c").await["default_value_formula"],
        "TODAY() + 30"
    );
    let acc = field_json(&api, "Deal__c", "Account__c").await;
    assert_eq!(acc["lookup_object"], "Account__c");
    assert_eq!(acc["relationship_name"], "Deals__r");
    assert_eq!(
        field_json(&api, "Deal__c", "Ref__c").await["auto_number_format"],
        "D-{000}"
    );
    assert_eq!(
        field_json(&api, "Deal__c", "Net__c").await["formula_expression"],
        "Amount__c * 0.9"
    );

    // The object page shows types by label and the pool usage.
    let detail = b.get("/setup/objects/Deal__c").await;
    for label in [
        "<td>Text</td>",
        "<td>Currency</td>",
        "<td>Checkbox</td>",
        "<td>Lookup</td>",
        "<td>Auto Number</td>",
        "<td>Formula</td>",
        "<td>Text Area (Long)</td>",
        "<td>Text (Encrypted)</td>",
    ] {
        assert!(detail.body.contains(label), "{label}");
    }
    assert!(
        detail
            .body
            .contains("<th scope=\"row\">string</th><td class=\"num\">4</td>"),
        "string pool: Code, Account, Ref, Card"
    );
    assert!(detail.body.contains("<th scope=\"row\">clob</th><td class=\"num\">1</td><td class=\"num\">0</td><td class=\"num\">9</td>"));

    // A picklist: values, then reorder and deactivate in the edit form.
    let form = b
        .get("/setup/objects/Deal__c/fields/new?type=picklist")
        .await;
    let ver = form.hidden("_version");
    let p = submit(
        &mut b,
        "/setup/objects/Deal__c/fields/new?type=picklist",
        &csrf,
        &[
            ("_version", &ver),
            ("label", "Stage"),
            ("api_name", "Stage__c"),
            ("pv_rows", "3"),
            ("pv0_value", "Open"),
            ("pv0_label", "Open"),
            ("pv0_order", "10"),
            ("pv0_active", "1"),
            ("pv1_value", "open"),
            ("pv1_order", "20"),
            ("pv1_active", "1"),
            ("pv2_value", ""),
            ("pv_default", "0"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        p.body.contains("Picklist values: duplicate picklist value"),
        "{}",
        p.body
    );
    assert!(p.body.contains("value=\"open\""), "rows kept");
    let p = submit(
        &mut b,
        "/setup/objects/Deal__c/fields/new?type=picklist",
        &csrf,
        &[
            ("_version", &ver),
            ("label", "Stage"),
            ("api_name", "Stage__c"),
            ("pv_rows", "3"),
            ("is_restricted", "1"),
            ("pv0_value", "Open"),
            ("pv0_order", "10"),
            ("pv0_active", "1"),
            ("pv1_value", "Won"),
            ("pv1_order", "20"),
            ("pv1_active", "1"),
            ("pv2_value", "Lost"),
            ("pv2_order", "30"),
            ("pv2_active", "1"),
            ("pv_default", "0"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let edit = b.get("/setup/objects/Deal__c/fields/Stage__c").await;
    assert!(edit
        .body
        .contains("name=\"pv2_value\" type=\"text\" value=\"Lost\""));
    let ver = edit.hidden("_version");
    let rows = edit.hidden("pv_rows");
    let p = submit(
        &mut b,
        "/setup/objects/Deal__c/fields/Stage__c",
        &csrf,
        &[
            ("_version", &ver),
            ("label", "Stage"),
            ("api_name", "Stage__c"),
            ("pv_rows", &rows),
            ("is_restricted", "1"),
            ("pv0_value", "Open"),
            ("pv0_order", "10"),
            ("pv0_active", "1"),
            ("pv1_value", "Won"),
            ("pv1_order", "40"),
            ("pv2_value", "Lost"),
            ("pv2_order", "20"),
            ("pv2_active", "1"),
            ("pv3_value", "Parked"),
            ("pv3_order", "30"),
            ("pv3_active", "1"),
            ("pv_default", "0"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let stage = field_json(&api, "Deal__c", "Stage__c").await;
    let order: Vec<(&str, bool)> = stage["picklist_values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap(),
                v["is_active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            ("Open", true),
            ("Lost", true),
            ("Parked", true),
            ("Won", false)
        ]
    );

    // A master-detail on a second object, through the form.
    api.post(
        &format!("{META}/objects"),
        json!({"api_name": "Line__c", "label": "Line"}),
    )
    .await;
    let form = b
        .get("/setup/objects/Line__c/fields/new?type=master_detail")
        .await;
    assert!(form
        .body
        .contains("<option value=\"Deal__c\">Deal (Deal__c)</option>"));
    let ver = form.hidden("_version");
    let p = submit(
        &mut b,
        "/setup/objects/Line__c/fields/new?type=master_detail",
        &csrf,
        &[
            ("_version", &ver),
            ("label", "Deal"),
            ("api_name", "Deal__c"),
            ("lookup_object", ""),
        ],
    )
    .await;
    assert!(error_next_to(&p.body, "f-lookup_object")
        .unwrap()
        .contains("lookup_object is required"));
    let p = submit(
        &mut b,
        "/setup/objects/Line__c/fields/new?type=master_detail",
        &csrf,
        &[
            ("_version", &ver),
            ("label", "Deal"),
            ("api_name", "Deal__c"),
            ("lookup_object", "Deal__c"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(
        field_json(&api, "Line__c", "Deal__c").await["data_type"],
        "master_detail"
    );

    // A stale field edit: 409 with a reload choice, nothing overwritten.
    let edit = b.get("/setup/objects/Deal__c/fields/Code__c").await;
    let ver = edit.hidden("_version");
    let (s, _) = api
        .patch(
            &format!("{META}/objects/Deal__c/fields/Code__c"),
            json!({"label": "Theirs"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let p = submit(
        &mut b,
        "/setup/objects/Deal__c/fields/Code__c",
        &csrf,
        &[
            ("_version", &ver),
            ("label", "Mine"),
            ("api_name", "Code__c"),
            ("length", "20"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::CONFLICT);
    assert!(p.body.contains("Changed by someone else") && p.body.contains("value=\"Mine\""));
    assert_eq!(
        field_json(&api, "Deal__c", "Code__c").await["label"],
        "Theirs"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_then_confirmation() {
    let server = WebServer::start().await;
    let (api, mut b) = admin(&server, "dry").await;
    api.post(&format!("{META}/objects"), json!({"api_name": "Deal__c", "label": "Deal", "fields": [
        {"api_name": "Amount__c", "data_type": "number"},
        {"api_name": "Memo__c", "data_type": "text"},
        {"api_name": "Double__c", "data_type": "formula", "formula_return_type": "number", "formula_expression": "Amount__c * 2"}
    ]})).await;
    api.post(
        &format!("{META}/objects"),
        json!({"api_name": "Line__c", "label": "Line", "fields": [
            {"api_name": "Deal__c", "data_type": "master_detail", "lookup_object": "Deal__c"}
        ]}),
    )
    .await;
    for (n, memo) in [(1, Some("a")), (2, Some("b")), (3, None)] {
        let mut body = json!({"Name": format!("D{n}"), "Amount__c": n});
        if let Some(m) = memo {
            body["Memo__c"] = json!(m);
        }
        api.record("Deal__c", body).await;
    }

    // Deleting a field: what it affects, then a confirmation.
    let dry = b.get("/setup/objects/Deal__c/fields/Memo__c/delete").await;
    assert_eq!(dry.status, StatusCode::OK);
    assert!(dry.body.contains("delete field Deal__c.Memo__c"));
    assert!(
        dry.body
            .contains("<strong>2</strong> records hold a value in this field"),
        "{}",
        dry.body
    );
    let csrf = dry.csrf();
    let ver = dry.hidden("_version");
    // A POST without the confirm field only shows the report again.
    let again = submit(
        &mut b,
        "/setup/objects/Deal__c/fields/Memo__c/delete",
        &csrf,
        &[("_version", &ver)],
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(
        field_json(&api, "Deal__c", "Memo__c").await["api_name"] == "Memo__c",
        "still there"
    );

    // The metadata API's dry run answers the same report and changes nothing.
    let (s, report) = api
        .send(
            reqwest::Method::DELETE,
            &format!("{META}/objects/Deal__c/fields/Amount__c?dry_run=true"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["records"], 3);
    assert_eq!(
        report["formulas"],
        json!(["formula field Deal__c.Double__c"])
    );
    assert!(report["blockers"][0]
        .as_str()
        .unwrap()
        .contains("formula field Deal__c.Double__c"));
    let (s, _) = api
        .send(
            reqwest::Method::DELETE,
            &format!("{META}/objects/Deal__c/fields/Amount__c?dry_run=maybe"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        field_json(&api, "Deal__c", "Amount__c").await["api_name"],
        "Amount__c"
    );
    // The page shows the formula as what blocks the delete: no confirm button.
    let blocked = b
        .get("/setup/objects/Deal__c/fields/Amount__c/delete")
        .await;
    assert!(
        blocked.body.contains("This change cannot be made yet")
            && blocked.body.contains("Deal__c.Double__c")
    );
    assert!(!blocked.body.contains("name=\"_confirm\""));

    // Confirmed against a stale version: 409, the field stays.
    let (s, _) = api
        .patch(
            &format!("{META}/objects/Deal__c"),
            json!({"label": "Deal!"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let stale = submit(
        &mut b,
        "/setup/objects/Deal__c/fields/Memo__c/delete",
        &csrf,
        &[("_version", &ver), ("_confirm", "1")],
    )
    .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(
        field_json(&api, "Deal__c", "Memo__c").await["api_name"],
        "Memo__c"
    );
    let ver = stale.hidden("_version");
    let done = submit(
        &mut b,
        "/setup/objects/Deal__c/fields/Memo__c/delete",
        &csrf,
        &[("_version", &ver), ("_confirm", "1")],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let (s, _) = api
        .get(&format!("{META}/objects/Deal__c/fields/Memo__c"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Changing the sharing model: its impact first, then confirmed.
    let edit = b.get("/setup/objects/Deal__c/edit").await;
    let ver = edit.hidden("_version");
    let form = [
        ("_version", ver.as_str()),
        ("label", "Deal"),
        ("plural_label", "Deals"),
        ("sharing_model", "private"),
        ("name_field.label", "Name"),
        ("name_field.data_type", "text"),
    ];
    let dry = submit(&mut b, "/setup/objects/Deal__c/edit", &csrf, &form).await;
    assert_eq!(dry.status, StatusCode::OK);
    assert!(dry
        .body
        .contains("change the sharing model of Deal__c from public_read_write to private"));
    assert!(dry
        .body
        .contains("<strong>3</strong> records of this object"));
    assert!(
        dry.body
            .contains("name=\"sharing_model\" value=\"private\""),
        "the form is carried"
    );
    let (_, o) = api.get(&format!("{META}/objects/Deal__c")).await;
    assert_eq!(
        o["sharing_model"], "public_read_write",
        "nothing changed yet"
    );
    let mut confirmed = form.to_vec();
    confirmed.push(("_confirm", "1"));
    let done = submit(&mut b, "/setup/objects/Deal__c/edit", &csrf, &confirmed).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let (_, o) = api.get(&format!("{META}/objects/Deal__c")).await;
    assert_eq!(o["sharing_model"], "private");
    let (s, r) = api
        .send(
            reqwest::Method::PATCH,
            &format!("{META}/objects/Line__c?dry_run=true"),
            Some(json!({"sharing_model": "controlled_by_parent"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["blockers"], json!([]));

    // Deleting an object another one points at: blocked; the child first.
    let dry = b.get("/setup/objects/Deal__c/delete").await;
    assert!(dry
        .body
        .contains("Line__c.Deal__c (master_detail) points at Deal__c"));
    assert!(!dry.body.contains("name=\"_confirm\""));
    let refused = submit(
        &mut b,
        "/setup/objects/Deal__c/delete",
        &csrf,
        &[("_confirm", "1")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let dry = b.get("/setup/objects/Line__c/delete").await;
    assert!(dry
        .body
        .contains("<strong>0</strong> records of this object"));
    assert!(dry
        .body
        .contains("Line__c.Deal__c (master_detail) → Deal__c"));
    let done = submit(
        &mut b,
        "/setup/objects/Line__c/delete",
        &csrf,
        &[("_confirm", "1")],
    )
    .await;
    assert_eq!(
        done.location.as_deref(),
        Some("/setup/objects?notice=deleted")
    );
    let (s, _) = api.get(&format!("{META}/objects/Line__c")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_users_get_403_on_every_object_manager_url() {
    let server = WebServer::start().await;
    let api = server.tenant("std403").await;
    api.post(
        &format!("{META}/objects"),
        json!({"api_name": "Deal__c", "label": "Deal", "fields": [
        {"api_name": "Memo__c", "data_type": "text"}]}),
    )
    .await;
    let (_, std_user) = api.user("std", "standard").await;
    let mut b = Browser::new(&server.base);
    let home = b.login(&std_user, PASSWORD).await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    let csrf = b.get("/").await.csrf();
    for path in [
        "/setup/objects",
        "/setup/objects/new",
        "/setup/objects/Deal__c",
        "/setup/objects/Deal__c/edit",
        "/setup/objects/Deal__c/delete",
        "/setup/objects/Deal__c/fields/new",
        "/setup/objects/Deal__c/fields/new?type=text",
        "/setup/objects/Deal__c/fields/Memo__c",
        "/setup/objects/Deal__c/fields/Memo__c/delete",
        "/setup/objects/Nope__c",
    ] {
        let p = b.get(path).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "GET {path}");
        assert!(
            !p.body.contains("Memo__c") && !p.body.contains("Pool usage"),
            "{path}: nothing of the area"
        );
        let p = submit(
            &mut b,
            path,
            &csrf,
            &[("_confirm", "1"), ("label", "X"), ("api_name", "X__c")],
        )
        .await;
        assert!(
            p.status == StatusCode::FORBIDDEN || p.status == StatusCode::METHOD_NOT_ALLOWED,
            "POST {path}: {}",
            p.status
        );
    }
    let (_, o) = api.get(&format!("{META}/objects/Deal__c")).await;
    assert_eq!(
        o["fields"].as_array().map(Vec::len),
        Some(1),
        "nothing changed"
    );
    // Signed out: the login page, with the way back.
    let mut anon = Browser::new(&server.base);
    let p = anon.get("/setup/objects/Deal__c").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    server.stop().await;
}

// ---------------------------------------------------------------- in Chromium

mod chromium {
    use super::*;
    use fantoccini::{Client, ClientBuilder, Locator};
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    const WIDTHS: [(u32, u32); 2] = [(1280, 900), (360, 780)];

    fn target_dir() -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
    }

    struct Driver(Child);

    impl Drop for Driver {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    async fn start_driver() -> (Driver, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let driver = Driver(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (run scripts/web-tools)"),
        );
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if reqwest::get(format!("{url}/status")).await.is_ok() {
                return (driver, url);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start");
    }

    struct Run {
        c: Client,
        base: String,
        shots: PathBuf,
        axe: String,
        totals: BTreeMap<String, usize>,
    }

    impl Run {
        async fn go(&self, path: &str) {
            self.c
                .goto(&format!("{}{path}", self.base))
                .await
                .expect("goto");
        }

        async fn path(&self) -> String {
            let u = self.c.current_url().await.expect("url");
            u.path().to_string()
        }

        async fn fill(&self, css: &str, value: &str) {
            let e = self
                .c
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("{css}: {e}"));
            e.clear().await.expect("clear");
            e.send_keys(value).await.expect("type");
        }

        async fn click(&self, css: &str) {
            self.c
                .execute("window.__old = true;", vec![])
                .await
                .expect("mark");
            self.c
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("{css}: {e}"))
                .click()
                .await
                .expect("click");
        }

        /// Clicks what submits or navigates, and waits for the new page.
        async fn click_to_page(&self, css: &str) {
            self.click(css).await;
            for _ in 0..100 {
                let loaded = self
                    .c
                    .execute(
                        "return window.__old !== true && document.readyState === 'complete';",
                        vec![],
                    )
                    .await;
                if matches!(loaded, Ok(Value::Bool(true))) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{css} did not load a new page");
        }

        async fn choose(&self, select: &str, value: &str) {
            self.c
                .find(Locator::Css(&format!("{select} option[value=\"{value}\"]")))
                .await
                .unwrap_or_else(|e| panic!("{select}={value}: {e}"))
                .click()
                .await
                .expect("choose");
        }

        async fn body(&self) -> String {
            self.c.source().await.expect("source")
        }

        /// Screenshots at each width (the 1280 px one also into the docs),
        /// no sideways scroll at 360 px, and axe.
        async fn look(&mut self, name: &str) {
            for (w, h) in WIDTHS {
                self.c.set_window_size(w, h).await.expect("resize");
                tokio::time::sleep(Duration::from_millis(150)).await;
                let png = self.c.screenshot().await.expect("screenshot");
                std::fs::write(self.shots.join(format!("{name}-{w}.png")), &png).expect("png");
                if w == 1280 {
                    let docs =
                        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
                    let _ = std::fs::write(docs.join(format!("{name}-{w}.png")), &png);
                }
                if w == 360 {
                    let overflow = self
                        .c
                        .execute(
                            "return document.documentElement.scrollWidth - window.innerWidth;",
                            vec![],
                        )
                        .await
                        .expect("overflow");
                    let wide = self
                        .c
                        .execute("return Array.from(document.querySelectorAll('body *')).filter(function (e) { return e.getBoundingClientRect().right > window.innerWidth + 1 && e.children.length === 0; }).slice(0, 5).map(function (e) { return e.tagName + '.' + e.className + ':' + (e.textContent || '').slice(0, 30); });", vec![])
                        .await
                        .expect("wide elements");
                    assert!(
                        overflow.as_i64().unwrap_or(0) <= 1,
                        "{name}: scrolls sideways at 360 px: {wide}"
                    );
                }
            }
            self.c.set_window_size(1280, 900).await.expect("resize");
            self.c.execute(&self.axe, vec![]).await.expect("inject axe");
            let found = self
                .c
                .execute_async(
                    "var done = arguments[arguments.length - 1];
                     axe.run(document, {resultTypes: ['violations']})
                       .then(function (r) { done(r.violations.map(function (v) {
                         return {id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help}; })); })
                       .catch(function (e) { done({error: String(e)}); });",
                    vec![],
                )
                .await
                .expect("axe");
            let list = found
                .as_array()
                .cloned()
                .unwrap_or_else(|| panic!("axe failed: {found}"));
            for v in &list {
                let impact = v["impact"].as_str().unwrap_or("unknown").to_string();
                *self.totals.entry(impact.clone()).or_default() += 1;
                assert!(
                    impact != "serious" && impact != "critical",
                    "{name}: axe {impact} violation {}: {}",
                    v["id"],
                    v["help"]
                );
            }
        }

        async fn new_object(&mut self, label: &str, plural: &str, api: &str) {
            self.go("/setup/objects/new").await;
            self.fill("#f-label", label).await;
            self.fill("#f-plural_label", plural).await;
            self.fill("#f-api_name", api).await;
            self.click_to_page("#setup-form button.primary").await;
            assert_eq!(self.path().await, format!("/setup/objects/{api}"));
        }

        async fn new_field(
            &mut self,
            object: &str,
            ty: &str,
            label: &str,
            api: &str,
            extra: &[(&str, &str)],
        ) {
            self.go(&format!("/setup/objects/{object}/fields/new"))
                .await;
            self.choose("#f-type", ty).await;
            self.click_to_page("#setup-form button.primary").await;
            self.fill("#f-label", label).await;
            self.fill("#f-api_name", api).await;
            for (css, v) in extra {
                if let Some(select) = css.strip_prefix("select") {
                    self.choose(select, v).await;
                } else {
                    self.fill(css, v).await;
                }
            }
            self.click_to_page("#setup-form button.primary").await;
            assert_eq!(
                self.path().await,
                format!("/setup/objects/{object}"),
                "{ty} field {api}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn object_manager_in_chromium() {
        let server = WebServer::start().await;
        let api = server.tenant("setupweb").await;
        let (_driver, url) = start_driver().await;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--disable-extensions", "--no-first-run", "--window-size=1280,900", "--hide-scrollbars"]}),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a WebDriver session");
        let shots = target_dir().join("web-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        let axe_path = std::env::var_os("MOSAIC_AXE_JS")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir().join("web-tools/node_modules/axe-core/axe.min.js"));
        let mut r = Run {
            c,
            base: server.base.clone(),
            shots,
            axe: std::fs::read_to_string(&axe_path).expect("axe-core (run scripts/web-tools)"),
            totals: BTreeMap::new(),
        };

        // Sign in, follow the Setup link to the Object Manager.
        r.go("/login").await;
        r.fill("#username", &api.username).await;
        r.fill("#password", PASSWORD).await;
        r.click_to_page("form button[type=submit]").await;
        r.click_to_page("a.setup-link").await;
        assert_eq!(r.path().await, "/setup");
        r.click_to_page("a[href=\"/setup/objects\"]").await;
        r.look("setup-objects-empty").await;

        // An object with a mistake first: the error under its input.
        r.go("/setup/objects/new").await;
        r.fill("#f-label", "Deal").await;
        r.fill("#f-plural_label", "Deals").await;
        r.fill("#f-api_name", "1Deal__c").await;
        r.choose("#f-name_field-data_type", "auto_number").await;
        r.fill("#f-name_field-auto_number_format", "D-{0000}").await;
        r.click_to_page("#setup-form button.primary").await;
        assert!(r.body().await.contains("id=\"f-api_name-err\""));
        r.look("setup-objects-new-error").await;
        r.fill("#f-api_name", "Deal__c").await;
        r.click_to_page("#setup-form button.primary").await;
        assert_eq!(r.path().await, "/setup/objects/Deal__c");

        // Five field types on Deal, through the forms.
        r.new_field(
            "Deal__c",
            "currency",
            "Amount",
            "Amount__c",
            &[("#f-precision", "12"), ("#f-scale", "2")],
        )
        .await;
        r.new_field("Deal__c", "date", "Close date", "Close__c", &[])
            .await;
        r.new_field("Deal__c", "boolean", "Won", "Won__c", &[])
            .await;
        r.new_field("Deal__c", "email", "Contact email", "Contact__c", &[])
            .await;
        r.new_field(
            "Deal__c",
            "picklist",
            "Stage",
            "Stage__c",
            &[("#pv0-value", "Open"), ("#pv1-value", "Won")],
        )
        .await;
        r.look("setup-objects-detail").await;

        // A second object under it: a master-detail.
        r.new_object("Line", "Lines", "Line__c").await;
        r.go("/setup/objects/Line__c/fields/new").await;
        r.choose("#f-type", "master_detail").await;
        r.click_to_page("#setup-form button.primary").await;
        r.fill("#f-label", "Deal").await;
        r.fill("#f-api_name", "Deal__c").await;
        r.choose("#f-lookup_object", "Deal__c").await;
        r.look("setup-objects-field").await;
        r.click_to_page("#setup-form button.primary").await;
        assert_eq!(r.path().await, "/setup/objects/Line__c");
        r.new_field("Line__c", "number", "Quantity", "Qty__c", &[])
            .await;
        r.go("/setup/objects").await;
        r.look("setup-objects-list").await;

        // The app exists as built.
        let (_, line) = api
            .get(&format!("{META}/objects/Line__c/fields/Deal__c"))
            .await;
        assert_eq!(line["data_type"], "master_detail");
        assert_eq!(line["lookup_object"], "Deal__c");
        let (_, deal) = api.get(&format!("{META}/objects/Deal__c")).await;
        let types: Vec<&str> = deal["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["data_type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            vec!["currency", "date", "boolean", "email", "picklist"]
        );
        api.record("Deal__c", json!({"Contact__c": "a@example.test"}))
            .await;

        // A dry run before deleting a field, then confirmed.
        r.go("/setup/objects/Deal__c/fields/Contact__c/delete")
            .await;
        assert!(r
            .body()
            .await
            .contains("<strong>1</strong> records hold a value"));
        r.look("setup-objects-dry-run").await;
        r.click_to_page("form button.danger").await;
        assert_eq!(r.path().await, "/setup/objects/Deal__c");
        let (s, _) = api
            .get(&format!("{META}/objects/Deal__c/fields/Contact__c"))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        println!(
            "axe findings over the Object Manager pages (none serious or critical): {:?}",
            r.totals
        );
        r.c.close().await.expect("close");
        server.stop().await;
    }
}
