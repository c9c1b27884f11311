//! `mosaic metadata import`: the fixture SFDX project (tests/fixtures/sfdx)
//! imported into a running server, then queried; a re-run changes nothing;
//! a changed file is updated; unsupported elements are reported by file and
//! element.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sfdx")
}

fn import(project: &Path, dir: &Path, token: &str, tenant: &str, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["metadata", "import"])
        .arg(project)
        .arg("--data-dir")
        .arg(dir)
        .args(["--token", token, "--tenant", tenant])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run mosaic metadata import")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn line<'a>(out: &'a str, object: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{object}: ")))
        .unwrap_or("")
}

async fn call(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn imports_the_fixture_project_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (token, _) = create_tenant(dir.path(), &[], "importer");
    let base = server.url.clone();

    // Dry run without a server: the project is read and mapped.
    let dry = Command::new(BIN)
        .args(["metadata", "import"])
        .arg(fixture())
        .arg("--dry-run")
        .output()
        .unwrap();
    let out = text(&dry);
    assert!(!dry.status.success(), "two items cannot be imported: {out}");
    assert!(line(&out, "Invoice__c").contains("10 mapped"), "{out}");

    // The wrong tenant is refused before anything changes.
    let wrong = import(&fixture(), dir.path(), &token, "someone-else", &[]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("belongs to tenant 'importer'"),
        "{}",
        text(&wrong)
    );

    // A dry run against the server changes nothing.
    let o = import(&fixture(), dir.path(), &token, "importer", &["--dry-run"]);
    let out = text(&o);
    assert!(
        line(&out, "Vendor__c").contains("object would be created"),
        "{out}"
    );
    let (s, _) = call(
        &base,
        &token,
        reqwest::Method::GET,
        "/services/metadata/v1/objects/Vendor__c",
        None,
    )
    .await;
    assert_eq!(s, 404);

    let o = import(&fixture(), dir.path(), &token, "importer", &[]);
    let out = text(&o);
    // The roll-up and the global value set are refused, by file and element.
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("error: force-app/main/default/objects/Vendor__c/fields/Total_Billed__c.field-meta.xml: <type>Summary</type>: roll-up summary fields are not supported"),
        "{out}"
    );
    assert!(
        out.contains("Region__c.field-meta.xml: <valueSet><valueSetName>Regions</valueSetName>: global value sets are not supported"),
        "{out}"
    );
    assert!(
        line(&out, "Vendor__c").contains("object created; fields: 6 created"),
        "{out}"
    );
    assert!(
        line(&out, "Invoice__c").contains(
            "fields: 10 created, 0 updated, 0 unchanged, 0 failed; validation rules: 1 created"
        ),
        "{out}"
    );
    assert!(
        line(&out, "Invoice_Line__c").contains("fields: 2 created"),
        "{out}"
    );

    // The schema works: records, the auto number, formulas across the
    // lookup, the child relationship chosen in the project, the rule.
    let data = "/services/data/v60.0";
    let (s, v) = call(
        &base,
        &token,
        reqwest::Method::POST,
        &format!("{data}/sobjects/Vendor__c"),
        Some(json!({"Name": "Globex", "Code__c": "GLX", "Categories__c": "Hardware;Services"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let vendor = v["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &base,
        &token,
        reqwest::Method::POST,
        &format!("{data}/sobjects/Invoice__c"),
        Some(json!({"Vendor__c": vendor, "Amount__c": 0})),
    )
    .await;
    assert_eq!(s, 400, "the validation rule: {v}");
    assert!(v.to_string().contains("The amount must be positive"), "{v}");
    let (s, v) = call(
        &base,
        &token,
        reqwest::Method::POST,
        &format!("{data}/sobjects/Invoice__c"),
        Some(json!({"Vendor__c": vendor, "Amount__c": 100, "Tax_Rate__c": 10})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let invoice = v["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &base,
        &token,
        reqwest::Method::POST,
        &format!("{data}/sobjects/Invoice_Line__c"),
        Some(json!({"Name": "Widgets", "Invoice__c": invoice})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let q = "SELECT Name, Status__c, Vendor_Name__c, Vendor__r.Name, (SELECT Name, Quantity__c FROM Lines__r) FROM Invoice__c";
    let (s, v) = call(
        &base,
        &token,
        reqwest::Method::GET,
        &format!("{data}/query?q={}", q.replace(' ', "+").replace(',', "%2C")),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let r = &v["records"][0];
    assert_eq!(r["Name"], "INV-0100");
    assert_eq!(r["Status__c"], "Draft");
    assert_eq!(r["Vendor_Name__c"], "Globex (GLX)");
    assert_eq!(r["Vendor__r"]["Name"], "Globex");
    assert_eq!(r["Lines__r"]["records"][0]["Name"], "Widgets");
    assert_eq!(r["Lines__r"]["records"][0]["Quantity__c"], 1);
    let q = "SELECT Name, (SELECT Name FROM Invoices__r) FROM Vendor__c";
    let (s, v) = call(
        &base,
        &token,
        reqwest::Method::GET,
        &format!("{data}/query?q={}", q.replace(' ', "+").replace(',', "%2C")),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["records"][0]["Invoices__r"]["totalSize"], 1);

    // Again: nothing changes.
    let o = import(&fixture(), dir.path(), &token, "importer", &[]);
    let out = text(&o);
    assert!(
        line(&out, "Vendor__c")
            .contains("object unchanged; fields: 0 created, 0 updated, 6 unchanged"),
        "{out}"
    );
    assert!(line(&out, "Invoice__c").contains("fields: 0 created, 0 updated, 10 unchanged, 0 failed; validation rules: 0 created, 0 updated, 1 unchanged"), "{out}");

    // A changed label and a new picklist value are updated.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), copy.path());
    let status = copy
        .path()
        .join("force-app/main/default/objects/Invoice__c/fields/Status__c.field-meta.xml");
    let changed = std::fs::read_to_string(&status).unwrap().replace(
        "<label>Status</label>",
        "<label>Invoice Status</label>",
    ).replace(
        "        </valueSetDefinition>",
        "            <value>\n                <fullName>Void</fullName>\n                <default>false</default>\n                <label>Void</label>\n            </value>\n        </valueSetDefinition>",
    );
    std::fs::write(&status, changed).unwrap();
    let o = import(copy.path(), dir.path(), &token, "importer", &[]);
    let out = text(&o);
    assert!(
        line(&out, "Invoice__c").contains("fields: 0 created, 1 updated, 9 unchanged"),
        "{out}"
    );
    let (_, f) = call(
        &base,
        &token,
        reqwest::Method::GET,
        "/services/metadata/v1/objects/Invoice__c/fields/Status__c",
        None,
    )
    .await;
    assert_eq!(f["label"], "Invoice Status");
    assert_eq!(
        f["picklist_values"].as_array().map(Vec::len),
        Some(4),
        "{f}"
    );
    drop(server);
}
