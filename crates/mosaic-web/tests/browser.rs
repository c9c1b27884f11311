//! The web app in a real browser: Debian's headless Chromium driven over
//! WebDriver (`chromedriver` on a free port, one browser for the whole
//! file). The acceptance flows — login → list view → record → edit with a
//! validation error then fixed (a lookup chosen by type-ahead) → a child
//! created from a related list → global search → delete; then a standard
//! user who must not see a hidden field or an unshared record. Every page
//! is screenshot at 1280 and 360 px wide (under the build directory's
//! `web-screenshots/`), must not scroll sideways at 360 px, and is checked
//! with axe-core: no violation of impact serious or critical.
//!
//! Needs `chromium`, `chromedriver` and axe-core (`MOSAIC_AXE_JS`, or
//! `<target dir>/web-tools/node_modules/axe-core/axe.min.js`):
//! `scripts/web-tools` installs them.

mod common;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Widths every page is looked at.
const WIDTHS: [(u32, u32); 2] = [(1280, 900), (360, 780)];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

fn axe_source() -> String {
    let path = std::env::var_os("MOSAIC_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("web-tools/node_modules/axe-core/axe.min.js"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core not found at {} ({e}): run scripts/web-tools",
            path.display()
        )
    })
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
    // Owned by the guard from the start: killed and waited for on drop.
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
    /// Violations by impact over every page checked.
    totals: BTreeMap<String, usize>,
    pages: usize,
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
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    async fn text(&self, css: &str) -> String {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .expect("text")
    }

    async fn body(&self) -> String {
        self.c.source().await.expect("source")
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
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .expect("click");
    }

    /// Clicks what navigates to another page and waits until that page has
    /// loaded (the old document is gone and the new one is complete).
    async fn click_to_page(&self, css: &str) {
        self.c
            .execute("window.__mosaicOldPage = true;", vec![])
            .await
            .expect("mark the page");
        self.click(css).await;
        for _ in 0..100 {
            let loaded = self
                .c
                .execute(
                    "return window.__mosaicOldPage !== true && document.readyState === 'complete';",
                    vec![],
                )
                .await;
            if matches!(loaded, Ok(Value::Bool(true))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("clicking {css} did not load a new page");
    }

    async fn wait_for(&self, css: &str) {
        self.c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("waiting for {css}: {e}"));
    }

    /// Screenshots at each width, the 360 px overflow check, and axe.
    async fn look(&mut self, name: &str) {
        for (w, h) in WIDTHS {
            self.c.set_window_size(w, h).await.expect("resize");
            tokio::time::sleep(Duration::from_millis(150)).await;
            let png = self.c.screenshot().await.expect("screenshot");
            std::fs::write(self.shots.join(format!("{name}-{w}.png")), png).expect("write png");
            if w == 360 {
                let overflow = self
                    .c
                    .execute(
                        "return document.documentElement.scrollWidth - window.innerWidth;",
                        vec![],
                    )
                    .await
                    .expect("overflow");
                assert!(
                    overflow.as_i64().unwrap_or(0) <= 1,
                    "{name}: the page scrolls sideways at 360 px ({overflow} px)"
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
        self.pages += 1;
        for v in &list {
            let impact = v["impact"].as_str().unwrap_or("unknown").to_string();
            *self.totals.entry(impact.clone()).or_default() +=
                v["nodes"].as_u64().unwrap_or(1) as usize;
            assert!(
                impact != "serious" && impact != "critical",
                "{name}: axe {impact} violation {}: {}",
                v["id"],
                v["help"]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_user_flows_in_chromium() {
    let server = WebServer::start().await;
    let api = server.tenant("web").await;
    sales_app(&api).await;
    let acc = api
        .record(
            "Account__c",
            json!({"Name": "Globex", "Industry__c": "Energy", "Website__c": "https://globex.test"}),
        )
        .await;
    api.record(
        "Account__c",
        json!({"Name": "Initech", "Industry__c": "Retail"}),
    )
    .await;
    let deal = api
        .record(
            "Deal__c",
            json!({"Name": "Alpha deal", "Account__c": acc, "Amount__c": 12500, "Probability__c": 40,
                   "Close__c": "2025-03-15", "Secret__c": "top-secret-value", "Card__c": "4111111111111111",
                   "Notes__c": "Call back next week."}),
        )
        .await;
    for i in 1..=8 {
        api.record("Deal__c", json!({"Name": format!("Deal {i}"), "Account__c": acc, "Amount__c": i * 1000, "Close__c": format!("2025-0{}-01", 1 + i % 9)})).await;
    }
    let (std_id, std_user) = api.user("std", "standard").await;
    let ps = api
        .post(
            "/services/admin/v1/permission-sets",
            json!({"name": "Sales",
                   "object_permissions": [{"object": "Deal__c", "read": true, "create": true, "edit": true},
                                          {"object": "Account__c", "read": true}],
                   "field_permissions": [
                       {"object": "Deal__c", "field": "Account__c", "read": true, "edit": true},
                       {"object": "Deal__c", "field": "Amount__c", "read": true, "edit": true},
                       {"object": "Deal__c", "field": "Stage__c", "read": true, "edit": true},
                       {"object": "Deal__c", "field": "Close__c", "read": true, "edit": true}]}),
        )
        .await;
    api.post(
        &format!(
            "/services/admin/v1/permission-sets/{}/assignments",
            ps["id"].as_str().unwrap()
        ),
        json!({"user_id": std_id}),
    )
    .await;

    let (_driver, driver_url) = start_driver().await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-extensions", "--no-first-run", "--window-size=1280,900", "--hide-scrollbars"]}),
    );
    caps.insert(
        "unhandledPromptBehavior".into(),
        Value::String("accept".into()),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver_url)
        .await
        .expect("a WebDriver session");
    let shots = target_dir().join("web-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let mut r = Run {
        c,
        base: server.base.clone(),
        shots: shots.clone(),
        axe: axe_source(),
        totals: BTreeMap::new(),
        pages: 0,
    };

    // Login, returning to the list view asked for.
    r.go("/o/Deal__c").await;
    assert!(
        r.path().await.starts_with("/login?next="),
        "{}",
        r.path().await
    );
    r.look("01-login").await;
    r.fill("#username", &api.username).await;
    r.fill("#password", PASSWORD).await;
    r.click_to_page("button[type=submit]").await;
    let at = r.path().await;
    assert_eq!(at, "/o/Deal__c", "signed in: {}", r.text("main").await);
    assert_eq!(r.text("h1").await, "All Deals");
    assert!(r.body().await.contains("$12,500.00"));
    r.look("02-list").await;
    // The "/" key jumps to search; sorting by a column.
    r.c.find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("/")
        .await
        .unwrap();
    let active =
        r.c.active_element()
            .await
            .unwrap()
            .attr("id")
            .await
            .unwrap();
    assert_eq!(active.as_deref(), Some("global-q"), "keyboard shortcut /");
    r.click_to_page("th a[href*='sort=Amount__c']").await;
    let first = r.text("tbody th a").await;
    assert_eq!(first, "Deal 1", "sorted by amount ascending");

    // Open the record.
    r.go(&format!("/r/Deal__c/{deal}")).await;
    assert_eq!(r.text("h1").await, "Alpha deal");
    let page = r.body().await;
    assert!(
        page.contains("top-secret-value") && page.contains("••••"),
        "masked encrypted text"
    );
    assert!(!page.contains("4111111111111111"));
    r.look("03-record").await;

    // Edit: a validation error is shown next to its field, then fixed.
    r.click("a[data-shortcut=e]").await;
    r.wait_for("#record-form").await;
    r.look("04-edit").await;
    r.fill("#f-Amount__c", "2000000").await;
    // The lookup: type, pick the suggestion.
    r.fill("#f-Account__c", "Init").await;
    r.wait_for(".suggestions li").await;
    r.click(".suggestions li").await;
    r.click("#record-form button.primary[type=submit]:not([name])")
        .await;
    r.wait_for("#f-Amount__c-err").await;
    assert!(r
        .text("#f-Amount__c-err")
        .await
        .contains("Amount is too large"));
    let kept =
        r.c.find(Locator::Css("#f-Amount__c"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap();
    assert_eq!(kept.as_deref(), Some("2000000"), "the input is kept");
    r.look("05-edit-error").await;
    r.fill("#f-Amount__c", "15000").await;
    r.click("#record-form button.primary[type=submit]:not([name])")
        .await;
    r.wait_for(".alert.info").await;
    let page = r.body().await;
    assert!(page.contains("$15,000.00"), "saved and formatted");
    assert!(
        page.contains(">Initech</a>"),
        "the lookup chosen by type-ahead"
    );
    r.look("06-record-saved").await;

    // A child from the related list, its parent prefilled.
    r.click(".related a.button").await;
    r.wait_for("#record-form").await;
    let parent =
        r.c.find(Locator::Css("#f-Deal__c"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap();
    assert_eq!(parent.as_deref(), Some("Alpha deal"));
    r.fill("#f-Name", "First line").await;
    r.fill("#f-Qty__c", "3").await;
    r.look("07-new-child").await;
    r.click("#record-form button.primary[type=submit]").await;
    r.wait_for(".alert.info").await;
    assert_eq!(r.text("h1").await, "First line");
    r.go(&format!("/r/Deal__c/{deal}")).await;
    assert!(
        r.body().await.contains("First line"),
        "the related list shows the child"
    );

    // Global search.
    r.fill("#global-q", "Alpha").await;
    r.click(".global-search button").await;
    r.wait_for(".hits").await;
    assert!(r.body().await.contains("Alpha deal"));
    r.look("08-search").await;

    // Home with recent records.
    r.go("/").await;
    r.wait_for(".recent").await;
    r.look("09-home").await;

    // Delete (the script asks first; the confirmation page asks again).
    r.go(&format!("/r/Deal__c/{deal}")).await;
    r.click("a[data-confirm-delete]").await;
    r.wait_for("form button.danger").await;
    r.look("10-delete").await;
    r.click("form button.danger").await;
    r.wait_for(".alert.info").await;
    assert!(r.path().await.starts_with("/o/Deal__c"));
    assert!(!r.body().await.contains("Alpha deal"));
    r.click(".user button").await;
    r.wait_for("#username").await;

    // A standard user: no hidden field, no unshared record.
    r.fill("#username", &std_user).await;
    r.fill("#password", PASSWORD).await;
    r.click("button[type=submit]").await;
    r.wait_for(".home").await;
    r.go("/o/Deal__c/new").await;
    assert!(
        !r.body().await.contains("Secret"),
        "a hidden field is never in a form"
    );
    r.fill("#f-Name", "My own deal").await;
    r.fill("#f-Amount__c", "990").await;
    r.look("11-std-new").await;
    r.click("#record-form button.primary[type=submit]").await;
    r.wait_for(".alert.info").await;
    let page = r.body().await;
    assert!(
        !page.contains("Secret") && !page.contains("top-secret"),
        "no hidden field on the page"
    );
    r.look("12-std-record").await;
    r.go("/o/Deal__c").await;
    let list = r.body().await;
    assert!(
        list.contains("My own deal") && !list.contains("Deal 1<"),
        "only shared records are listed"
    );
    r.look("13-std-list").await;
    let other = api
        .record("Deal__c", json!({"Name": "Admin only", "Amount__c": 1}))
        .await;
    r.go(&format!("/r/Deal__c/{other}")).await;
    assert_eq!(r.text("h1").await, "Not found");
    assert!(!r.body().await.contains("Admin only"));
    r.look("14-std-not-found").await;

    // A reset password is changed at the sign-in, on its own page.
    r.go("/").await;
    r.click(".user button").await;
    r.wait_for("#username").await;
    let temporary = "temporary passphrase 9";
    let (s, v) = api
        .send(
            reqwest::Method::POST,
            &format!("/services/admin/v1/users/{std_id}/password"),
            Some(json!({"password": temporary})),
        )
        .await;
    assert_eq!(s.as_u16(), 204, "{v}");
    r.fill("#username", &std_user).await;
    r.fill("#password", temporary).await;
    r.click_to_page("button[type=submit]").await;
    r.wait_for("#new_password").await;
    assert_eq!(r.text("h1").await, "Change your password");
    r.look("15-password-change").await;
    r.fill("#current_password", temporary).await;
    r.fill("#new_password", "a brand new passphrase").await;
    r.click_to_page("button[type=submit]").await;
    r.wait_for(".home").await;

    // A refusal by the server's gate is a page too (maintenance here).
    server
        .platform
        .set_maintenance(true, Some("Back at 10:00 UTC".into()), "test")
        .await
        .expect("maintenance on");
    r.go("/").await;
    assert_eq!(r.text("h1").await, "Temporarily unavailable");
    assert!(r.body().await.contains("Back at 10:00 UTC"));
    r.look("16-maintenance").await;
    server
        .platform
        .set_maintenance(false, None, "test")
        .await
        .expect("maintenance off");

    println!(
        "axe-core: {} pages checked, violations by impact (nodes): {:?}; 0 serious, 0 critical",
        r.pages, r.totals
    );
    println!("screenshots: {}", shots.display());
    r.c.close().await.expect("close");
    server.stop().await;
}
