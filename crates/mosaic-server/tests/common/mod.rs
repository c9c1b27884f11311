//! Test harness: a real Mosaic server on a random loopback port over a
//! fresh data directory, and a small JSON client for it.
#![allow(dead_code)]

pub mod exposition;

use mosaic_access::NewTenant;
use mosaic_runtime::{Platform, PlatformConfig};
use mosaic_server::AppState;
use mosaic_store_pg::scratch::ScratchDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct TestServer {
    pub base: String,
    pub platform: Arc<Platform>,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    /// Scratch PostgreSQL databases, dropped with the server.
    _databases: Vec<ScratchDatabase>,
}

/// Whether this run is on PostgreSQL (`MOSAIC_TEST_BACKEND=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("MOSAIC_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// The operator token of test servers (`MOSAIC_OPERATOR_TOKEN`).
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

/// The outbound allow-list of tests whose receivers listen on loopback
/// (refused without it).
pub fn loopback_allowed() -> mosaic_types::OutboundGuard {
    mosaic_types::OutboundGuard::parse("127.0.0.0/8").expect("allow-list")
}

static TENANTS: AtomicUsize = AtomicUsize::new(0);

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut PlatformConfig)) -> TestServer {
        Self::start_full(tweak, None).await
    }

    /// A server whose operator endpoints take `operator_token` (the
    /// others: [`OPERATOR_TOKEN`]; `Some("")`: no operator token at all).
    pub async fn start_full(
        tweak: impl FnOnce(&mut PlatformConfig),
        operator_token: Option<&str>,
    ) -> TestServer {
        let token = operator_token.map(str::to_string);
        Self::start_state(tweak, move |state| {
            state.operator_token = match token.as_deref() {
                Some("") => None,
                Some(t) => Some(t.into()),
                None => Some(OPERATOR_TOKEN.into()),
            };
        })
        .await
    }

    /// A server whose state `tweak_state` adjusts (after the operator token
    /// [`OPERATOR_TOKEN`] is set).
    pub async fn start_state(
        tweak: impl FnOnce(&mut PlatformConfig),
        tweak_state: impl FnOnce(&mut AppState),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = PlatformConfig::new(dir.path());
        tweak(&mut cfg);
        // `MOSAIC_TEST_BACKEND=postgres`: the metadata database and the
        // built-in shard each in a scratch PostgreSQL database.
        let mut databases = Vec::new();
        if on_postgres() {
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
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let mut state = AppState::new(platform.clone(), base.clone());
        // Whatever the environment says: the operator token, no metrics token.
        state.operator_token = Some(OPERATOR_TOKEN.into());
        state.metrics_token = None;
        tweak_state(&mut state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = mosaic_server::serve(listener, state, async {
                let _ = rx.await;
            })
            .await;
        });
        TestServer {
            base,
            platform,
            dir,
            shutdown: Some(tx),
            handle: Some(handle),
            _databases: databases,
        }
    }

    /// Creates a tenant with a unique subdomain and admin; returns a client
    /// authenticated as that admin.
    pub async fn tenant(&self) -> Client {
        let n = TENANTS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id());
        let username = format!("admin-{tag}@example.test");
        let created = self
            .platform
            .create_tenant(NewTenant {
                name: format!("Tenant {tag}"),
                subdomain: format!("t{tag}"),
                tier: "starter".into(),
                admin_username: username.clone(),
                admin_password: "correct-horse-battery".into(),
                admin_email: None,
            })
            .await
            .expect("create tenant");
        Client {
            base: self.base.clone(),
            token: Some(created.access_token),
            http: reqwest::Client::new(),
            tenant_id: created.tenant_id,
            user_id: created.user_id,
            username,
        }
    }

    /// A client holding the operator token ([`OPERATOR_TOKEN`]).
    pub fn operator(&self) -> Client {
        let mut c = self.anonymous();
        c.token = Some(OPERATOR_TOKEN.to_string());
        c
    }

    pub fn anonymous(&self) -> Client {
        Client {
            base: self.base.clone(),
            token: None,
            http: reqwest::Client::new(),
            tenant_id: String::new(),
            user_id: String::new(),
            username: String::new(),
        }
    }

    /// A configuration reaching the same databases as this server (another
    /// instance, or a command-line tool).
    pub fn same_databases(&self) -> PlatformConfig {
        let mut cfg = PlatformConfig::new(self.dir.path());
        if let [meta, records] = self._databases.as_slice() {
            cfg.metadata_url = Some(meta.url.clone());
            cfg.records_url = Some(records.url.clone());
            cfg.pg_pool_size = 4;
        }
        cfg
    }

    /// The scratch PostgreSQL databases of this server (metadata, built-in
    /// shard), when it runs on PostgreSQL.
    pub fn database_urls(&self) -> Vec<String> {
        self._databases.iter().map(|d| d.url.clone()).collect()
    }

    /// Every byte the server stored: the files of its data directory, and
    /// on PostgreSQL the text of every row of every table.
    pub async fn stored_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                all.extend(std::fs::read(&p).unwrap());
            }
        }
        for url in self.database_urls() {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            let tables = client
                .query(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                    &[],
                )
                .await
                .expect("tables");
            for t in tables {
                let name: String = t.get(0);
                // Table names come from the catalog, not from input.
                let rows = client
                    .query(&format!("SELECT t::text FROM \"{name}\" t"), &[])
                    .await
                    .expect("rows");
                for r in rows {
                    let text: String = r.get(0);
                    all.extend(text.into_bytes());
                }
            }
        }
        all
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
        self.platform.close();
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
    pub tenant_id: String,
    pub user_id: String,
    pub username: String,
}

pub const DATA: &str = "/services/data/v60.0";
pub const META: &str = "/services/metadata/v1";

impl Client {
    pub fn with_token(&self, token: &str) -> Client {
        let mut c = self.clone();
        c.token = Some(token.to_string());
        c
    }

    /// Sends a request; returns status and the parsed JSON body (Null when empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let res = rb.send().await.expect("send");
        let status = res.status();
        let text = res.text().await.expect("body");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("non-JSON response {status}: {text}"))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(&body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, path, Some(&body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::DELETE, path, None).await
    }

    /// Creates an object through the metadata API; panics unless 201.
    pub async fn create_object(&self, def: Value) -> Value {
        let (s, v) = self.post(&format!("{META}/objects"), def).await;
        assert_eq!(s, StatusCode::CREATED, "create object: {v}");
        v
    }

    /// Creates a record; panics unless 201; returns its id.
    pub async fn create_record(&self, object: &str, body: Value) -> String {
        let (s, v) = self.post(&format!("{DATA}/sobjects/{object}"), body).await;
        assert_eq!(s, StatusCode::CREATED, "create {object}: {v}");
        v["id"].as_str().expect("id").to_string()
    }
}

/// `s` percent-encoded for a query string (everything but unreserved bytes).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char)
        } else {
            out.push_str(&format!("%{b:02X}"))
        }
    }
    out
}

/// The error codes of an error-array response.
pub fn codes(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["errorCode"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A small object with one field of every stored type.
pub fn kitchen_sink(name: &str) -> Value {
    json!({
        "api_name": name,
        "label": "Kitchen Sink",
        "fields": [
            {"api_name": "Text__c", "data_type": "text", "length": 10},
            {"api_name": "Area__c", "data_type": "textarea"},
            {"api_name": "Rich__c", "data_type": "rich_text"},
            {"api_name": "Long__c", "data_type": "long_text", "length": 300},
            {"api_name": "Num__c", "data_type": "number", "precision": 6, "scale": 2},
            {"api_name": "Money__c", "data_type": "currency"},
            {"api_name": "Pct__c", "data_type": "percent", "precision": 5, "scale": 2},
            {"api_name": "Day__c", "data_type": "date"},
            {"api_name": "When__c", "data_type": "datetime"},
            {"api_name": "At__c", "data_type": "time"},
            {"api_name": "Flag__c", "data_type": "boolean"},
            {"api_name": "Pick__c", "data_type": "picklist", "is_restricted": true,
             "picklist_values": [{"value": "Red"}, {"value": "Green"}, {"value": "Old", "is_active": false}]},
            {"api_name": "Open__c", "data_type": "picklist", "picklist_values": [{"value": "A"}]},
            {"api_name": "Multi__c", "data_type": "multi_picklist", "is_restricted": true,
             "picklist_values": [{"value": "X"}, {"value": "Y"}, {"value": "Z"}]},
            {"api_name": "Mail__c", "data_type": "email"},
            {"api_name": "Tel__c", "data_type": "phone"},
            {"api_name": "Site__c", "data_type": "url"},
            {"api_name": "Secret__c", "data_type": "encrypted_text", "length": 20},
            {"api_name": "Geo__c", "data_type": "geolocation"},
            {"api_name": "Seq__c", "data_type": "auto_number", "auto_number_format": "KS-{000}"}
        ]
    })
}
