//! SQLite implementation of [`ShareStore`]: `record_shares` in the shard.

use crate::record_store::RecordRow;
use crate::sharing::*;
use crate::sqlite::map_sql;
use crate::sqlite_meta::parse_ts;
use crate::sqlite_records::SqliteRecordStore;
use async_trait::async_trait;
use mosaic_types::value::format_datetime;
use mosaic_types::{FlexSlot, MosaicError, MosaicResult};
use rusqlite::{params, Connection, OptionalExtension};

const SHARE_COLS: &str =
    "id, object_id, record_id, principal, access, rule_id, created_by, created_at";

fn share_of(r: &rusqlite::Row) -> rusqlite::Result<ShareRow> {
    let principal: String = r.get(3)?;
    let rule: Option<String> = r.get(5)?;
    Ok(ShareRow {
        id: r.get(0)?,
        object_id: r.get(1)?,
        record_id: r.get(2)?,
        principal: Principal::from_key(&principal).unwrap_or(Principal::User(principal)),
        access: access_from_code(r.get(4)?),
        cause: rule.map_or(ShareCause::Manual, ShareCause::Rule),
        created_by: r.get(6)?,
        created_at: parse_ts(&r.get::<_, String>(7)?)?,
    })
}

pub(crate) fn insert_share(conn: &Connection, tenant: &str, s: &ShareRow) -> MosaicResult<()> {
    let rule = match &s.cause {
        ShareCause::Manual => None,
        ShareCause::Rule(r) => Some(r.as_str()),
    };
    conn.prepare_cached(
        "INSERT INTO record_shares (tenant_id, record_id, principal, id, object_id, access, rule_id, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut st| {
        st.execute(params![
            tenant,
            s.record_id,
            s.principal.key(),
            s.id,
            s.object_id,
            access_code(s.access),
            rule,
            s.created_by,
            format_datetime(&s.created_at),
        ])
    })
    .map_err(map_sql)?;
    Ok(())
}

/// Replaces the rule-made shares of one record (a save's effect).
pub(crate) fn set_rule_shares(
    conn: &Connection,
    tenant: &str,
    record_id: &str,
    rows: &[ShareRow],
) -> MosaicResult<()> {
    conn.prepare_cached(
        "DELETE FROM record_shares WHERE tenant_id = ?1 AND record_id = ?2 AND rule_id IS NOT NULL",
    )
    .and_then(|mut st| st.execute(params![tenant, record_id]))
    .map_err(map_sql)?;
    for r in rows {
        insert_share(conn, tenant, r)?;
    }
    Ok(())
}

#[async_trait]
impl ShareStore for SqliteRecordStore {
    async fn shares_of(&self, tenant_id: &str, record_id: &str) -> MosaicResult<Vec<ShareRow>> {
        let (t, rid) = (tenant_id.to_string(), record_id.to_string());
        self.db()
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(&format!(
                        "SELECT {SHARE_COLS} FROM record_shares WHERE tenant_id = ?1 AND record_id = ?2 ORDER BY created_at, id"
                    ))
                    .map_err(map_sql)?;
                let rows = st.query_map(params![t, rid], share_of).map_err(map_sql)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(map_sql)
            })
            .await
    }

    async fn grant_share(&self, tenant_id: &str, row: ShareRow) -> MosaicResult<String> {
        let t = tenant_id.to_string();
        self.db()
            .write(move |conn| {
                let existing: Option<String> = conn
                    .prepare_cached(
                        "SELECT id FROM record_shares WHERE tenant_id = ?1 AND record_id = ?2 AND principal = ?3 AND rule_id IS NULL",
                    )
                    .and_then(|mut st| {
                        st.query_row(params![t, row.record_id, row.principal.key()], |r| r.get(0))
                            .optional()
                    })
                    .map_err(map_sql)?;
                match existing {
                    Some(id) => {
                        conn.prepare_cached(
                            "UPDATE record_shares SET access = ?3 WHERE tenant_id = ?1 AND id = ?2",
                        )
                        .and_then(|mut st| st.execute(params![t, id, access_code(row.access)]))
                        .map_err(map_sql)?;
                        Ok(id)
                    }
                    None => {
                        insert_share(conn, &t, &row)?;
                        Ok(row.id.clone())
                    }
                }
            })
            .await
    }

    async fn revoke_share(
        &self,
        tenant_id: &str,
        record_id: &str,
        share_id: &str,
    ) -> MosaicResult<bool> {
        let (t, rid, sid) = (
            tenant_id.to_string(),
            record_id.to_string(),
            share_id.to_string(),
        );
        self.db()
            .write(move |conn| {
                let n = conn
                    .prepare_cached(
                        "DELETE FROM record_shares WHERE tenant_id = ?1 AND id = ?2 AND record_id = ?3 AND rule_id IS NULL",
                    )
                    .and_then(|mut st| st.execute(params![t, sid, rid]))
                    .map_err(map_sql)?;
                Ok(n > 0)
            })
            .await
    }

    async fn replace_rule_shares(
        &self,
        tenant_id: &str,
        rule_ids: &[String],
        record_ids: &[String],
        rows: Vec<ShareRow>,
    ) -> MosaicResult<()> {
        let t = tenant_id.to_string();
        let rules = rule_ids.to_vec();
        let records = record_ids.to_vec();
        self.db()
            .write(move |conn| {
                let mut del = conn
                    .prepare_cached(
                        "DELETE FROM record_shares WHERE tenant_id = ?1 AND rule_id = ?2 AND record_id = ?3",
                    )
                    .map_err(map_sql)?;
                for rule in &rules {
                    for rec in &records {
                        del.execute(params![t, rule, rec]).map_err(map_sql)?;
                    }
                }
                for r in &rows {
                    if !matches!(&r.cause, ShareCause::Rule(id) if rules.contains(id)) {
                        return Err(MosaicError::internal(
                            "a recalculated share must come from a recalculated rule",
                        ));
                    }
                    insert_share(conn, &t, r)?;
                }
                Ok(())
            })
            .await
    }

    async fn drop_rule_shares(&self, tenant_id: &str, rule_id: &str) -> MosaicResult<()> {
        let (t, rule) = (tenant_id.to_string(), rule_id.to_string());
        self.db()
            .write(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM record_shares WHERE tenant_id = ?1 AND rule_id = ?2",
                )
                .and_then(|mut st| st.execute(params![t, rule]))
                .map_err(map_sql)?;
                Ok(())
            })
            .await
    }

    async fn scan(
        &self,
        tenant_id: &str,
        object_id: &str,
        after: Option<&str>,
        limit: usize,
        slots: &[FlexSlot],
    ) -> MosaicResult<Vec<RecordRow>> {
        let (t, o) = (tenant_id.to_string(), object_id.to_string());
        let after = after.unwrap_or("").to_string();
        let slots = slots.to_vec();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db()
            .read(move |conn| {
                let mut sql = format!("SELECT {}", crate::sqlite_records::SYSTEM_COLS);
                for s in &slots {
                    sql.push_str(", ");
                    sql.push_str(s.column());
                }
                sql.push_str(
                    " FROM object_records WHERE tenant_id = ?1 AND object_id = ?2 AND id > ?3 AND is_deleted = 0 ORDER BY id LIMIT ?4",
                );
                let mut st = conn.prepare_cached(&sql).map_err(map_sql)?;
                let rows = st
                    .query_map(params![t, o, after, limit], |r| {
                        crate::sqlite_records::row_of(r, &slots)
                    })
                    .map_err(map_sql)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(map_sql)
            })
            .await
    }
}
