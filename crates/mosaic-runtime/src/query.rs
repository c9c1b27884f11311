//! The query engine: SOQL and SOSL for a caller. Binds names and types via the
//! metadata service (the planner in `mosaic-store::plan` does the checking),
//! resolves date literals in the tenant's zone, runs the plan on the query
//! store, then does what SQL cannot: nests parent records and child
//! subqueries (one extra query per subquery per page, never per row),
//! resolves Owner / CreatedBy / LastModifiedBy users (once per distinct user
//! per page), decrypts and formats values, and keeps cursors for paging.
//!
//! Paging keeps a stable snapshot: the first run streams every matching row,
//! keeps the first batch whole and only the ids of the rest; later pages
//! fetch exactly those ids. totalSize never costs a separate COUNT(*).

use crate::platform::Platform;
use crate::records::Caller;
use chrono::{DateTime, Utc, Weekday};
use mosaic_meta::model::ObjectMeta;
use mosaic_meta::FieldDef;
use mosaic_store::plan::{
    plan_query, plan_search_object, ChildPlan, OutputItem, PlanContext, PlannedQuery, Schema,
    SchemaField, SchemaObject, UserField,
};
use mosaic_store::query_store::{QueryRows, Restrict};
use mosaic_store::{QueryStore, UserRow};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult, Value};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Rows per REST batch when the client asks for nothing else (Salesforce: 2,000).
pub const DEFAULT_BATCH_SIZE: usize = 2_000;
/// Smallest and largest `Sforce-Query-Options: batchSize`.
pub const MIN_BATCH_SIZE: usize = 200;
pub const MAX_BATCH_SIZE: usize = 2_000;
/// Most rows one query may match (SPEC: 50,000 rows per transaction).
pub const MAX_QUERY_ROWS: usize = 50_000;
/// How long a query locator stays valid (Salesforce: 15 minutes).
pub const CURSOR_TTL: Duration = Duration::from_secs(15 * 60);
/// Most records one search returns.
pub const MAX_SEARCH_RESULTS: usize = 2_000;
/// Most words (and quoted phrases) one search term may hold: each is a
/// lookup in the full-text index, intersected or united with the others.
pub const MAX_SEARCH_WORDS: usize = 32;
/// Fewest characters before a trailing `*` (a shorter prefix expands to a
/// large share of the index).
pub const MIN_SEARCH_PREFIX: usize = 2;
/// Searches one tenant may run at once; more are refused (429) until one
/// ends, so one tenant cannot fill every database reader with searches.
pub const SEARCHES_PER_TENANT: usize = 4;

/// Per-request options.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryOptions {
    /// queryAll: deleted records too (`IsDeleted` true).
    pub include_deleted: bool,
    /// Rows per batch; `None` = [`DEFAULT_BATCH_SIZE`]. Clamped to 200–2,000.
    pub batch_size: Option<usize>,
}

/// A result set (top level or a child subquery).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub total_size: usize,
    pub done: bool,
    pub records: Vec<QueryRecord>,
    /// `{locator}-{offset}` of the next batch.
    pub next: Option<String>,
}

/// One record (or aggregate row, `object` = `AggregateResult`, no id).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRecord {
    pub object: String,
    pub id: Option<String>,
    pub fields: Vec<(String, QueryValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    Value(Value),
    /// A parent (or user) record; `None` when the lookup is empty.
    Record(Option<Box<QueryRecord>>),
    /// A child subquery's records; `None` when there are none (as Salesforce).
    Children(Option<QueryResult>),
}

struct Cursor {
    tenant_id: String,
    user_id: String,
    planned: Arc<PlannedQuery>,
    /// Ids of rows `[first_batch, total)` (record queries).
    ids: Vec<String>,
    /// Every row (aggregate queries: small, fully materialized).
    rows: Vec<QueryRecord>,
    first_batch: usize,
    total: usize,
    batch: usize,
}

/// A result's rest, as [`Platform::open_cursor`] keeps it.
struct OpenCursor {
    planned: Arc<PlannedQuery>,
    /// How another instance plans the query again (record queries; `None`
    /// for aggregate rows, which stay with the instance that ran them).
    origin: Option<CursorOrigin>,
    /// Ids of the rows after the first batch (record queries).
    ids: Vec<String>,
    /// Every row (aggregate queries).
    rows: Vec<QueryRecord>,
    total: usize,
    batch: usize,
}

/// What a cursor's rows were selected by, so that any instance can fetch
/// its next batches: the query itself, and whether its ids were chosen in
/// the engine (formula fields in WHERE / ORDER BY), in which case the next
/// batches are fetched by id with the SELECT list alone.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct CursorOrigin {
    pub soql: String,
    pub include_deleted: bool,
    pub chosen_by_engine: bool,
}

/// A record cursor as kept in Redis for the other instances.
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedCursor {
    tenant_id: String,
    user_id: String,
    origin: CursorOrigin,
    ids: Vec<String>,
    first_batch: usize,
    total: usize,
    batch: usize,
}

/// The process-wide query engine (one per [`Platform`]).
pub struct QueryEngine {
    store: Arc<dyn QueryStore>,
    cursors: crate::cursors::CursorCache<Cursor>,
    searches: TenantSlots,
    clock: RwLock<Option<DateTime<Utc>>>,
}

impl QueryEngine {
    pub fn new(store: Arc<dyn QueryStore>) -> QueryEngine {
        QueryEngine {
            store,
            cursors: crate::cursors::CursorCache::new(crate::cursors::CursorBudget {
                per_tenant: crate::cursors::CURSOR_BYTES_PER_TENANT,
                total: crate::cursors::CURSOR_BYTES_TOTAL,
                ttl: CURSOR_TTL,
            }),
            searches: TenantSlots::new(SEARCHES_PER_TENANT),
            clock: RwLock::new(None),
        }
    }

    pub fn store(&self) -> &Arc<dyn QueryStore> {
        &self.store
    }

    /// Fixes "now" for date literals (tests); `None` returns to the wall clock.
    pub fn set_clock(&self, now: Option<DateTime<Utc>>) {
        if let Ok(mut c) = self.clock.write() {
            *c = now;
        }
    }

    /// Drops every cursor (tests of expiry; operators).
    pub fn expire_cursors(&self) {
        self.cursors.invalidate_all();
    }

    /// Date literals resolve in the caller's zone (theirs, else the
    /// tenant's, else UTC; see [`Caller::zone`]).
    fn context(&self, c: &Caller, include_deleted: bool) -> PlanContext {
        let now = self
            .clock
            .read()
            .ok()
            .and_then(|c| *c)
            .unwrap_or_else(Utc::now);
        let zone = c.zone;
        PlanContext {
            today: mosaic_soql::date_literal::local_today(now, &zone),
            zone,
            week_start: Weekday::Sun,
            include_deleted,
            // The tenant's start month is set by `Platform::plan_context`.
            fiscal_start_month: 1,
            user_id: Some(c.user_id.clone()),
        }
    }
}

/// The planner's view of a tenant's objects.
pub fn schema_of(objects: &[Arc<ObjectMeta>]) -> Schema {
    Schema {
        objects: objects
            .iter()
            .map(|o| SchemaObject {
                id: o.def.id.clone(),
                api_name: o.def.api_name.clone(),
                fields: o
                    .def
                    .fields
                    .iter()
                    .map(|f| SchemaField {
                        api_name: f.api_name.clone(),
                        data_type: f.data_type,
                        slot: f.slot,
                        indexed: f.needs_index(),
                        unique: f.is_unique,
                        lookup_object_id: f.lookup_object_id.clone(),
                        relationship_name: f.parent_relationship_name(),
                        child_relationship_name: f.relationship_name.clone(),
                        rollup: crate::rollups::spec_of(objects, f),
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub(crate) fn batch_of(opts: &QueryOptions) -> usize {
    opts.batch_size
        .unwrap_or(DEFAULT_BATCH_SIZE)
        .clamp(MIN_BATCH_SIZE, MAX_BATCH_SIZE)
}

fn new_locator() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[rng.random_range(0..36)]))
        .collect()
}

/// Rendering context of one page: object definitions and users.
struct Page<'a> {
    platform: &'a Platform,
    objects: HashMap<String, Arc<ObjectMeta>>,
    users: HashMap<String, Option<UserRow>>,
    /// Formula values of the page by (object id, record id, field).
    formulas: HashMap<(String, String, String), Value>,
}

pub(crate) fn text(v: &Value) -> Option<&str> {
    match v {
        Value::Text(s) => Some(s),
        _ => None,
    }
}

impl Page<'_> {
    /// A stored value as the Data API shows it: decrypted, at the field's scale.
    fn present(&self, f: &FieldDef, raw: Value) -> Value {
        self.platform.readable(f, raw)
    }

    fn field_value(&self, object_id: &str, name: &str, raw: &Value) -> Value {
        match self.objects.get(object_id).and_then(|o| o.field(name)) {
            Some(f) => self.present(f, raw.clone()),
            None => raw.clone(),
        }
    }

    /// Walks (creating) nested parent records along `hops`; `None` when a
    /// parent on the way is absent (its key is then set to null).
    fn descend<'r>(
        record: &'r mut QueryRecord,
        hops: &[mosaic_store::plan::Hop],
        row: &[Value],
    ) -> Option<&'r mut QueryRecord> {
        let Some((hop, rest)) = hops.split_first() else {
            return Some(record);
        };
        let id = row.get(hop.id_select).and_then(text).map(str::to_string);
        let pos = record.fields.iter().position(|(k, _)| *k == hop.name);
        let pos = match pos {
            Some(p) => p,
            None => {
                let v = QueryValue::Record(id.clone().map(|id| {
                    Box::new(QueryRecord {
                        object: hop.object.clone(),
                        id: Some(id),
                        fields: Vec::new(),
                    })
                }));
                record.fields.push((hop.name.clone(), v));
                record.fields.len() - 1
            }
        };
        match &mut record.fields[pos].1 {
            QueryValue::Record(Some(child)) => Self::descend(child, rest, row),
            _ => None,
        }
    }

    fn put(record: &mut QueryRecord, name: &str, v: QueryValue) {
        if !record.fields.iter().any(|(k, _)| k == name) {
            record.fields.push((name.to_string(), v));
        }
    }

    fn user_value(&self, id: &str, field: UserField) -> Value {
        let Some(Some(u)) = self.users.get(id) else {
            return Value::Null;
        };
        match field {
            UserField::Id => Value::Text(u.id.clone()),
            UserField::Name | UserField::Username => Value::Text(u.username.clone()),
            UserField::Email => u.email.clone().map(Value::Text).unwrap_or(Value::Null),
            UserField::IsActive => Value::Boolean(u.is_active),
        }
    }

    fn record(
        &self,
        object: &str,
        items: &[OutputItem],
        row: &[Value],
        children: &[HashMap<String, QueryResult>],
    ) -> QueryRecord {
        let mut rec = QueryRecord {
            object: object.to_string(),
            id: row.first().and_then(text).map(str::to_string),
            fields: Vec::new(),
        };
        let mut child_no = 0;
        for item in items {
            match item {
                OutputItem::Field {
                    hops,
                    name,
                    object_id,
                    select,
                } => {
                    if let Some(target) = Self::descend(&mut rec, hops, row) {
                        let raw = row.get(*select).cloned().unwrap_or(Value::Null);
                        Self::put(
                            target,
                            name,
                            QueryValue::Value(self.field_value(object_id, name, &raw)),
                        );
                    }
                }
                OutputItem::Formula {
                    hops,
                    name,
                    object_id,
                    id_select,
                } => {
                    let id = row.get(*id_select).and_then(text).map(str::to_string);
                    let v = id
                        .and_then(|id| {
                            self.formulas
                                .get(&(object_id.clone(), id, name.clone()))
                                .cloned()
                        })
                        .unwrap_or(Value::Null);
                    if let Some(target) = Self::descend(&mut rec, hops, row) {
                        Self::put(target, name, QueryValue::Value(v));
                    }
                }
                OutputItem::User { hops, field } => {
                    let Some((last, parents)) = hops.split_last() else {
                        continue;
                    };
                    let Some(target) = Self::descend(&mut rec, parents, row) else {
                        continue;
                    };
                    let uid = row.get(last.id_select).and_then(text).map(str::to_string);
                    let pos = match target.fields.iter().position(|(k, _)| *k == last.name) {
                        Some(p) => p,
                        None => {
                            let v = QueryValue::Record(uid.clone().map(|id| {
                                Box::new(QueryRecord {
                                    object: "User".into(),
                                    id: Some(id),
                                    fields: Vec::new(),
                                })
                            }));
                            target.fields.push((last.name.clone(), v));
                            target.fields.len() - 1
                        }
                    };
                    if let (QueryValue::Record(Some(user)), Some(id)) =
                        (&mut target.fields[pos].1, uid)
                    {
                        Self::put(
                            user,
                            field.api_name(),
                            QueryValue::Value(self.user_value(&id, *field)),
                        );
                    }
                }
                OutputItem::Child(cp) => {
                    let found = rec
                        .id
                        .as_ref()
                        .and_then(|id| children.get(child_no).and_then(|m| m.get(id)))
                        .cloned();
                    Self::put(&mut rec, &cp.name, QueryValue::Children(found));
                    child_no += 1;
                }
                OutputItem::Aggregate { name, select } => {
                    let v = row.get(*select).cloned().unwrap_or(Value::Null);
                    Self::put(&mut rec, name, QueryValue::Value(v));
                }
            }
        }
        rec
    }
}

/// User ids a page's rows refer to through user relationships.
fn user_ids(items: &[OutputItem], rows: &[Vec<Value>], out: &mut Vec<String>) {
    for item in items {
        if let OutputItem::User { hops, .. } = item {
            if let Some(last) = hops.last() {
                for r in rows {
                    if let Some(id) = r.get(last.id_select).and_then(text) {
                        out.push(id.to_string());
                    }
                }
            }
        }
    }
}

/// Object ids whose definitions rendering needs.
fn object_ids(items: &[OutputItem], out: &mut Vec<String>) {
    for item in items {
        match item {
            OutputItem::Field { object_id, .. } => out.push(object_id.clone()),
            OutputItem::Child(cp) => object_ids(&cp.items, out),
            _ => {}
        }
    }
}

impl Platform {
    /// The planning context of `c`, with the tenant's fiscal year.
    async fn plan_context(&self, c: &Caller, include_deleted: bool) -> MosaicResult<PlanContext> {
        let mut ctx = self.queries.context(c, include_deleted);
        ctx.fiscal_start_month = self
            .resolved_locale(&c.tenant_id, "")
            .await?
            .fiscal_start_month;
        Ok(ctx)
    }

    /// The planner's schema as the caller may see it.
    async fn schema(&self, c: &Caller) -> MosaicResult<Schema> {
        let objects = self.meta.objects(&c.tenant_id).await?;
        Ok(crate::access::visible_schema(
            c,
            &objects,
            schema_of(&objects),
        ))
    }

    /// `WITH SECURITY_ENFORCED` / `WITH USER_MODE`: naming an object or
    /// field the caller cannot read is `INSUFFICIENT_ACCESS`, as Salesforce
    /// answers, instead of the `INVALID_FIELD` / `INVALID_TYPE` a query
    /// without the clause gets (the name is then as good as absent).
    async fn enforce_security(
        &self,
        c: &Caller,
        soql: &str,
        visible: &Schema,
        ctx: &PlanContext,
    ) -> MosaicResult<()> {
        if c.perms.is_admin() {
            return Ok(());
        }
        let Ok(q) = mosaic_soql::parse_query(soql) else {
            return Ok(());
        };
        if !matches!(
            q.with,
            Some(
                mosaic_soql::WithClause::SecurityEnforced(_) | mosaic_soql::WithClause::UserMode(_)
            )
        ) {
            return Ok(());
        }
        let Err(e) = plan_query(soql, visible, ctx) else {
            return Ok(());
        };
        if !matches!(e.code, ErrorCode::INVALID_FIELD | ErrorCode::INVALID_TYPE) {
            return Err(e);
        }
        let objects = self.meta.objects(&c.tenant_id).await?;
        if plan_query(soql, &schema_of(&objects), ctx).is_ok() {
            let mut denied = MosaicError::new(
                ErrorCode::INSUFFICIENT_ACCESS,
                "Insufficient permissions: secure query included inaccessible field",
            );
            denied.fields = e.fields;
            return Err(denied);
        }
        Err(e)
    }

    /// Plans a SOQL statement for a caller (no execution): errors are the
    /// user-facing MALFORMED_QUERY / INVALID_FIELD / INVALID_TYPE.
    #[tracing::instrument(name = "query.plan", skip_all)]
    pub async fn plan(
        &self,
        c: &Caller,
        soql: &str,
        include_deleted: bool,
    ) -> MosaicResult<PlannedQuery> {
        let schema = self.schema(c).await?;
        let ctx = self.plan_context(c, include_deleted).await?;
        self.enforce_security(c, soql, &schema, &ctx).await?;
        plan_query(soql, &schema, &ctx)
    }

    /// Runs a SOQL query and returns its first batch. With `FOR VIEW` or
    /// `FOR REFERENCE` the records returned go on the caller's recently
    /// viewed list (what `recent` answers), as Salesforce updates their
    /// last-viewed / last-referenced dates.
    #[tracing::instrument(name = "query.execute", skip_all)]
    pub async fn query(
        &self,
        c: &Caller,
        soql: &str,
        opts: QueryOptions,
    ) -> MosaicResult<QueryResult> {
        let result = self.query_first_batch(c, soql, opts).await?;
        let marks = mosaic_soql::parse_query(soql).is_ok_and(|q| {
            matches!(
                q.for_,
                Some(mosaic_soql::ForClause::View(_) | mosaic_soql::ForClause::Reference(_))
            )
        });
        if marks {
            self.mark_recent(c, &result.records).await?;
        }
        Ok(result)
    }

    /// Puts `records` on the caller's recently viewed list, the first of
    /// them newest; at most [`mosaic_store::recent::MAX_RECENT_PER_USER`]
    /// (the list keeps no more).
    async fn mark_recent(&self, c: &Caller, records: &[QueryRecord]) -> MosaicResult<()> {
        let keep = usize::try_from(mosaic_store::recent::MAX_RECENT_PER_USER).unwrap_or(50);
        let now = self.config.clock.now();
        let mut objects: HashMap<String, Arc<ObjectMeta>> = HashMap::new();
        let marked: Vec<&QueryRecord> = records
            .iter()
            .filter(|r| r.id.is_some())
            .take(keep)
            .collect();
        for (i, r) in marked.iter().enumerate().rev() {
            let Some(id) = r.id.as_deref() else { continue };
            let obj = match objects.get(&r.object) {
                Some(o) => o.clone(),
                None => {
                    let o = self.meta.object(&c.tenant_id, &r.object).await?;
                    objects.insert(r.object.clone(), o.clone());
                    o
                }
            };
            // Earlier rows get later times (the list keeps milliseconds): the
            // first row returned is the newest.
            let at = now - chrono::Duration::milliseconds(i as i64);
            self.recent
                .touch_recent(&c.tenant_id, &c.user_id, &obj.def.id, id, at)
                .await?;
        }
        Ok(())
    }

    async fn query_first_batch(
        &self,
        c: &Caller,
        soql: &str,
        opts: QueryOptions,
    ) -> MosaicResult<QueryResult> {
        metrics::counter!("query_plans_total", "shape" => query_shape(soql)).increment(1);
        // Formula fields of the queried object in WHERE / ORDER BY: engine path.
        let schema = self.schema(c).await?;
        let ctx = self.plan_context(c, opts.include_deleted).await?;
        self.enforce_security(c, soql, &schema, &ctx).await?;
        if let Some(r) = self
            .query_formula_path(c, soql, opts, &schema, &ctx)
            .await?
        {
            return Ok(r);
        }
        let planned = Arc::new(plan_query(soql, &schema, &ctx)?);
        let batch = batch_of(&opts);
        if planned.count_only {
            let rows = self
                .run_plan(c, &planned.plan, Restrict::None, 1, MAX_QUERY_ROWS)
                .await?;
            let n = match rows.rows.first().and_then(|r| r.first()) {
                Some(Value::Number(d)) => d.to_string().parse::<usize>().unwrap_or(0),
                _ => 0,
            };
            return Ok(QueryResult {
                total_size: n,
                done: true,
                records: Vec::new(),
                next: None,
            });
        }
        if planned.plan.aggregate {
            let rows = self
                .run_plan(c, &planned.plan, Restrict::None, usize::MAX, MAX_QUERY_ROWS)
                .await?;
            let page = self
                .page(&c.tenant_id, &planned.items, &[], &rows.rows)
                .await?;
            let all: Vec<QueryRecord> = rows
                .rows
                .iter()
                .map(|r| page.record("AggregateResult", &planned.items, r, &[]))
                .collect();
            let total = all.len();
            let first: Vec<QueryRecord> = all.iter().take(batch).cloned().collect();
            let next = if total > batch {
                let opened = OpenCursor {
                    planned: planned.clone(),
                    origin: None,
                    ids: Vec::new(),
                    rows: all,
                    total,
                    batch,
                };
                Some(self.open_cursor(c, opened).await?)
            } else {
                None
            };
            return Ok(QueryResult {
                total_size: total,
                done: next.is_none(),
                records: first,
                next,
            });
        }
        let rows = self
            .run_plan(c, &planned.plan, Restrict::None, batch, MAX_QUERY_ROWS)
            .await?;
        let QueryRows {
            rows,
            rest_ids,
            total,
        } = rows;
        let records = self.render(c, &planned, &rows).await?;
        let next = if rest_ids.is_empty() {
            None
        } else {
            let opened = OpenCursor {
                planned: planned.clone(),
                origin: Some(CursorOrigin {
                    soql: soql.to_string(),
                    include_deleted: opts.include_deleted,
                    chosen_by_engine: false,
                }),
                ids: rest_ids,
                rows: Vec::new(),
                total,
                batch,
            };
            Some(self.open_cursor(c, opened).await?)
        };
        Ok(QueryResult {
            total_size: total,
            done: next.is_none(),
            records,
            next,
        })
    }

    /// Keeps the rest of a result (after its first batch) under a new
    /// locator: in this process, and — record queries, with Redis
    /// configured — in Redis for every other instance, for as long as
    /// [`CURSOR_TTL`]. Redis failing only leaves the cursor local.
    async fn open_cursor(&self, c: &Caller, o: OpenCursor) -> MosaicResult<String> {
        let locator = new_locator();
        let bytes = ids_bytes(&o.ids) + rows_bytes(&o.rows);
        let shared = o.origin.as_ref().map(|origin| SharedCursor {
            tenant_id: c.tenant_id.clone(),
            user_id: c.user_id.clone(),
            origin: origin.clone(),
            ids: o.ids.clone(),
            first_batch: o.batch,
            total: o.total,
            batch: o.batch,
        });
        self.queries.cursors.insert(
            &c.tenant_id,
            locator.clone(),
            Cursor {
                tenant_id: c.tenant_id.clone(),
                user_id: c.user_id.clone(),
                planned: o.planned,
                ids: o.ids,
                rows: o.rows,
                first_batch: o.batch,
                total: o.total,
                batch: o.batch,
            },
            bytes,
        )?;
        let tier = &self.cache.tier;
        if let (Some(shared), true) = (shared, tier.has_l2()) {
            let stored = match serde_json::to_vec(&shared) {
                Ok(bytes) => tier
                    .set(&tier.keys.cursor(&locator), &bytes, CURSOR_TTL)
                    .await
                    .is_ok(),
                Err(_) => false,
            };
            if !stored {
                metrics::counter!("query_cursors_local_only_total").increment(1);
            }
        }
        Ok(format!("{locator}-{}", o.batch))
    }

    /// A cursor another instance opened (kept in Redis), planned again
    /// here for `c` and kept locally for the next batches; `None` when
    /// Redis has none (unknown, expired, Redis unavailable).
    async fn shared_cursor(&self, c: &Caller, key: &str) -> MosaicResult<Option<Arc<Cursor>>> {
        let tier = &self.cache.tier;
        if !tier.has_l2() {
            return Ok(None);
        }
        let Ok(Some(bytes)) = tier.get(&tier.keys.cursor(key)).await else {
            return Ok(None);
        };
        let Ok(shared) = serde_json::from_slice::<SharedCursor>(&bytes) else {
            return Ok(None);
        };
        if shared.tenant_id != c.tenant_id || shared.user_id != c.user_id {
            return Ok(None);
        }
        let schema = self.schema(c).await?;
        let ctx = self.plan_context(c, shared.origin.include_deleted).await?;
        let planned = if shared.origin.chosen_by_engine {
            crate::query_formula::render_plan(&shared.origin.soql, &schema, &ctx)?
        } else {
            plan_query(&shared.origin.soql, &schema, &ctx)?
        };
        let bytes = ids_bytes(&shared.ids);
        let cursor = Cursor {
            tenant_id: shared.tenant_id,
            user_id: shared.user_id,
            planned: Arc::new(planned),
            ids: shared.ids,
            rows: Vec::new(),
            first_batch: shared.first_batch,
            total: shared.total,
            batch: shared.batch,
        };
        metrics::counter!("query_cursors_shared_total").increment(1);
        self.queries
            .cursors
            .insert(&c.tenant_id, key.to_string(), cursor, bytes)?;
        Ok(self.queries.cursors.get(key))
    }

    /// The batch at `{locator}-{offset}`; `None` when the locator is unknown,
    /// expired, another caller's, or the offset is not inside the result.
    #[tracing::instrument(name = "query.more", skip_all)]
    pub async fn query_more(&self, c: &Caller, locator: &str) -> MosaicResult<Option<QueryResult>> {
        let Some((key, offset)) = locator.rsplit_once('-') else {
            return Ok(None);
        };
        let Ok(offset) = offset.parse::<usize>() else {
            return Ok(None);
        };
        let cur = match self.queries.cursors.get(key) {
            Some(cur) => cur,
            None => match self.shared_cursor(c, key).await? {
                Some(cur) => cur,
                None => return Ok(None),
            },
        };
        if cur.tenant_id != c.tenant_id
            || cur.user_id != c.user_id
            || !c.perms.can_read_object(&cur.planned.object_id)
            || offset < cur.first_batch
            || offset >= cur.total
        {
            return Ok(None);
        }
        let end = (offset + cur.batch).min(cur.total);
        let records = if cur.planned.plan.aggregate {
            cur.rows[offset..end].to_vec()
        } else {
            let ids = cur.ids[offset - cur.first_batch..end - cur.first_batch].to_vec();
            let fetched = self
                .run_plan(
                    c,
                    &cur.planned.plan,
                    Restrict::Ids(ids.clone()),
                    usize::MAX,
                    MAX_QUERY_ROWS,
                )
                .await?;
            // Back into snapshot order; rows deleted since are skipped.
            let mut by_id: HashMap<String, Vec<Value>> = fetched
                .rows
                .into_iter()
                .filter_map(|r| {
                    r.first()
                        .and_then(text)
                        .map(str::to_string)
                        .map(|id| (id, r))
                })
                .collect();
            let rows: Vec<Vec<Value>> = ids.iter().filter_map(|id| by_id.remove(id)).collect();
            self.render(c, &cur.planned, &rows).await?
        };
        if cur.planned.marks_recent {
            self.mark_recent(c, &records).await?;
        }
        let next = (end < cur.total).then(|| format!("{key}-{end}"));
        Ok(Some(QueryResult {
            total_size: cur.total,
            done: next.is_none(),
            records,
            next,
        }))
    }

    async fn page(
        &self,
        tenant_id: &str,
        items: &[OutputItem],
        extra_items: &[&ChildPlan],
        rows: &[Vec<Value>],
    ) -> MosaicResult<Page<'_>> {
        let mut oids = Vec::new();
        object_ids(items, &mut oids);
        for cp in extra_items {
            object_ids(&cp.items, &mut oids);
        }
        oids.sort();
        oids.dedup();
        let mut objects = HashMap::new();
        for id in oids {
            let o = self.meta.object_by_id(tenant_id, &id).await?;
            objects.insert(id, o);
        }
        let mut uids = Vec::new();
        user_ids(items, rows, &mut uids);
        uids.sort();
        uids.dedup();
        let mut users = HashMap::new();
        for id in uids {
            let u = self.meta_store.user(tenant_id, &id).await?;
            users.insert(id, u);
        }
        Ok(Page {
            platform: self,
            objects,
            users,
            formulas: HashMap::new(),
        })
    }

    /// Computes the formula fields a page selects: per object, one batch read
    /// of the records involved and one batched evaluation (never per row).
    async fn page_formulas(
        &self,
        c: &Caller,
        sets: &[(&[OutputItem], &[Vec<Value>])],
    ) -> MosaicResult<HashMap<(String, String, String), Value>> {
        let mut wanted: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
        for (items, rows) in sets {
            for item in items.iter() {
                if let OutputItem::Formula {
                    name,
                    object_id,
                    id_select,
                    ..
                } = item
                {
                    let entry = wanted.entry(object_id.clone()).or_default();
                    if !entry.0.contains(name) {
                        entry.0.push(name.clone());
                    }
                    entry.1.extend(
                        rows.iter()
                            .filter_map(|r| r.get(*id_select).and_then(text).map(str::to_string)),
                    );
                }
            }
        }
        let mut out = HashMap::new();
        for (object_id, (names, mut ids)) in wanted {
            ids.sort();
            ids.dedup();
            if ids.is_empty() {
                continue;
            }
            let obj = self.meta.object_by_id(&c.tenant_id, &object_id).await?;
            let stored = self.load_records(&c.tenant_id, &obj, &ids).await?;
            let mut values: Vec<_> = stored
                .iter()
                .map(|r| crate::formula_eval::row_values(self, &obj, r))
                .collect();
            self.compute_formulas(c, &obj, &mut values, &names, 0)
                .await?;
            for (row, v) in stored.iter().zip(values.iter_mut()) {
                for n in &names {
                    if let Some(x) = v.remove(n) {
                        out.insert((object_id.clone(), row.id.clone(), n.clone()), x);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Records by id in one batch read; ids it skips (deleted records, which
    /// queryAll returns) are read one by one.
    async fn load_records(
        &self,
        tenant_id: &str,
        obj: &ObjectMeta,
        ids: &[String],
    ) -> MosaicResult<Vec<mosaic_store::RecordRow>> {
        let slots = obj.slots();
        let mut stored = self
            .records
            .get_many(tenant_id, obj.id(), ids, &slots)
            .await?;
        if stored.len() < ids.len() {
            let found: std::collections::HashSet<String> =
                stored.iter().map(|r| r.id.clone()).collect();
            for id in ids.iter().filter(|id| !found.contains(*id)) {
                if let Some(r) = self.records.get(tenant_id, obj.id(), id, &slots).await? {
                    stored.push(r);
                }
            }
        }
        Ok(stored)
    }

    /// Values of the formula fields `names` of the records `ids` (batched),
    /// by record id, in `names` order.
    pub(crate) async fn formula_values(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        ids: &[String],
        names: &[String],
    ) -> MosaicResult<HashMap<String, Vec<Value>>> {
        let stored = self.load_records(&c.tenant_id, obj, ids).await?;
        let mut values: Vec<_> = stored
            .iter()
            .map(|r| crate::formula_eval::row_values(self, obj, r))
            .collect();
        if !names.is_empty() {
            self.compute_formulas(c, obj, &mut values, names, 0).await?;
        }
        Ok(stored
            .iter()
            .zip(values.iter_mut())
            .map(|(row, v)| {
                let vals = names
                    .iter()
                    .map(|n| v.remove(n).unwrap_or(Value::Null))
                    .collect();
                (row.id.clone(), vals)
            })
            .collect())
    }

    /// The first batch of an ordered id list (rows fetched with `planned`,
    /// rendered in that order), keeping the rest in a cursor.
    pub(crate) async fn snapshot_result(
        &self,
        c: &Caller,
        planned: Arc<PlannedQuery>,
        origin: CursorOrigin,
        ids: Vec<String>,
        batch: usize,
    ) -> MosaicResult<QueryResult> {
        let total = ids.len();
        let first: Vec<String> = ids.iter().take(batch).cloned().collect();
        let fetched = if first.is_empty() {
            Vec::new()
        } else {
            self.run_plan(
                c,
                &planned.plan,
                Restrict::Ids(first.clone()),
                usize::MAX,
                MAX_QUERY_ROWS,
            )
            .await?
            .rows
        };
        let mut by_id: HashMap<String, Vec<Value>> = fetched
            .into_iter()
            .filter_map(|r| {
                r.first()
                    .and_then(text)
                    .map(str::to_string)
                    .map(|id| (id, r))
            })
            .collect();
        let rows: Vec<Vec<Value>> = first.iter().filter_map(|id| by_id.remove(id)).collect();
        let records = self.render(c, &planned, &rows).await?;
        let next = if total > batch {
            let opened = OpenCursor {
                planned: planned.clone(),
                origin: Some(origin),
                ids: ids[batch..].to_vec(),
                rows: Vec::new(),
                total,
                batch,
            };
            Some(self.open_cursor(c, opened).await?)
        } else {
            None
        };
        Ok(QueryResult {
            total_size: total,
            done: next.is_none(),
            records,
            next,
        })
    }

    /// Renders a page of root rows, running each child subquery once for the page.
    async fn render(
        &self,
        c: &Caller,
        planned: &PlannedQuery,
        rows: &[Vec<Value>],
    ) -> MosaicResult<Vec<QueryRecord>> {
        let tenant_id = c.tenant_id.as_str();
        let parent_ids: Vec<String> = rows
            .iter()
            .filter_map(|r| r.first().and_then(text).map(str::to_string))
            .collect();
        let mut child_results: Vec<HashMap<String, QueryResult>> = Vec::new();
        let mut child_rows: Vec<(Vec<Vec<Value>>, &ChildPlan)> = Vec::new();
        let child_plans: Vec<&ChildPlan> = planned
            .items
            .iter()
            .filter_map(|i| match i {
                OutputItem::Child(cp) => Some(&**cp),
                _ => None,
            })
            .collect();
        for cp in &child_plans {
            let fetched = if parent_ids.is_empty() {
                Vec::new()
            } else {
                self.run_plan(
                    c,
                    &cp.plan,
                    Restrict::ColumnIn {
                        column: cp.link,
                        values: parent_ids.clone(),
                    },
                    usize::MAX,
                    MAX_QUERY_ROWS,
                )
                .await?
                .rows
            };
            child_rows.push((fetched, cp));
        }
        // Users of the root rows and of every child row, fetched together.
        let mut page = self
            .page(tenant_id, &planned.items, &child_plans, rows)
            .await?;
        let mut more_uids = Vec::new();
        for (crow, cp) in &child_rows {
            user_ids(&cp.items, crow, &mut more_uids);
        }
        more_uids.sort();
        more_uids.dedup();
        for id in more_uids {
            if let std::collections::hash_map::Entry::Vacant(slot) = page.users.entry(id) {
                let u = self.meta_store.user(tenant_id, slot.key()).await?;
                slot.insert(u);
            }
        }
        let mut formula_sets: Vec<(&[OutputItem], &[Vec<Value>])> = vec![(&planned.items, rows)];
        for (crow, cp) in &child_rows {
            formula_sets.push((&cp.items, crow));
        }
        page.formulas = self.page_formulas(c, &formula_sets).await?;
        for (crow, cp) in &child_rows {
            let mut grouped: HashMap<String, Vec<&Vec<Value>>> = HashMap::new();
            for r in crow {
                if let Some(pid) = r.get(cp.link_select).and_then(text) {
                    grouped.entry(pid.to_string()).or_default().push(r);
                }
            }
            let mut results = HashMap::new();
            for (pid, list) in grouped {
                let skip = usize::try_from(cp.offset).unwrap_or(usize::MAX);
                let take = cp
                    .limit
                    .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
                let records: Vec<QueryRecord> = list
                    .into_iter()
                    .skip(skip)
                    .take(take)
                    .map(|r| page.record(&cp.object_api_name, &cp.items, r, &[]))
                    .collect();
                if !records.is_empty() {
                    results.insert(
                        pid,
                        QueryResult {
                            total_size: records.len(),
                            done: true,
                            records,
                            next: None,
                        },
                    );
                }
            }
            child_results.push(results);
        }
        Ok(rows
            .iter()
            .map(|r| page.record(&planned.object_api_name, &planned.items, r, &child_results))
            .collect())
    }

    /// SOSL: `FIND {term} [IN ALL FIELDS] RETURNING O(f, … [WHERE] [ORDER BY] [LIMIT])`.
    /// Only `ALL FIELDS` is distinguished: NAME / EMAIL / PHONE scopes search all
    /// text fields too.
    #[tracing::instrument(name = "query.search", skip_all)]
    pub async fn search(&self, c: &Caller, sosl: &str) -> MosaicResult<Vec<QueryRecord>> {
        let sq = mosaic_soql::parse_search(sosl)
            .map_err(|e| MosaicError::new(ErrorCode::MALFORMED_QUERY, e.render(sosl)))?;
        check_search_term(&sq.term.raw).map_err(|msg| {
            MosaicError::new(
                ErrorCode::MALFORMED_QUERY,
                mosaic_soql::ParseError::at(sosl, sq.term.span.start, msg).render(sosl),
            )
        })?;
        let _slot = self.queries.searches.take(&c.tenant_id).ok_or_else(|| {
            metrics::counter!("requests_refused_total", "reason" => "search_slots").increment(1);
            MosaicError::new(
                ErrorCode::REQUEST_LIMIT_EXCEEDED,
                format!(
                    "this organization already runs {SEARCHES_PER_TENANT} searches at once; retry when one has finished"
                ),
            )
        })?;
        let schema = self.schema(c).await?;
        let ctx = self.plan_context(c, false).await?;
        let returning: Vec<mosaic_soql::ReturningObject> = if sq.returning.is_empty() {
            schema
                .objects
                .iter()
                .map(|o| mosaic_soql::ReturningObject {
                    object: mosaic_soql::Ident {
                        name: o.api_name.clone(),
                        span: sq.span,
                    },
                    fields: Vec::new(),
                    where_: None,
                    order_by: Vec::new(),
                    limit: None,
                    span: sq.span,
                })
                .collect()
        } else {
            sq.returning.clone()
        };
        let mut object_ids = Vec::new();
        for ro in &returning {
            let o = schema.by_name(&ro.object.name).ok_or_else(|| {
                MosaicError::new(
                    ErrorCode::INVALID_TYPE,
                    mosaic_soql::ParseError::at(
                        sosl,
                        ro.object.span.start,
                        format!("sObject type '{}' is not supported", ro.object.name),
                    )
                    .render(sosl),
                )
            })?;
            object_ids.push(o.id.clone());
        }
        let limit = sq
            .limit
            .map_or(MAX_SEARCH_RESULTS, |l| (l as usize).min(MAX_SEARCH_RESULTS));
        let hits = self
            .queries
            .store
            .search(
                &c.tenant_id,
                &sq.term.raw,
                &object_ids,
                limit,
                self.visibility(c, object_ids.iter().cloned()).await?,
            )
            .await?;
        let mut out = Vec::new();
        for (ro, oid) in returning.iter().zip(&object_ids) {
            let ids: Vec<String> = hits
                .iter()
                .filter(|h| &h.object_id == oid)
                .map(|h| h.record_id.clone())
                .collect();
            if ids.is_empty() {
                continue;
            }
            let rank: HashMap<&str, usize> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i))
                .collect();
            let planned = plan_search_object(sosl, &schema, &ctx, ro, ids.clone())?;
            let rows = self
                .run_plan(c, &planned.plan, Restrict::None, usize::MAX, MAX_QUERY_ROWS)
                .await?;
            let mut rows = rows.rows;
            if ro.order_by.is_empty() {
                rows.sort_by_key(|r| {
                    r.first()
                        .and_then(text)
                        .and_then(|id| rank.get(id).copied())
                        .unwrap_or(usize::MAX)
                });
            }
            out.extend(self.render(c, &planned, &rows).await?);
        }
        out.truncate(limit);
        Ok(out)
    }
}

/// Checks a search term's cost: at most [`MAX_SEARCH_WORDS`] words, and a
/// prefix (`abc*`) at least [`MIN_SEARCH_PREFIX`] characters long.
fn check_search_term(raw: &str) -> Result<(), String> {
    let mut words = 0usize;
    let mut in_phrase = false;
    for piece in raw.split('"') {
        if in_phrase {
            words += usize::from(piece.chars().any(char::is_alphanumeric));
        } else {
            for w in piece.split_whitespace() {
                if matches!(w, "AND" | "OR" | "NOT") {
                    continue;
                }
                let core: String = w.chars().filter(|c| c.is_alphanumeric()).collect();
                if core.is_empty() {
                    continue;
                }
                words += 1;
                if w.ends_with('*') && core.chars().count() < MIN_SEARCH_PREFIX {
                    return Err(format!(
                        "the prefix '{w}' is too short: at least {MIN_SEARCH_PREFIX} characters before '*'"
                    ));
                }
            }
        }
        in_phrase = !in_phrase;
    }
    if words > MAX_SEARCH_WORDS {
        return Err(format!(
            "the search term has {words} words; at most {MAX_SEARCH_WORDS} are allowed"
        ));
    }
    Ok(())
}

/// A bounded number of concurrent operations per tenant.
struct TenantSlots {
    per_tenant: usize,
    slots: moka::sync::Cache<String, Arc<tokio::sync::Semaphore>>,
}

impl TenantSlots {
    /// Tenants idle this long drop out of the table (their slots are free).
    const IDLE: Duration = Duration::from_secs(600);

    fn new(per_tenant: usize) -> TenantSlots {
        TenantSlots {
            per_tenant,
            slots: moka::sync::Cache::builder()
                .time_to_idle(Self::IDLE)
                .build(),
        }
    }

    /// One of `tenant`'s slots, held until dropped; `None` when all are taken.
    fn take(&self, tenant: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.slots
            .get_with_by_ref(tenant, || {
                Arc::new(tokio::sync::Semaphore::new(self.per_tenant))
            })
            .try_acquire_owned()
            .ok()
    }
}

/// Bytes a cursor's ids take (the strings and their headers).
fn ids_bytes(ids: &[String]) -> u64 {
    ids.iter()
        .map(|id| (id.capacity() + std::mem::size_of::<String>()) as u64)
        .sum()
}

/// An estimate of the bytes of materialized rows (aggregate cursors).
fn rows_bytes(rows: &[QueryRecord]) -> u64 {
    const PER_FIELD: u64 = 96;
    rows.iter()
        .map(|r| {
            (std::mem::size_of::<QueryRecord>() + r.object.len()) as u64
                + PER_FIELD * r.fields.len() as u64
        })
        .sum()
}

/// The SOQL of the simple list endpoint (`sobjects/{O}?fields=&where=&order_by=&limit=&offset=`).
/// Field lists and sort keys are checked to be names (and ASC / DESC / NULLS
/// FIRST / LAST) so the parts cannot change the statement's shape; `where`
/// is a SOQL condition and goes through the parser like any query.
pub fn list_soql(
    object: &ObjectMeta,
    fields: Option<&[String]>,
    where_: Option<&str>,
    order_by: Option<&str>,
    limit: Option<&str>,
    offset: Option<&str>,
) -> MosaicResult<String> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    };
    let bad = |field: &str, msg: String| MosaicError::field(ErrorCode::INVALID_INPUT, field, msg);
    let list: Vec<String> = match fields {
        Some(f) if !f.is_empty() => {
            for n in f {
                if !name_ok(n) {
                    return Err(bad(
                        "fields",
                        format!(
                            "'{}' is not a field name",
                            n.chars().take(80).collect::<String>()
                        ),
                    ));
                }
            }
            f.to_vec()
        }
        _ => mosaic_meta::model::SYSTEM_FIELDS
            .iter()
            .map(|s| s.to_string())
            .chain(object.def.fields.iter().map(|f| f.api_name.clone()))
            .collect(),
    };
    let mut soql = format!("SELECT {} FROM {}", list.join(", "), object.api_name());
    if let Some(w) = where_.filter(|w| !w.trim().is_empty()) {
        soql.push_str(" WHERE ");
        soql.push_str(w);
    }
    if let Some(o) = order_by.filter(|o| !o.trim().is_empty()) {
        for key in o.split(',') {
            let words: Vec<&str> = key.split_whitespace().collect();
            let ok = match words.as_slice() {
                [f, rest @ ..] => {
                    name_ok(f)
                        && rest.iter().all(|w| {
                            ["ASC", "DESC", "NULLS", "FIRST", "LAST"]
                                .iter()
                                .any(|k| k.eq_ignore_ascii_case(w))
                        })
                }
                [] => false,
            };
            if !ok {
                return Err(bad(
                    "order_by",
                    format!(
                        "'{}' is not a sort key",
                        key.trim().chars().take(80).collect::<String>()
                    ),
                ));
            }
        }
        soql.push_str(" ORDER BY ");
        soql.push_str(o);
    }
    for (name, v) in [("LIMIT", limit), ("OFFSET", offset)] {
        if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
            let n: u32 = v.trim().parse().map_err(|_| {
                bad(
                    &name.to_lowercase(),
                    format!("{} must be a non-negative integer", name.to_lowercase()),
                )
            })?;
            soql.push_str(&format!(" {name} {n}"));
        }
    }
    Ok(soql)
}

/// A coarse shape of a query for metrics: how it will be executed.
fn query_shape(soql: &str) -> &'static str {
    match mosaic_soql::parse_query(soql) {
        Err(_) => "malformed",
        Ok(q) if q.is_aggregate() => "aggregate",
        Ok(q)
            if q.select
                .iter()
                .any(|i| matches!(i, mosaic_soql::SelectItem::SubQuery(_))) =>
        {
            "with_children"
        }
        Ok(q)
            if q.select
                .iter()
                .any(|i| matches!(i, mosaic_soql::SelectItem::Field(f) if f.parts.len() > 1)) =>
        {
            "parent_join"
        }
        Ok(_) => "rows",
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    #[test]
    fn search_terms_are_bounded_in_words_and_prefix_length() {
        assert!(check_search_term("acme").is_ok());
        assert!(check_search_term("ac* AND \"big deal\" OR NOT widget").is_ok());
        let many = vec!["w"; MAX_SEARCH_WORDS + 1].join(" ");
        assert!(check_search_term(&many).unwrap_err().contains("at most 32"));
        let phrases = vec!["\"a b\""; MAX_SEARCH_WORDS + 1].join(" ");
        assert!(check_search_term(&phrases).is_err());
        assert!(check_search_term("a*").unwrap_err().contains("too short"));
        assert!(
            check_search_term("*").is_ok(),
            "no word at all: nothing searched"
        );
    }

    #[test]
    fn each_tenant_has_its_own_search_slots() {
        let slots = TenantSlots::new(2);
        let a1 = slots.take("A").unwrap();
        let _a2 = slots.take("A").unwrap();
        assert!(slots.take("A").is_none(), "A's slots are all taken");
        assert!(slots.take("B").is_some(), "B is not affected by A");
        drop(a1);
        assert!(
            slots.take("A").is_some(),
            "a finished search frees its slot"
        );
    }
}
