//! What every runtime benchmark starts from: a Tokio runtime, an embedded
//! platform in a temporary directory and one tenant with its administrator.

use mosaic_access::NewTenant;
use mosaic_runtime::{Caller, Platform, PlatformConfig};
use serde_json::{Map, Value};

pub struct Bench {
    pub rt: tokio::runtime::Runtime,
    pub p: Platform,
    /// The tenant's administrator.
    pub admin: Caller,
    _dir: tempfile::TempDir,
}

pub fn setup() -> Bench {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Platform::open_embedded(PlatformConfig::new(dir.path())).expect("platform");
    let t = rt
        .block_on(p.auth.create_tenant(NewTenant {
            name: "Bench".into(),
            subdomain: "bench".into(),
            tier: "starter".into(),
            admin_username: "bench@example.test".into(),
            admin_password: "bench-password".into(),
            admin_email: None,
        }))
        .expect("tenant");
    let admin = Caller::system(&t.tenant_id, &t.user_id);
    Bench {
        rt,
        p,
        admin,
        _dir: dir,
    }
}

pub fn body(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}
