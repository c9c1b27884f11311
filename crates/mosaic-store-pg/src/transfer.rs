//! PostgreSQL side of tenant moves (see `mosaic_store::transfer`): the
//! move-state and journal tables, one trigger function on every tenant
//! table, and [`TenantTransfer`] for a PostgreSQL shard.
//!
//! Every trigger takes a transaction-scoped advisory lock on the tenant,
//! shared; a state change takes it exclusively, so it waits for the
//! tenant's in-flight writes and the writes after it see the new state. The
//! state row is read `FOR SHARE`: a `SERIALIZABLE` write (idempotency keys)
//! whose snapshot predates a state change fails with a serialization error
//! and runs again, seeing it.

use crate::migrate::{migrate, Migration};
use crate::param::{refs, Param};
use crate::pool::{read_tx, shard_tx, with_client, PgPool, Step};
use crate::records::{encode, put_pivots_replacing, row_of, select_records, PgRecordStore};
use async_trait::async_trait;
use deadpool_postgres::Transaction;
use mosaic_store::record_store::RecordRow;
use mosaic_store::transfer::*;
use mosaic_types::{FlexSlot, MosaicResult};

/// Component name of the move tables in a records database.
pub const TRANSFER: &str = "transfer";

const ADVISORY_SEED: i64 = 7;

fn transfer_v1() -> String {
    let mut sql = format!(
        r#"
CREATE TABLE tenant_moves (
  tenant_id TEXT COLLATE "C" PRIMARY KEY,
  state TEXT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE tenant_journal (
  seq BIGSERIAL PRIMARY KEY,
  tenant_id TEXT COLLATE "C" NOT NULL,
  tbl TEXT NOT NULL,
  key TEXT NOT NULL
);
CREATE INDEX tenant_journal_by_tenant ON tenant_journal (tenant_id, seq);
CREATE FUNCTION mosaic_tenant_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  t TEXT;
  st TEXT;
  r JSONB;
  k JSONB := '[]'::jsonb;
  i INT;
BEGIN
  IF TG_OP = 'DELETE' THEN t := OLD.tenant_id; ELSE t := NEW.tenant_id; END IF;
  PERFORM pg_advisory_xact_lock_shared(hashtextextended(t, {ADVISORY_SEED}));
  SELECT state INTO st FROM tenant_moves WHERE tenant_id = t FOR SHARE;
  IF st = '{FROZEN}' OR (st = '{PURGING}' AND TG_OP <> 'DELETE') THEN
    RAISE EXCEPTION '{FROZEN_MARK}' USING ERRCODE = '{FROZEN_SQLSTATE}';
  END IF;
  IF st = '{JOURNAL}' THEN
    IF TG_OP = 'DELETE' THEN r := to_jsonb(OLD); ELSE r := to_jsonb(NEW); END IF;
    FOR i IN 0 .. TG_NARGS - 1 LOOP
      k := k || jsonb_build_array(r ->> TG_ARGV[i]);
    END LOOP;
    INSERT INTO tenant_journal (tenant_id, tbl, key) VALUES (t, TG_TABLE_NAME, k::text);
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END
$fn$;
"#
    );
    let mut tables: Vec<(&str, Vec<&str>)> = vec![(RECORDS, vec!["id"])];
    tables.extend(TABLES.iter().map(|t| (t.name, t.key_columns().collect())));
    for (t, keys) in tables {
        let args: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
        sql.push_str(&format!(
            "CREATE TRIGGER {t}_move BEFORE INSERT OR UPDATE OR DELETE ON {t} \
             FOR EACH ROW EXECUTE FUNCTION mosaic_tenant_change({});\n",
            args.join(", ")
        ));
    }
    sql
}

/// Migrations of the move tables (after the records and idempotency
/// components, whose tables the triggers are on).
pub fn transfer_migrations() -> &'static [Migration] {
    static M: std::sync::OnceLock<Vec<Migration>> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        vec![Migration {
            version: 1,
            name: "tenant moves: states, journal, triggers",
            sql: Box::leak(transfer_v1().into_boxed_str()),
        }]
    })
}

/// Migrates the move tables, after the tables their triggers are on.
pub async fn migrate_transfer(pool: &PgPool) -> MosaicResult<i64> {
    crate::migrate::migrate_records(pool).await?;
    crate::migrate::migrate_idempotency(pool).await?;
    migrate(pool, TRANSFER, transfer_migrations()).await
}

fn key_tuple(spec: &TableSpec) -> String {
    spec.key_columns().collect::<Vec<_>>().join(", ")
}

fn placeholders(from: usize, n: usize) -> String {
    let p: Vec<String> = (from..from + n).map(|i| format!("${i}")).collect();
    p.join(", ")
}

fn select_sql(spec: &TableSpec) -> String {
    let cols: Vec<&str> = spec.columns.iter().map(|(c, _)| *c).collect();
    format!(
        "SELECT {} FROM {} WHERE tenant_id = $1",
        cols.join(", "),
        spec.name
    )
}

fn cells_of(r: &tokio_postgres::Row, spec: &TableSpec) -> Result<Vec<Cell>, tokio_postgres::Error> {
    let mut out = Vec::with_capacity(spec.columns.len());
    for (i, (_, kind)) in spec.columns.iter().enumerate() {
        let c = match kind {
            Kind::Text => r.try_get::<_, Option<String>>(i)?.map(Cell::Text),
            Kind::I16 => r.try_get::<_, Option<i16>>(i)?.map(|n| Cell::Int(n.into())),
            Kind::I32 => r.try_get::<_, Option<i32>>(i)?.map(|n| Cell::Int(n.into())),
            Kind::I64 => r.try_get::<_, Option<i64>>(i)?.map(Cell::Int),
            Kind::Time => r
                .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(i)?
                .map(Cell::Time),
            Kind::Bool => r.try_get::<_, Option<bool>>(i)?.map(Cell::Bool),
            Kind::Bytes => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Cell::Bytes),
        };
        out.push(c.unwrap_or(Cell::Null));
    }
    Ok(out)
}

fn param_of(c: &Cell, kind: Kind) -> MosaicResult<Param> {
    let int = |c: &Cell| match c {
        Cell::Int(n) => Ok(Some(*n)),
        Cell::Null => Ok(None),
        other => Err(mosaic_types::MosaicError::internal(format!(
            "{other:?} is not an integer"
        ))),
    };
    let narrow = |n: Option<i64>| -> MosaicResult<Option<i32>> {
        n.map(i32::try_from)
            .transpose()
            .map_err(|_| mosaic_types::MosaicError::internal("integer out of range"))
    };
    Ok(match (kind, c) {
        (Kind::I16, c) => Param::Small(
            narrow(int(c)?)?
                .map(i16::try_from)
                .transpose()
                .map_err(|_| mosaic_types::MosaicError::internal("integer out of range"))?,
        ),
        (Kind::I32, c) => Param::Int4(narrow(int(c)?)?),
        (Kind::I64, c) => Param::Int(int(c)?),
        (Kind::Text, Cell::Text(s)) => Param::Text(Some(s.clone())),
        (Kind::Text, Cell::Null) => Param::Text(None),
        (Kind::Time, Cell::Time(t)) => Param::Time(Some(*t)),
        (Kind::Time, Cell::Null) => Param::Time(None),
        (Kind::Bool, Cell::Bool(b)) => Param::Bool(Some(*b)),
        (Kind::Bool, Cell::Int(n)) => Param::Bool(Some(*n != 0)),
        (Kind::Bool, Cell::Null) => Param::Bool(None),
        (Kind::Bytes, Cell::Bytes(b)) => Param::Bytes(Some(b.clone())),
        (Kind::Bytes, Cell::Null) => Param::Bytes(None),
        (k, c) => {
            return Err(mosaic_types::MosaicError::internal(format!(
                "{c:?} does not fit a {k:?} column"
            )))
        }
    })
}

fn all_slots() -> Vec<FlexSlot> {
    FlexSlot::all().collect()
}

/// Deletes records with their pivots (three statements for the batch).
async fn remove_records(tx: &Transaction<'_>, tenant: &str, ids: &[String]) -> Step<()> {
    for sql in [
        "DELETE FROM record_index WHERE tenant_id = $1 AND record_id = ANY($2)",
        "DELETE FROM record_unique WHERE tenant_id = $1 AND record_id = ANY($2)",
        "DELETE FROM object_records WHERE tenant_id = $1 AND id = ANY($2)",
    ] {
        let st = tx.prepare_cached(sql).await?;
        tx.execute(&st, &[&tenant, &ids]).await?;
    }
    Ok(())
}

/// The insert of one record (every non-null slot).
fn record_insert(tenant: &str, r: &RecordRow) -> MosaicResult<(String, Vec<Param>)> {
    let mut cols = String::from(
        "id, object_id, name, owner_id, created_by, created_at, modified_by, modified_at, is_deleted",
    );
    let mut args: Vec<Param> = vec![
        Param::text(tenant),
        Param::text(r.id.clone()),
        Param::text(r.object_id.clone()),
        Param::Text(r.name.clone()),
        Param::text(r.owner_id.clone()),
        Param::text(r.created_by.clone()),
        Param::Time(Some(r.created_at)),
        Param::text(r.modified_by.clone()),
        Param::Time(Some(r.modified_at)),
        Param::Bool(Some(r.is_deleted)),
    ];
    for (slot, v) in r.values.iter().filter(|(_, v)| !v.is_null()) {
        cols.push_str(", ");
        cols.push_str(slot.column());
        args.push(encode(*slot, v)?);
    }
    let sql = format!(
        "INSERT INTO object_records (tenant_id, {cols}) VALUES ({})",
        placeholders(1, args.len())
    );
    Ok((sql, args))
}

/// Replaces a batch of records: one delete per table for the batch, then
/// the inserts and pivot rows pipelined on the connection (they are sent
/// in order without waiting for each answer).
async fn import_records(
    tx: &Transaction<'_>,
    tenant: &str,
    rows: &[&RecordRow],
    absent: &[String],
    specs: &IndexSpecs,
) -> Step<()> {
    let mut ids: Vec<String> = absent.to_vec();
    ids.extend(rows.iter().map(|r| r.id.clone()));
    remove_records(tx, tenant, &ids).await?;
    let mut inserts = Vec::with_capacity(rows.len());
    for r in rows {
        let (sql, args) = record_insert(tenant, r)?;
        let st = tx.prepare_cached(&sql).await?;
        inserts.push((st, args));
    }
    futures_util::future::try_join_all(
        inserts
            .iter()
            .map(|(st, args)| async move { tx.execute(st, &refs(args)).await }),
    )
    .await?;
    let mut pivots = Vec::new();
    for r in rows.iter().filter(|r| !r.is_deleted) {
        for spec in specs.get(&r.object_id).into_iter().flatten() {
            if let Some(v) = r.value(spec.slot) {
                pivots.push(put_pivots_replacing(
                    tx,
                    tenant,
                    &r.object_id,
                    &r.id,
                    spec,
                    v,
                ));
            }
        }
    }
    futures_util::future::try_join_all(pivots).await?;
    Ok(())
}

fn key_params(tenant: &str, key: &[String], spec: &TableSpec) -> MosaicResult<Vec<Param>> {
    if key.len() != spec.keys {
        return Err(mosaic_types::MosaicError::internal(format!(
            "a key of {} has {} parts, not {}",
            spec.name,
            key.len(),
            spec.keys
        )));
    }
    let mut p = vec![Param::text(tenant)];
    p.extend(key.iter().map(|k| Param::text(k.clone())));
    Ok(p)
}

#[async_trait]
impl TenantTransfer for PgRecordStore {
    async fn move_state(&self, tenant_id: &str) -> MosaicResult<Option<String>> {
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached("SELECT state FROM tenant_moves WHERE tenant_id = $1")
                .await?;
            Ok(match c.query_opt(&st, &[&tenant_id]).await? {
                Some(r) => Some(r.try_get(0)?),
                None => None,
            })
        })
    }

    async fn set_move_state(&self, tenant_id: &str, state: Option<&str>) -> MosaicResult<()> {
        shard_tx!(self.pool(), |tx| {
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))",
                &[&tenant_id, &ADVISORY_SEED],
            )
            .await?;
            let before = tx
                .query_opt(
                    "SELECT state FROM tenant_moves WHERE tenant_id = $1",
                    &[&tenant_id],
                )
                .await?;
            if before.is_none() || state.is_none() {
                tx.execute(
                    "DELETE FROM tenant_journal WHERE tenant_id = $1",
                    &[&tenant_id],
                )
                .await?;
            }
            match state {
                None => {
                    tx.execute(
                        "DELETE FROM tenant_moves WHERE tenant_id = $1",
                        &[&tenant_id],
                    )
                    .await?
                }
                Some(s) => {
                    tx.execute(
                        "INSERT INTO tenant_moves (tenant_id, state, updated_at) VALUES ($1, $2, now())
                         ON CONFLICT (tenant_id) DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
                        &[&tenant_id, &s],
                    )
                    .await?
                }
            };
            Ok(())
        })
    }

    async fn export(
        &self,
        tenant_id: &str,
        table_name: &str,
        after: Option<Vec<String>>,
        limit: usize,
    ) -> MosaicResult<Vec<Item>> {
        let limit = limit as i64;
        if table_name == RECORDS {
            let slots = all_slots();
            let mut sql = format!("{} WHERE tenant_id = $1", select_records(&slots));
            let mut args = vec![Param::text(tenant_id)];
            if let Some(k) = &after {
                sql.push_str(" AND id > $2");
                args.push(Param::text(k.first().cloned().unwrap_or_default()));
            }
            sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
            return with_client!(self.pool(), |c| {
                let st = c.prepare_cached(&sql).await?;
                let rows = c.query(&st, &refs(&args)).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(Item::Record(row_of(r, &slots)?));
                }
                Ok(out)
            });
        }
        let spec = table(table_name)?;
        let mut sql = select_sql(spec);
        let mut args = vec![Param::text(tenant_id)];
        if let Some(k) = &after {
            args = key_params(tenant_id, k, spec)?;
            sql.push_str(&format!(
                " AND ({}) > ({})",
                key_tuple(spec),
                placeholders(2, spec.keys)
            ));
        }
        sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", key_tuple(spec)));
        with_client!(self.pool(), |c| {
            let st = c.prepare_cached(&sql).await?;
            let rows = c.query(&st, &refs(&args)).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(Item::Row(cells_of(r, spec)?));
            }
            Ok(out)
        })
    }

    async fn fetch(
        &self,
        tenant_id: &str,
        table_name: &str,
        keys: &[Vec<String>],
    ) -> MosaicResult<Vec<Item>> {
        if table_name == RECORDS {
            let slots = all_slots();
            let sql = format!(
                "{} WHERE tenant_id = $1 AND id = ANY($2)",
                select_records(&slots)
            );
            let ids: Vec<String> = keys.iter().filter_map(|k| k.first().cloned()).collect();
            return with_client!(self.pool(), |c| {
                let st = c.prepare_cached(&sql).await?;
                let rows = c.query(&st, &[&tenant_id, &ids]).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(Item::Record(row_of(r, &slots)?));
                }
                Ok(out)
            });
        }
        let spec = table(table_name)?;
        let sql = format!(
            "{} AND ({}) = ({})",
            select_sql(spec),
            key_tuple(spec),
            placeholders(2, spec.keys)
        );
        read_tx!(self.pool(), |tx| {
            let st = tx.prepare_cached(&sql).await?;
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                let args = key_params(tenant_id, k, spec)?;
                if let Some(r) = tx.query_opt(&st, &refs(&args)).await? {
                    out.push(Item::Row(cells_of(&r, spec)?));
                }
            }
            Ok(out)
        })
    }

    async fn import(
        &self,
        tenant_id: &str,
        table_name: &str,
        rows: Vec<Item>,
        absent: Vec<Vec<String>>,
        specs: &IndexSpecs,
    ) -> MosaicResult<()> {
        if table_name == RECORDS {
            let records: Vec<&RecordRow> = rows
                .iter()
                .filter_map(|i| match i {
                    Item::Record(r) => Some(r),
                    Item::Row(_) => None,
                })
                .collect();
            let gone: Vec<String> = absent.iter().filter_map(|k| k.first().cloned()).collect();
            shard_tx!(self.pool(), |tx| {
                import_records(tx, tenant_id, &records, &gone, specs).await
            })?;
            self.planner_stats().wrote(records.len() as u64);
            return Ok(());
        }
        let spec = table(table_name)?;
        let cols: Vec<&str> = spec.columns.iter().map(|(c, _)| *c).collect();
        let del = format!(
            "DELETE FROM {} WHERE tenant_id = $1 AND ({}) = ({})",
            spec.name,
            key_tuple(spec),
            placeholders(2, spec.keys)
        );
        // A row with the same key, or (shares) the same share id, is replaced.
        let ins = format!(
            "INSERT INTO {} (tenant_id, {}) VALUES ({})",
            spec.name,
            cols.join(", "),
            placeholders(1, cols.len() + 1)
        );
        let del_row = if spec.name == "record_shares" {
            "DELETE FROM record_shares WHERE tenant_id = $1 AND id = $2"
        } else {
            ""
        };
        let mut inserts: Vec<(Vec<Param>, Vec<Param>, Option<Vec<Param>>)> = Vec::new();
        for item in &rows {
            if let Item::Row(cells) = item {
                let mut p = vec![Param::text(tenant_id)];
                for (c, (_, kind)) in cells.iter().zip(spec.columns) {
                    p.push(param_of(c, *kind)?);
                }
                let key = key_params(tenant_id, &item.key(Some(spec)), spec)?;
                let share =
                    (spec.name == "record_shares").then(|| vec![p[0].clone(), p[3].clone()]);
                inserts.push((key, p, share));
            }
        }
        let removals: Vec<Vec<Param>> = absent
            .iter()
            .map(|k| key_params(tenant_id, k, spec))
            .collect::<MosaicResult<_>>()?;
        shard_tx!(self.pool(), |tx| {
            let d = tx.prepare_cached(&del).await?;
            for k in &removals {
                tx.execute(&d, &refs(k)).await?;
            }
            let i = tx.prepare_cached(&ins).await?;
            for (key, p, share) in &inserts {
                tx.execute(&d, &refs(key)).await?;
                if let Some(s) = share {
                    tx.execute(del_row, &refs(s)).await?;
                }
                tx.execute(&i, &refs(p)).await?;
            }
            Ok(())
        })
    }

    async fn journal(
        &self,
        tenant_id: &str,
        after_seq: i64,
        limit: usize,
    ) -> MosaicResult<Vec<JournalEntry>> {
        let limit = limit as i64;
        let rows: Vec<(i64, String, String)> = with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(
                    "SELECT seq, tbl, key FROM tenant_journal WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .await?;
            let rows = c.query(&st, &[&tenant_id, &after_seq, &limit]).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
            }
            Ok(out)
        })?;
        rows.into_iter()
            .map(|(seq, table, key)| {
                Ok(JournalEntry {
                    seq,
                    table,
                    key: parse_key(&key)?,
                })
            })
            .collect()
    }

    async fn forget(&self, tenant_id: &str, seqs: &[i64]) -> MosaicResult<()> {
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached("DELETE FROM tenant_journal WHERE tenant_id = $1 AND seq = ANY($2)")
                .await?;
            c.execute(&st, &[&tenant_id, &seqs]).await?;
            Ok(())
        })
    }

    async fn purge(&self, tenant_id: &str, limit: usize) -> MosaicResult<u64> {
        let limit = limit as i64;
        shard_tx!(self.pool(), |tx| {
            let mut n: u64 = 0;
            let ids: Vec<String> = tx
                .query(
                    "SELECT id FROM object_records WHERE tenant_id = $1 LIMIT $2",
                    &[&tenant_id, &limit],
                )
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            for p in ["record_index", "record_unique"] {
                n += tx
                    .execute(
                        &format!("DELETE FROM {p} WHERE tenant_id = $1 AND record_id = ANY($2)"),
                        &[&tenant_id, &ids],
                    )
                    .await?;
            }
            n += tx
                .execute(
                    "DELETE FROM object_records WHERE tenant_id = $1 AND id = ANY($2)",
                    &[&tenant_id, &ids],
                )
                .await?;
            for spec in TABLES {
                let k = key_tuple(spec);
                n += tx
                    .execute(
                        &format!(
                            "DELETE FROM {t} WHERE tenant_id = $1 AND ({k}) IN (SELECT {k} FROM {t} WHERE tenant_id = $1 LIMIT $2)",
                            t = spec.name
                        ),
                        &[&tenant_id, &limit],
                    )
                    .await?;
            }
            if ids.is_empty() {
                n += tx
                    .execute(
                        "DELETE FROM pivot_specs WHERE tenant_id = $1",
                        &[&tenant_id],
                    )
                    .await?;
                for p in ["record_index", "record_unique"] {
                    n += tx
                        .execute(
                            &format!("DELETE FROM {p} WHERE tenant_id = $1"),
                            &[&tenant_id],
                        )
                        .await?;
                }
            }
            if n == 0 {
                tx.execute(
                    "DELETE FROM tenant_journal WHERE tenant_id = $1",
                    &[&tenant_id],
                )
                .await?;
            }
            Ok(n)
        })
    }

    async fn row_count(&self, tenant_id: &str) -> MosaicResult<u64> {
        with_client!(self.pool(), |c| {
            let mut n = 0u64;
            for name in table_names() {
                let r = c
                    .query_one(
                        &format!("SELECT count(*) FROM {name} WHERE tenant_id = $1"),
                        &[&tenant_id],
                    )
                    .await?;
                n += r.try_get::<_, i64>(0)? as u64;
            }
            Ok(n)
        })
    }
}
