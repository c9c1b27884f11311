//! Files (decision 0034): `ContentDocument`, `ContentVersion` and
//! `ContentDocumentLink` as built-in objects of every tenant (created on
//! first use, like `Task`), their bodies in the blob store
//! (`mosaic-files`), and the one access rule: a file is visible exactly to
//! those who can see one of the records it is linked to (its uploader's
//! own link included) — no permission of its own.
//!
//! An upload is durable in the blob store before its `ContentVersion`
//! row is written; a blob no row references (a crash between the two, a
//! deleted document) is removed by [`Platform::collect_orphan_blobs`],
//! run at start-up and every [`COLLECT_INTERVAL`].

use crate::query::{QueryOptions, QueryValue};
use crate::records::{parse_record_id, Caller, RecordResult};
use crate::Platform;
use mosaic_files::{BlobBody, ByteStream};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult, Value};
use serde_json::{json, Map, Value as Json};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

pub const CONTENT_DOCUMENT: &str = "ContentDocument";
pub const CONTENT_VERSION: &str = "ContentVersion";
pub const CONTENT_DOCUMENT_LINK: &str = "ContentDocumentLink";

/// Largest file by default (`FilesConfig::max_file_bytes`): 2 GiB, as
/// Salesforce's multipart upload.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// A tenant's file storage by default (`FilesConfig::tenant_quota_bytes`):
/// 10 GiB.
pub const DEFAULT_TENANT_QUOTA_BYTES: u64 = 10 * 1024 * 1024 * 1024;
/// How often the orphan collector runs.
pub const COLLECT_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// How old an unreferenced blob (or temporary upload) must be before the
/// periodic collector removes it: longer than any upload takes between
/// its blob landing and its row committing.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(60 * 60);
/// Links of one document looked at for an access decision.
pub const MAX_LINKS_PER_DOCUMENT: usize = 2_000;
/// Longest `Title` / `PathOnClient`.
const MAX_TITLE: usize = 255;

/// Where files live and how big they may get.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// `--blob-url` / `MOSAIC_BLOB_URL`: `None` → `<data dir>/blobs`.
    pub blob_url: Option<String>,
    pub max_file_bytes: u64,
    pub tenant_quota_bytes: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            blob_url: None,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            tenant_quota_bytes: DEFAULT_TENANT_QUOTA_BYTES,
        }
    }
}

/// A version's body as a download serves it.
#[derive(Debug, Clone)]
pub struct VersionContent {
    pub version_id: String,
    pub sha256: String,
    pub size: u64,
    pub content_type: &'static str,
    /// The name the browser saves it as (`PathOnClient`).
    pub file_name: String,
}

/// The fields a client may set on a new `ContentVersion`.
const VERSION_INPUT_FIELDS: [&str; 7] = [
    "Title",
    "PathOnClient",
    "ContentDocumentId",
    "FirstPublishLocationId",
    "ReasonForChange",
    "Description",
    "VersionData",
];

fn invalid(code: ErrorCode, msg: impl Into<String>, field: &str) -> MosaicError {
    MosaicError::field(code, field, msg)
}

/// `e` as concerning `field`.
fn at(mut e: MosaicError, field: &str) -> MosaicError {
    e.fields = vec![field.to_string()];
    e
}

fn text_field<'a>(body: &'a Map<String, Json>, name: &str) -> MosaicResult<Option<&'a str>> {
    match body.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.trim())),
        Some(_) => Err(invalid(
            ErrorCode::INVALID_TYPE_ON_FIELD_IN_RECORD,
            format!("{name}: expected a string"),
            name,
        )),
    }
}

fn extension_of(path: &str) -> String {
    std::path::Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .filter(|e| e.len() <= 40)
        .unwrap_or_default()
}

fn query_text(v: Option<&QueryValue>) -> Option<String> {
    match v {
        Some(QueryValue::Value(Value::Text(s))) => Some(s.clone()),
        _ => None,
    }
}

fn query_u64(v: Option<&QueryValue>) -> u64 {
    use rust_decimal::prelude::ToPrimitive;
    match v {
        Some(QueryValue::Value(Value::Number(d))) => d.to_u64().unwrap_or(0),
        _ => 0,
    }
}

fn field<'a>(rec: &'a crate::query::QueryRecord, name: &str) -> Option<&'a QueryValue> {
    rec.fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

impl Platform {
    /// Creates the tenant's three file objects if they do not exist yet.
    pub async fn ensure_file_objects(&self, tenant: &str) -> MosaicResult<()> {
        let defs = [
            json!({
                "api_name": CONTENT_DOCUMENT,
                "label": "Content Document",
                "plural_label": "Content Documents",
                "description": "A file: its versions and the records it is linked to.",
                "name_field": {"label": "Document Number", "data_type": "auto_number", "auto_number_format": "DOC-{000000}"},
                "fields": [
                    {"api_name": "Title", "label": "Title", "data_type": "text", "length": 255},
                    {"api_name": "FileExtension", "label": "File Extension", "data_type": "text", "length": 40},
                    {"api_name": "FileType", "label": "File Type", "data_type": "text", "length": 20},
                    {"api_name": "ContentSize", "label": "Size", "data_type": "number", "precision": 18, "scale": 0},
                    {"api_name": "LatestPublishedVersionId", "label": "Latest Published Version", "data_type": "text", "length": 36}
                ]
            }),
            json!({
                "api_name": CONTENT_VERSION,
                "label": "Content Version",
                "plural_label": "Content Versions",
                "description": "One version of a file's content.",
                "name_field": {"label": "Version Number", "data_type": "auto_number", "auto_number_format": "V-{000000}"},
                "fields": [
                    {"api_name": "ContentDocumentId", "label": "Content Document", "data_type": "master_detail",
                     "lookup_object": CONTENT_DOCUMENT, "relationship_name": "ContentVersions"},
                    {"api_name": "Title", "label": "Title", "data_type": "text", "length": 255},
                    {"api_name": "PathOnClient", "label": "Path On Client", "data_type": "text", "length": 255},
                    {"api_name": "FileExtension", "label": "File Extension", "data_type": "text", "length": 40},
                    {"api_name": "FileType", "label": "File Type", "data_type": "text", "length": 20},
                    {"api_name": "ContentSize", "label": "Size", "data_type": "number", "precision": 18, "scale": 0},
                    {"api_name": "Checksum", "label": "Checksum", "data_type": "text", "length": 64, "is_indexed": true},
                    {"api_name": "VersionNumber", "label": "Version Number", "data_type": "text", "length": 20},
                    {"api_name": "IsLatest", "label": "Is Latest", "data_type": "boolean"},
                    {"api_name": "FirstPublishLocationId", "label": "First Publish Location", "data_type": "text", "length": 36},
                    {"api_name": "ReasonForChange", "label": "Reason For Change", "data_type": "text", "length": 255},
                    {"api_name": "Description", "label": "Description", "data_type": "long_text"}
                ]
            }),
            json!({
                "api_name": CONTENT_DOCUMENT_LINK,
                "label": "Content Document Link",
                "plural_label": "Content Document Links",
                "description": "A file linked to a record: whoever can see the record can see the file.",
                "name_field": {"label": "Link Number", "data_type": "auto_number", "auto_number_format": "L-{000000}"},
                "fields": [
                    {"api_name": "ContentDocumentId", "label": "Content Document", "data_type": "master_detail",
                     "lookup_object": CONTENT_DOCUMENT, "relationship_name": "ContentDocumentLinks"},
                    {"api_name": "LinkedEntityId", "label": "Linked Entity", "data_type": "text", "length": 36, "is_indexed": true},
                    {"api_name": "ShareType", "label": "Share Type", "data_type": "picklist", "picklist_values": [
                        {"value": "V", "label": "Viewer", "is_default": true}, {"value": "C", "label": "Collaborator"},
                        {"value": "I", "label": "Inferred"}]},
                    {"api_name": "Visibility", "label": "Visibility", "data_type": "picklist", "picklist_values": [
                        {"value": "AllUsers", "is_default": true}, {"value": "InternalUsers"}, {"value": "SharedUsers"}]}
                ]
            }),
        ];
        for def in defs {
            let name = def["api_name"].as_str().unwrap_or_default().to_string();
            if self.meta.object(tenant, &name).await.is_ok() {
                continue;
            }
            let input: mosaic_meta::validate::ObjectInput = serde_json::from_value(def)
                .map_err(|e| MosaicError::internal(format!("{name} definition: {e}")))?;
            match self.meta.create_object(tenant, input).await {
                Ok(_) => {}
                Err(e) if e.code == ErrorCode::DUPLICATE_VALUE => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn blob_store(&self) -> &Arc<dyn mosaic_files::BlobStore> {
        &self.blobs
    }

    /// Bytes of file content the tenant stores (every version, binned ones
    /// included: they come back on undelete).
    pub async fn file_usage(&self, tenant: &str) -> MosaicResult<u64> {
        if self.meta.object(tenant, CONTENT_VERSION).await.is_err() {
            return Ok(0);
        }
        let sys = Caller::system(tenant, "");
        let r = self
            .query(
                &sys,
                "SELECT SUM(ContentSize) total FROM ContentVersion",
                QueryOptions {
                    include_deleted: true,
                    batch_size: None,
                },
            )
            .await?;
        Ok(r.records
            .first()
            .map(|r| query_u64(field(r, "total")))
            .unwrap_or(0))
    }

    /// Whether `c` can see the document: one of its links names a record
    /// the caller can read, or the caller (their own library).
    pub async fn document_visible(&self, c: &Caller, document_id: &str) -> MosaicResult<bool> {
        let document_id = parse_record_id(document_id)?;
        if c.perms.is_admin() {
            return Ok(true);
        }
        let sys = Caller::system(&c.tenant_id, &c.user_id);
        let r = self
            .query(
                &sys,
                &format!(
                    "SELECT LinkedEntityId FROM ContentDocumentLink WHERE ContentDocumentId = '{document_id}' LIMIT {MAX_LINKS_PER_DOCUMENT}"
                ),
                QueryOptions::default(),
            )
            .await?;
        for rec in &r.records {
            let Some(linked) = query_text(field(rec, "LinkedEntityId")) else {
                continue;
            };
            if self.record_visible(c, &linked).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether `c` can read the record (or is the user) `id` names.
    async fn record_visible(&self, c: &Caller, id: &str) -> MosaicResult<bool> {
        if id == c.user_id {
            return Ok(true);
        }
        let Some(object_id) = self.records.locate(&c.tenant_id, id).await? else {
            return Ok(false);
        };
        let obj = self.meta.object_by_id(&c.tenant_id, &object_id).await?;
        if matches!(
            obj.def.api_name.as_str(),
            CONTENT_DOCUMENT | CONTENT_VERSION | CONTENT_DOCUMENT_LINK
        ) {
            return Ok(false);
        }
        match self
            .get(c, &obj.def.api_name, id, Some(&["Id".to_string()]))
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::NOT_FOUND | ErrorCode::INSUFFICIENT_ACCESS
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn file_not_found(id: &str) -> MosaicError {
        MosaicError::not_found(format!("no file with id {id}"))
    }

    /// Creates a `ContentVersion` from its fields (`entity`) and its body:
    /// a new document, or a new version of `ContentDocumentId`; linked to
    /// `FirstPublishLocationId` (a record the caller can see) or else to
    /// the caller. Returns the version's id.
    pub async fn create_content_version(
        &self,
        c: &Caller,
        entity: &Map<String, Json>,
        body: ByteStream,
    ) -> RecordResult<String> {
        for k in entity.keys() {
            if !VERSION_INPUT_FIELDS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(k))
            {
                return Err(invalid(
                    ErrorCode::INVALID_FIELD,
                    format!(
                        "No such column '{k}' on entity 'ContentVersion' (or it cannot be set)"
                    ),
                    k,
                )
                .into());
            }
        }
        let path = text_field(entity, "PathOnClient")?.ok_or_else(|| {
            invalid(
                ErrorCode::REQUIRED_FIELD_MISSING,
                "Required fields are missing: [PathOnClient]",
                "PathOnClient",
            )
        })?;
        let title = text_field(entity, "Title")?.unwrap_or_else(|| {
            std::path::Path::new(path)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or(path)
        });
        for (name, v) in [("PathOnClient", path), ("Title", title)] {
            if v.chars().count() > MAX_TITLE {
                return Err(invalid(
                    ErrorCode::STRING_TOO_LONG,
                    format!("{name}: data value too large (max length={MAX_TITLE})"),
                    name,
                )
                .into());
            }
        }
        let document = text_field(entity, "ContentDocumentId")?;
        let location = text_field(entity, "FirstPublishLocationId")?;
        if let Some(doc) = document {
            let doc = parse_record_id(doc).map_err(|e| at(e, "ContentDocumentId"))?;
            if !self.document_visible(c, &doc).await? {
                return Err(invalid(
                    ErrorCode::INVALID_CROSS_REFERENCE_KEY,
                    format!("ContentDocumentId: no document with id {doc}"),
                    "ContentDocumentId",
                )
                .into());
            }
        }
        if let Some(loc) = location {
            let loc = parse_record_id(loc).map_err(|e| at(e, "FirstPublishLocationId"))?;
            if !self.record_visible(c, &loc).await? {
                return Err(invalid(
                    ErrorCode::INVALID_CROSS_REFERENCE_KEY,
                    format!("FirstPublishLocationId: no record with id {loc}"),
                    "FirstPublishLocationId",
                )
                .into());
            }
        }
        self.ensure_file_objects(&c.tenant_id).await?;
        // The quota leaves room for this file only.
        let cfg = &self.config.files;
        let used = self.file_usage(&c.tenant_id).await?;
        let room = cfg.tenant_quota_bytes.saturating_sub(used);
        let limit = cfg.max_file_bytes.min(room);
        let stored = self
            .blob_store()
            .put(&c.tenant_id, body, limit)
            .await
            .map_err(|e| {
                if e.code == ErrorCode::REQUEST_TOO_LARGE && room < cfg.max_file_bytes {
                    MosaicError::new(
                        ErrorCode::REQUEST_TOO_LARGE,
                        format!(
                            "the tenant's file storage is full: {used} of {} bytes used, this file does not fit",
                            cfg.tenant_quota_bytes
                        ),
                    )
                } else {
                    e
                }
            })?;
        let (_, file_type) = mosaic_files::sniff::sniff(&stored.head);
        let ext = extension_of(path);
        let sys = Caller::system(&c.tenant_id, &c.user_id);
        let size = Json::from(stored.size);
        let (document_id, version_number) = match document {
            Some(doc) => {
                let doc = parse_record_id(doc)?;
                let n = self.latest_versions_off(&sys, &doc).await?;
                (doc, n + 1)
            }
            None => {
                let mut d = Map::new();
                d.insert("Title".into(), json!(title));
                d.insert("FileExtension".into(), json!(ext));
                d.insert("FileType".into(), json!(file_type));
                d.insert("ContentSize".into(), size.clone());
                (self.create(&sys, CONTENT_DOCUMENT, &d).await?, 1)
            }
        };
        let mut v = Map::new();
        v.insert("ContentDocumentId".into(), json!(document_id));
        v.insert("Title".into(), json!(title));
        v.insert("PathOnClient".into(), json!(path));
        v.insert("FileExtension".into(), json!(ext));
        v.insert("FileType".into(), json!(file_type));
        v.insert("ContentSize".into(), size.clone());
        v.insert("Checksum".into(), json!(stored.sha256));
        v.insert("VersionNumber".into(), json!(version_number.to_string()));
        v.insert("IsLatest".into(), json!(true));
        if let Some(loc) = location {
            v.insert("FirstPublishLocationId".into(), json!(loc));
        }
        for k in ["ReasonForChange", "Description"] {
            if let Some(s) = text_field(entity, k)? {
                v.insert(k.into(), json!(s));
            }
        }
        let version_id = self.create(&sys, CONTENT_VERSION, &v).await?;
        let mut d = Map::new();
        d.insert("Title".into(), json!(title));
        d.insert("FileExtension".into(), json!(ext));
        d.insert("FileType".into(), json!(file_type));
        d.insert("ContentSize".into(), size);
        d.insert("LatestPublishedVersionId".into(), json!(version_id));
        self.update(&sys, CONTENT_DOCUMENT, &document_id, &d)
            .await?;
        if document.is_none() {
            let linked = location.unwrap_or(&c.user_id);
            self.insert_link(&sys, &document_id, linked, "V").await?;
            if location.is_some() {
                // The uploader keeps the file in their own library too.
                self.insert_link(&sys, &document_id, &c.user_id, "I")
                    .await?;
            }
        }
        Ok(version_id)
    }

    /// Marks a document's versions as not latest; returns how many it has.
    async fn latest_versions_off(&self, sys: &Caller, doc: &str) -> RecordResult<u64> {
        let r = self
            .query(
                sys,
                &format!(
                    "SELECT Id, IsLatest FROM ContentVersion WHERE ContentDocumentId = '{doc}'"
                ),
                QueryOptions::default(),
            )
            .await?;
        let mut off = Map::new();
        off.insert("IsLatest".into(), json!(false));
        for rec in &r.records {
            if let (Some(id), Some(QueryValue::Value(Value::Boolean(true)))) =
                (rec.id.as_deref(), field(rec, "IsLatest"))
            {
                self.update(sys, CONTENT_VERSION, id, &off).await?;
            }
        }
        Ok(r.total_size as u64)
    }

    async fn insert_link(
        &self,
        sys: &Caller,
        document_id: &str,
        linked: &str,
        share_type: &str,
    ) -> RecordResult<String> {
        let mut l = Map::new();
        l.insert("ContentDocumentId".into(), json!(document_id));
        l.insert("LinkedEntityId".into(), json!(linked));
        l.insert("ShareType".into(), json!(share_type));
        self.create(sys, CONTENT_DOCUMENT_LINK, &l).await
    }

    /// Links a document the caller can see to a record the caller can see
    /// (`ContentDocumentLink` create). Returns the link's id.
    pub async fn create_content_link(
        &self,
        c: &Caller,
        body: &Map<String, Json>,
    ) -> RecordResult<String> {
        for k in body.keys() {
            if ![
                "ContentDocumentId",
                "LinkedEntityId",
                "ShareType",
                "Visibility",
            ]
            .iter()
            .any(|f| f.eq_ignore_ascii_case(k))
            {
                return Err(invalid(
                    ErrorCode::INVALID_FIELD,
                    format!("No such column '{k}' on entity 'ContentDocumentLink'"),
                    k,
                )
                .into());
            }
        }
        let required = |name: &str| -> MosaicResult<String> {
            let v = text_field(body, name)?.ok_or_else(|| {
                invalid(
                    ErrorCode::REQUIRED_FIELD_MISSING,
                    format!("Required fields are missing: [{name}]"),
                    name,
                )
            })?;
            parse_record_id(v).map_err(|e| at(e, name))
        };
        let doc = required("ContentDocumentId")?;
        let linked = required("LinkedEntityId")?;
        if !self.document_visible(c, &doc).await? {
            return Err(invalid(
                ErrorCode::INVALID_CROSS_REFERENCE_KEY,
                format!("ContentDocumentId: no document with id {doc}"),
                "ContentDocumentId",
            )
            .into());
        }
        if !self.record_visible(c, &linked).await? {
            return Err(invalid(
                ErrorCode::INVALID_CROSS_REFERENCE_KEY,
                format!("LinkedEntityId: no record with id {linked}"),
                "LinkedEntityId",
            )
            .into());
        }
        let sys = Caller::system(&c.tenant_id, &c.user_id);
        let mut l = Map::new();
        l.insert("ContentDocumentId".into(), json!(doc));
        l.insert("LinkedEntityId".into(), json!(linked));
        for k in ["ShareType", "Visibility"] {
            if let Some(v) = body.get(k) {
                l.insert(k.into(), v.clone());
            }
        }
        self.create(&sys, CONTENT_DOCUMENT_LINK, &l).await
    }

    /// Removes a link the caller can see both ends of.
    pub async fn delete_content_link(&self, c: &Caller, id: &str) -> MosaicResult<()> {
        let id = parse_record_id(id)?;
        let sys = Caller::system(&c.tenant_id, &c.user_id);
        let link = self
            .get(
                &sys,
                CONTENT_DOCUMENT_LINK,
                &id,
                Some(&["ContentDocumentId".into(), "LinkedEntityId".into()]),
            )
            .await?;
        let text = |n: &str| match link.fields.iter().find(|(k, _)| k == n) {
            Some((_, Value::Text(s))) => s.clone(),
            _ => String::new(),
        };
        let (doc, linked) = (text("ContentDocumentId"), text("LinkedEntityId"));
        if !self.document_visible(c, &doc).await? || !self.record_visible(c, &linked).await? {
            return Err(MosaicError::not_found(format!("no link with id {id}")));
        }
        self.delete(&sys, CONTENT_DOCUMENT_LINK, &id).await
    }

    /// Deletes a document with its versions and links (its blobs are
    /// collected once nothing references them).
    pub async fn delete_content_document(&self, c: &Caller, id: &str) -> MosaicResult<()> {
        let id = parse_record_id(id)?;
        if self
            .meta
            .object(&c.tenant_id, CONTENT_DOCUMENT)
            .await
            .is_err()
            || !self.document_visible(c, &id).await?
        {
            return Err(Self::file_not_found(&id));
        }
        let sys = Caller::system(&c.tenant_id, &c.user_id);
        self.delete(&sys, CONTENT_DOCUMENT, &id).await
    }

    /// A version's content as the caller may download it; `NOT_FOUND`
    /// when the version does not exist or the caller sees none of the
    /// records its document is linked to.
    pub async fn content_version(&self, c: &Caller, id: &str) -> MosaicResult<VersionContent> {
        let id = parse_record_id(id)?;
        if self
            .meta
            .object(&c.tenant_id, CONTENT_VERSION)
            .await
            .is_err()
        {
            return Err(Self::file_not_found(&id));
        }
        let sys = Caller::system(&c.tenant_id, &c.user_id);
        let fields: Vec<String> = [
            "ContentDocumentId",
            "Checksum",
            "ContentSize",
            "FileType",
            "PathOnClient",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let view = match self.get(&sys, CONTENT_VERSION, &id, Some(&fields)).await {
            Ok(v) => v,
            Err(e) if e.code == ErrorCode::NOT_FOUND => return Err(Self::file_not_found(&id)),
            Err(e) => return Err(e),
        };
        let get = |n: &str| view.fields.iter().find(|(k, _)| k == n).map(|(_, v)| v);
        let text = |n: &str| match get(n) {
            Some(Value::Text(s)) => s.clone(),
            _ => String::new(),
        };
        if !self.document_visible(c, &text("ContentDocumentId")).await? {
            return Err(Self::file_not_found(&id));
        }
        let size = match get("ContentSize") {
            Some(Value::Number(d)) => {
                use rust_decimal::prelude::ToPrimitive;
                d.to_u64().unwrap_or(0)
            }
            _ => 0,
        };
        Ok(VersionContent {
            version_id: id,
            sha256: text("Checksum"),
            size,
            content_type: mosaic_files::sniff::mime_of(&text("FileType")),
            file_name: text("PathOnClient"),
        })
    }

    /// Streams a version's bytes (or `range` of them) from the blob store.
    pub async fn open_content(
        &self,
        tenant: &str,
        content: &VersionContent,
        range: Option<Range<u64>>,
    ) -> MosaicResult<BlobBody> {
        self.blob_store().get(tenant, &content.sha256, range).await
    }

    /// Deletes blobs no `ContentVersion` references (live or binned) and
    /// temporary uploads, when last written before `cutoff`. Returns how
    /// many blobs it deleted.
    pub async fn collect_orphan_blobs(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> MosaicResult<usize> {
        let store = self.blob_store();
        let age = (chrono::Utc::now() - cutoff).to_std().unwrap_or_default();
        let temporary = store.clean_temporary(age).await?;
        if temporary > 0 {
            tracing::info!(temporary, "temporary uploads removed");
        }
        let mut deleted = 0;
        for blob in store.list().await? {
            if blob.modified > cutoff {
                continue;
            }
            let referenced = match self.meta.object(&blob.tenant_id, CONTENT_VERSION).await {
                Ok(_) => {
                    let sys = Caller::system(&blob.tenant_id, "");
                    let r = self
                        .query(
                            &sys,
                            &format!(
                                "SELECT Id FROM ContentVersion WHERE Checksum = '{}' LIMIT 1",
                                blob.sha256
                            ),
                            QueryOptions {
                                include_deleted: true,
                                batch_size: None,
                            },
                        )
                        .await?;
                    !r.records.is_empty()
                }
                Err(e) if e.code == ErrorCode::NOT_FOUND => false,
                Err(e) => return Err(e),
            };
            if !referenced {
                store.delete(&blob.tenant_id, &blob.sha256).await?;
                deleted += 1;
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "orphaned file blobs removed");
        }
        Ok(deleted)
    }
}

/// The collector's cutoff at a run: blobs written more than
/// [`ORPHAN_GRACE`] ago; at start-up with the data directory's own store
/// (which no other process writes), everything written before this
/// process started — a crash's leftovers go at once.
fn collector_cutoff(
    embedded: bool,
    started: chrono::DateTime<chrono::Utc>,
    first: bool,
) -> chrono::DateTime<chrono::Utc> {
    let grace = chrono::Utc::now()
        - chrono::Duration::from_std(ORPHAN_GRACE).unwrap_or(chrono::Duration::zero());
    if first && embedded {
        started.max(grace)
    } else {
        grace
    }
}

/// Starts the orphan collector: at once, then every
/// [`COLLECT_INTERVAL`] (see [`collector_cutoff`]). Ends with the platform.
pub fn spawn_collector(platform: &Arc<Platform>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let embedded = platform.blobs.kind() == "embedded";
    let started = chrono::Utc::now();
    let platform = Arc::downgrade(platform);
    runtime.spawn(async move {
        let mut first = true;
        let mut tick = tokio::time::interval(COLLECT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(p) = platform.upgrade() else {
                return;
            };
            let cutoff = collector_cutoff(embedded, started, first);
            if let Err(e) = p.collect_orphan_blobs(cutoff).await {
                tracing::warn!(error = %e, "collecting orphaned file blobs failed");
            }
            first = false;
        }
    });
}
