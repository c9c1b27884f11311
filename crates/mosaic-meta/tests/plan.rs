//! Schema plans applied all or nothing: when creating one of the plan's
//! objects fails after the check passed (the store failing, a clash that
//! appeared meanwhile), the objects created before it are removed.

use async_trait::async_trait;
use mosaic_meta::validate::ObjectInput;
use mosaic_meta::MetadataService;
use mosaic_store::{
    MetaStore, ObjectRow, SessionRow, SqliteMetaStore, SqliteRecordStore, TenantRow, UserRow,
};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use serde_json::json;
use std::sync::Arc;

/// The SQLite store, failing the insert of one object by name.
struct Failing {
    inner: SqliteMetaStore,
    fail_on: String,
}

#[async_trait]
impl MetaStore for Failing {
    async fn create_tenant(
        &self,
        t: TenantRow,
        u: UserRow,
        s: Option<SessionRow>,
    ) -> MosaicResult<()> {
        self.inner.create_tenant(t, u, s).await
    }
    async fn tenant(&self, id: &str) -> MosaicResult<Option<TenantRow>> {
        self.inner.tenant(id).await
    }
    async fn user_by_username(&self, n: &str) -> MosaicResult<Option<UserRow>> {
        self.inner.user_by_username(n).await
    }
    async fn user(&self, t: &str, id: &str) -> MosaicResult<Option<UserRow>> {
        self.inner.user(t, id).await
    }
    async fn create_session(&self, s: SessionRow) -> MosaicResult<()> {
        self.inner.create_session(s).await
    }
    async fn session(&self, h: &str) -> MosaicResult<Option<SessionRow>> {
        self.inner.session(h).await
    }
    async fn revoke_session(&self, h: &str) -> MosaicResult<()> {
        self.inner.revoke_session(h).await
    }
    async fn list_objects(&self, t: &str) -> MosaicResult<Vec<ObjectRow>> {
        self.inner.list_objects(t).await
    }
    async fn object_by_name(&self, t: &str, n: &str) -> MosaicResult<Option<ObjectRow>> {
        self.inner.object_by_name(t, n).await
    }
    async fn object_by_id(&self, t: &str, id: &str) -> MosaicResult<Option<ObjectRow>> {
        self.inner.object_by_id(t, id).await
    }
    async fn insert_object(&self, row: ObjectRow) -> MosaicResult<()> {
        if row.api_name == self.fail_on {
            return Err(MosaicError::unavailable("the metadata database went away"));
        }
        self.inner.insert_object(row).await
    }
    async fn update_object(&self, row: ObjectRow, v: i64) -> MosaicResult<()> {
        self.inner.update_object(row, v).await
    }
    async fn delete_object(&self, t: &str, id: &str) -> MosaicResult<()> {
        self.inner.delete_object(t, id).await
    }
}

fn service(dir: &tempfile::TempDir, fail_on: &str) -> MetadataService {
    let store = Failing {
        inner: SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap(),
        fail_on: fail_on.into(),
    };
    let records = SqliteRecordStore::open(&dir.path().join("records.db")).unwrap();
    MetadataService::new(Arc::new(store), Arc::new(records))
}

fn plan() -> serde_json::Value {
    json!({"objects": [
        {"api_name": "Equipment__c", "fields": [{"api_name": "Serial__c", "data_type": "text", "length": 40}]},
        {"api_name": "Loan__c", "fields": [
            {"api_name": "Equipment__c", "data_type": "lookup", "lookup_object": "Equipment__c"},
            {"api_name": "Serial__c", "data_type": "formula", "formula_expression": "Equipment__r.Serial__c", "formula_return_type": "text"}
        ]},
        {"api_name": "Fee__c", "fields": [{"api_name": "Loan__c", "data_type": "master_detail", "lookup_object": "Loan__c"}]}
    ]})
}

#[tokio::test]
async fn a_failing_step_leaves_nothing_of_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let meta = service(&dir, "Fee__c");
    let t = "tenant-a";
    meta.create_object(
        t,
        serde_json::from_value::<ObjectInput>(json!({"api_name": "Kept__c"})).unwrap(),
    )
    .await
    .unwrap();
    // The plan passes its check, then its third object cannot be stored.
    assert!(meta.check_plan(t, &plan()).await.unwrap().is_ok());
    let e = meta.apply_plan(t, &plan()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::SERVICE_UNAVAILABLE);
    assert!(
        e.message.contains("Fee__c") && e.message.contains("2 object(s)"),
        "{}",
        e.message
    );
    let names: Vec<String> = meta
        .objects(t)
        .await
        .unwrap()
        .iter()
        .map(|o| o.def.api_name.clone())
        .collect();
    assert_eq!(names, ["Kept__c"], "only what was there before");
    assert!(meta
        .meta_store()
        .object_by_name(t, "Equipment__c")
        .await
        .unwrap()
        .is_none());

    // The same plan on a working store: all three, linked to each other.
    let meta = service(&tempfile::tempdir().unwrap(), "none");
    let created = meta.apply_plan(t, &plan()).await.unwrap();
    assert_eq!(created.len(), 3);
    let loan = meta.object(t, "Loan__c").await.unwrap();
    let equipment = meta.object(t, "Equipment__c").await.unwrap();
    assert_eq!(
        loan.field("Equipment__c")
            .unwrap()
            .lookup_object_id
            .as_deref(),
        Some(equipment.id())
    );
    assert!(loan.field("Equipment__c").unwrap().slot.is_some());
}

#[tokio::test]
async fn every_problem_of_a_plan_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let meta = service(&dir, "none");
    let t = "tenant-b";
    meta.create_object(
        t,
        serde_json::from_value::<ObjectInput>(json!({"api_name": "Loan__c"})).unwrap(),
    )
    .await
    .unwrap();
    let bad = json!({"objects": [
        {"api_name": "Loan__c"},
        {"api_name": "Item__c", "fields": [
            {"api_name": "Kind__c", "data_type": "colour"},
            {"api_name": "Name", "data_type": "text"},
            {"api_name": "Parent__c", "data_type": "lookup", "lookup_object": "Nope__c"}
        ], "validation_rules": [{"name": "Bad", "formula_expression": "Nope__c > 1", "error_message": "x"}]},
        {"api_name": "Item__c"}
    ]});
    let errors = meta.check_plan(t, &bad).await.unwrap().unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for p in [
        "objects[0].api_name",
        "objects[1].fields[0].data_type",
        "objects[1].fields[1].api_name",
        "objects[1].fields[2].lookup_object",
        "objects[2].api_name",
    ] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("objects[1].validation_rules[0]") || *p == "objects[1]"),
        "{errors:?}"
    );
    let e = meta.apply_plan(t, &bad).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::INVALID_INPUT);
    assert_eq!(meta.objects(t).await.unwrap().len(), 1);
}
