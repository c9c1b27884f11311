//! Harness of the web app's tests: a real server on a random loopback port
//! (on PostgreSQL with `MOSAIC_TEST_BACKEND=postgres`), a tenant with a
//! small sales app, and a cookie-keeping page client.
#![allow(dead_code)]

use mosaic_access::NewTenant;
use mosaic_runtime::{Platform, PlatformConfig};
use mosaic_server::AppState;
use mosaic_store_pg::scratch::ScratchDatabase;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub const PASSWORD: &str = "Plum-Violet-Tundra-42";
pub const DATA: &str = "/services/data/v60.0";
pub const META: &str = "/services/metadata/v1";

pub struct WebServer {
    pub base: String,
    pub platform: Arc<Platform>,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    _databases: Vec<ScratchDatabase>,
}

impl WebServer {
    pub async fn start() -> WebServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut PlatformConfig)) -> WebServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = PlatformConfig::new(dir.path());
        cfg.rate_limits = false;
        tweak(&mut cfg);
        let mut databases = Vec::new();
        if std::env::var("MOSAIC_TEST_BACKEND").as_deref() == Ok("postgres") {
            let meta = ScratchDatabase::create().await.expect("scratch database");
            let records = ScratchDatabase::create().await.expect("scratch database");
            cfg.metadata_url = Some(meta.url.clone());
            cfg.records_url = Some(records.url.clone());
            cfg.pg_pool_size = 8;
            databases.push(meta);
            databases.push(records);
        }
        let platform = Arc::new(Platform::open(cfg).await.expect("open platform"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut state = AppState::new(platform.clone(), base.clone());
        // The tests' own requests stand in for a TLS-terminating proxy.
        state.trusted_proxies =
            Arc::new(mosaic_server::TrustedProxies::parse("127.0.0.1/32").expect("proxy list"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = mosaic_server::serve(listener, state, async {
                let _ = rx.await;
            })
            .await;
        });
        WebServer {
            base,
            platform,
            _dir: dir,
            shutdown: Some(tx),
            handle: Some(handle),
            _databases: databases,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), h).await;
        }
        self.platform.close();
    }

    /// A tenant with the sales app of [`sales_app`]; returns its admin's API client.
    pub async fn tenant(&self, tag: &str) -> Api {
        let username = format!("admin-{tag}-{}@example.test", std::process::id());
        let created = self
            .platform
            .create_tenant(NewTenant {
                name: format!("Tenant {tag}"),
                subdomain: format!("t{tag}{}", std::process::id()),
                tier: "starter".into(),
                admin_username: username.clone(),
                admin_password: PASSWORD.into(),
                admin_email: None,
            })
            .await
            .expect("create tenant");
        Api {
            base: self.base.clone(),
            token: created.access_token,
            username,
            http: reqwest::Client::new(),
        }
    }
}

/// A bearer-token client of the REST API (fixtures).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    pub username: String,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.expect("send");
        let s = res.status();
        let t = res.text().await.unwrap_or_default();
        (s, serde_json::from_str(&t).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.send(reqwest::Method::POST, path, Some(body)).await;
        assert!(s.is_success(), "POST {path}: {s} {v}");
        v
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn record(&self, object: &str, body: Value) -> String {
        self.post(&format!("{DATA}/sobjects/{object}"), body).await["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    /// Creates a user with `profile`; returns (id, username).
    pub async fn user(&self, name: &str, profile: &str) -> (String, String) {
        let username = format!(
            "{name}-{}-{}@example.test",
            std::process::id(),
            &self.token[4..10]
        );
        let v = self
            .post(
                "/services/admin/v1/users",
                json!({"username": username, "password": PASSWORD, "profile": profile}),
            )
            .await;
        (v["id"].as_str().unwrap().to_string(), username)
    }
}

/// The sales app every web test uses: accounts, deals (private sharing,
/// history, a validation rule, an encrypted field, a lookup) and their
/// lines (master-detail), with a layout and a list view.
pub async fn sales_app(api: &Api) {
    api.post(&format!("{META}/objects"), json!({
        "api_name": "Account__c", "label": "Account",
        "fields": [
            {"api_name": "Industry__c", "data_type": "picklist", "picklist_values": [{"value": "Energy"}, {"value": "Retail"}]},
            {"api_name": "Website__c", "data_type": "url"}
        ]})).await;
    api.post(&format!("{META}/objects"), json!({
        "api_name": "Deal__c", "label": "Deal", "sharing_model": "private", "enable_history": true,
        "fields": [
            {"api_name": "Account__c", "data_type": "lookup", "lookup_object": "Account__c"},
            {"api_name": "Amount__c", "data_type": "currency", "precision": 14, "scale": 2, "is_required": true},
            {"api_name": "Stage__c", "data_type": "picklist", "picklist_values": [{"value": "Open", "is_default": true}, {"value": "Won"}, {"value": "Lost"}]},
            {"api_name": "Probability__c", "data_type": "percent", "precision": 5, "scale": 1},
            {"api_name": "Expected__c", "data_type": "formula", "formula_return_type": "currency", "scale": 2, "formula_expression": "Amount__c * BLANKVALUE(Probability__c, 0) / 100"},
            {"api_name": "Close__c", "data_type": "date"},
            {"api_name": "Secret__c", "data_type": "text", "length": 80},
            {"api_name": "Card__c", "data_type": "encrypted_text", "length": 40},
            {"api_name": "Hot__c", "data_type": "boolean"},
            {"api_name": "Notes__c", "data_type": "long_text", "length": 4000}
        ]})).await;
    api.post(&format!("{META}/objects/Deal__c/validations"), json!({
        "name": "Amount_Too_Large", "formula_expression": "Amount__c > 1000000",
        "error_message": "Amount is too large for a single deal", "error_display_field": "Amount__c"})).await;
    api.post(
        &format!("{META}/objects"),
        json!({
        "api_name": "Line__c", "label": "Line",
        "fields": [
            {"api_name": "Deal__c", "data_type": "master_detail", "lookup_object": "Deal__c"},
            {"api_name": "Qty__c", "data_type": "number", "precision": 6, "scale": 0}
        ]}),
    )
    .await;
    api.post(&format!("{META}/objects/Deal__c/layouts"), json!({
        "name": "Deal Layout",
        "sections": [
            {"label": "Deal", "columns": 2, "items": ["Name", "Account__c", "Amount__c", "Stage__c", "Probability__c", "Expected__c", "Close__c", "Hot__c", "Secret__c", "Card__c", "OwnerId"]},
            {"label": "Notes", "columns": 1, "items": ["Notes__c"]}
        ],
        "related_lists": [{"object": "Line__c", "columns": ["Name", "Qty__c"], "page_size": 3}],
        "compact_fields": ["Name", "Amount__c", "Stage__c"]})).await;
    api.post(&format!("{META}/objects/Deal__c/listviews"), json!({
        "name": "Open_Deals", "label": "Open deals", "columns": ["Name", "Account__c", "Amount__c", "Stage__c", "Close__c"],
        "filter_criteria": {"conditions": [{"field": "Stage__c", "operator": "equals", "value": "Open"}]},
        "sort": [{"field": "Amount__c", "direction": "desc"}]})).await;
}

/// A page client keeping its own cookies and never following redirects.
pub struct Browser {
    pub base: String,
    pub http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
    pub set_cookies: Vec<String>,
}

impl Page {
    /// The value of the hidden `_csrf` input.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"_csrf\" value=\"")
            .expect("a csrf field")
            + 20;
        self.body[at..].split('"').next().unwrap().to_string()
    }

    pub fn hidden(&self, name: &str) -> String {
        let pat = format!("name=\"{name}\" value=\"");
        let at = self
            .body
            .find(&pat)
            .unwrap_or_else(|| panic!("no hidden {name}"))
            + pat.len();
        self.body[at..].split('"').next().unwrap().to_string()
    }
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, res: reqwest::Response) -> Page {
        let status = res.status();
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let set_cookies: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        for c in &set_cookies {
            if let Some((k, rest)) = c.split_once('=') {
                let v = rest.split(';').next().unwrap_or_default();
                if v.is_empty() {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        Page {
            status,
            location,
            body: res.text().await.unwrap_or_default(),
            set_cookies,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("get");
        self.finish(res).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_with(path, form, &[]).await
    }

    pub async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let res = rb.send().await.expect("post");
        self.finish(res).await
    }

    /// Signs in through the login form; returns the final page's path.
    pub async fn login(&mut self, username: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        let csrf = form.csrf();
        self.post(
            "/login",
            &[
                ("username", username),
                ("password", password),
                ("next", "/"),
                ("_csrf", &csrf),
            ],
        )
        .await
    }
}

impl WebServer {
    /// A server (as [`WebServer::start`]) whose operator token is `token`:
    /// the operator view and the operator API accept it.
    pub async fn start_with_operator_token(token: &str) -> WebServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = PlatformConfig::new(dir.path());
        cfg.rate_limits = false;
        let mut databases = Vec::new();
        if std::env::var("MOSAIC_TEST_BACKEND").as_deref() == Ok("postgres") {
            let meta = ScratchDatabase::create().await.expect("scratch database");
            let records = ScratchDatabase::create().await.expect("scratch database");
            cfg.metadata_url = Some(meta.url.clone());
            cfg.records_url = Some(records.url.clone());
            cfg.pg_pool_size = 8;
            databases.push(meta);
            databases.push(records);
        }
        let platform = Arc::new(Platform::open(cfg).await.expect("open platform"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut state = AppState::new(platform.clone(), base.clone());
        state.trusted_proxies =
            Arc::new(mosaic_server::TrustedProxies::parse("127.0.0.1/32").expect("proxy list"));
        state.operator_token = Some(token.into());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = mosaic_server::serve(listener, state, async {
                let _ = rx.await;
            })
            .await;
        });
        WebServer {
            base,
            platform,
            _dir: dir,
            shutdown: Some(tx),
            handle: Some(handle),
            _databases: databases,
        }
    }
}
