//! Setup's security administration and the operator view in Chromium:
//! an administrator creates a standard user and a permission set giving
//! read-only access to deals, assigns it; the user signs in, sees the
//! deals and cannot edit them (no Edit button, the edit URL refuses). An
//! operator signs in with the operator token and flips maintenance on and
//! off. Every page is screenshot at 1280 and 360 px (under the build
//! directory's `web-screenshots/`) and checked with axe-core: no serious
//! or critical violation. Needs what `scripts/web-tools` installs.

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

/// Ticks a checkbox the way a keyboard user does (focus, space), so a
/// sticky action bar over it does not matter.
async fn tick(r: &Run, css: &str) {
    let e =
        r.c.find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
    r.c.execute(
        "arguments[0].scrollIntoView({block: 'center'});",
        vec![serde_json::to_value(&e).unwrap()],
    )
    .await
    .expect("scroll");
    e.send_keys(" ").await.expect("space");
}

async fn chromium(base: &str) -> (Driver, Run) {
    let (driver, driver_url) = start_driver().await;
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
    (
        driver,
        Run {
            c,
            base: base.to_string(),
            shots,
            axe: axe_source(),
            totals: BTreeMap::new(),
            pages: 0,
        },
    )
}

const OPERATOR_TOKEN: &str = "op-browser-token-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_setup_and_operator_view_in_chromium() {
    let server = WebServer::start_with_operator_token(OPERATOR_TOKEN).await;
    let api = server.tenant("secweb").await;
    sales_app(&api).await;
    api.record(
        "Deal__c",
        json!({"Name": "Readable deal", "Amount__c": 4200}),
    )
    .await;
    let (_driver, mut r) = chromium(&server.base).await;

    // The administrator signs in and opens Setup's Users.
    r.go("/login").await;
    r.fill("#username", &api.username).await;
    r.fill("#password", PASSWORD).await;
    r.click_to_page("button[type=submit]").await;
    r.go("/setup").await;
    r.look("sec-01-setup-home").await;
    r.click_to_page("a[href='/setup/users']").await;
    // A standard user with a password of the administrator's choosing.
    let name = format!("reader-{}@example.test", std::process::id());
    r.fill("#u-username", &name).await;
    r.fill("#u-password", PASSWORD).await;
    r.fill("#u-tz", "Europe/Paris").await;
    r.click_to_page("form[action='/setup/users'] button[type=submit]")
        .await;
    assert!(r.body().await.contains(&format!("User {name} created.")));
    r.look("sec-02-users").await;

    // A permission set: read (and view all) Deal__c, read its Amount__c.
    r.go("/setup/permission-sets").await;
    r.fill("#p-name", "Deal_Readers").await;
    r.fill("#p-label", "Deal readers").await;
    r.click_to_page("form[action='/setup/permission-sets'] button[type=submit]")
        .await;
    tick(&r, "input[name='o.Deal__c.read']").await;
    // Deals are private: "View all" lets the readers see every deal.
    tick(&r, "input[name='o.Deal__c.view_all']").await;
    tick(&r, "input[name='f.Deal__c.Amount__c.read']").await;
    r.look("sec-03-permission-set").await;
    r.click_to_page("button.primary[type=submit]").await;
    assert!(r.body().await.contains("Saved."));

    // Assigned on the user's page.
    r.go("/setup/users").await;
    r.c.find(Locator::LinkText(&name))
        .await
        .expect("the new user's link")
        .click()
        .await
        .expect("click");
    r.wait_for("input[name='set']").await;
    tick(&r, "input[name='set']").await;
    r.click_to_page("form[action$='/permission-sets'] button[type=submit]")
        .await;
    assert!(r.body().await.contains("Permission sets saved."));
    r.look("sec-04-user").await;
    for (path, name) in [
        ("/setup/roles", "sec-05-roles"),
        ("/setup/groups", "sec-06-groups"),
        ("/setup/sharing", "sec-07-sharing"),
        ("/setup/connected-apps", "sec-08-connected-apps"),
        ("/setup/audit-log", "sec-09-audit-log"),
    ] {
        r.go(path).await;
        r.look(name).await;
    }
    r.click_to_page("form[action='/logout'] button").await;

    // The standard user sees the deal, and cannot edit it.
    r.fill("#username", &name).await;
    r.fill("#password", PASSWORD).await;
    r.click_to_page("button[type=submit]").await;
    r.go("/o/Deal__c").await;
    assert!(r.body().await.contains("Readable deal"));
    assert!(
        !r.body().await.contains(">Setup<"),
        "no Setup link for a standard user"
    );
    r.click_to_page("tbody a").await;
    let record = r.path().await;
    assert!(r.body().await.contains("$4,200.00"));
    assert!(
        r.c.find(Locator::Css("a[data-shortcut='e']"))
            .await
            .is_err(),
        "no Edit button"
    );
    r.look("sec-10-read-only-record").await;
    r.go(&format!("{record}/edit")).await;
    assert!(
        r.text("h1").await.contains("Not allowed"),
        "{}",
        r.text("main").await
    );
    r.go("/setup/users").await;
    assert!(r.text("h1").await.contains("Not allowed"));
    r.go("/operator").await;
    assert!(r.text("h1").await.contains("Not allowed"));

    // The operator view: sign in with the token, maintenance on and off.
    r.go("/operator/login").await;
    r.look("op-01-login").await;
    r.fill("#token", OPERATOR_TOKEN).await;
    r.click_to_page("button[type=submit]").await;
    assert_eq!(r.path().await, "/operator");
    r.look("op-02-status").await;
    r.fill("#message", "Upgrading the database").await;
    r.click_to_page("form[action='/operator/maintenance'] button[type=submit]")
        .await;
    assert!(r.text("#maintenance-state").await.contains("on"));
    assert!(server.platform.maintenance().enabled);
    r.look("op-03-maintenance-on").await;
    r.click_to_page("form[action='/operator/maintenance'] button[type=submit]")
        .await;
    assert!(r.text("#maintenance-state").await.contains("off"));
    assert!(!server.platform.maintenance().enabled);
    r.go("/operator/shards").await;
    r.look("op-04-shards").await;
    r.click_to_page("main ul a").await;
    r.look("op-05-tenant").await;
    r.go("/operator/caches").await;
    r.look("op-06-caches").await;
    println!(
        "axe over {} pages: violations by impact {:?}",
        r.pages, r.totals
    );
    let _ = r.c.close().await;
    server.stop().await;
}
