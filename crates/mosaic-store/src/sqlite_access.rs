//! SQLite implementation of [`AccessStore`], on the metadata database.

use crate::access_store::*;
use crate::meta_store::UserRow;
use crate::sqlite::{map_sql, SqliteDb};
use crate::sqlite_meta::{parse_ts, user_row, USER_COLS};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::value::format_datetime;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;
use std::sync::Arc;

/// Tables of the access store (idempotent; appended to the metadata schema).
pub const ACCESS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS roles (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  name_lc TEXT NOT NULL,
  label TEXT NOT NULL,
  parent_id TEXT,
  path TEXT NOT NULL,
  depth INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name_lc)
);
CREATE INDEX IF NOT EXISTS roles_path ON roles(tenant_id, path);
CREATE TABLE IF NOT EXISTS groups (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  name_lc TEXT NOT NULL,
  label TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name_lc)
);
CREATE TABLE IF NOT EXISTS group_members (
  tenant_id TEXT NOT NULL,
  group_id TEXT NOT NULL,
  member_kind TEXT NOT NULL,
  member_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, group_id, member_kind, member_id)
);
CREATE INDEX IF NOT EXISTS group_members_member ON group_members(tenant_id, member_id);
CREATE TABLE IF NOT EXISTS permission_sets (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  name_lc TEXT NOT NULL,
  label TEXT NOT NULL,
  description TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  customize_application INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name_lc)
);
CREATE TABLE IF NOT EXISTS object_permissions (
  tenant_id TEXT NOT NULL,
  permission_set_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  can_create INTEGER NOT NULL,
  can_read INTEGER NOT NULL,
  can_edit INTEGER NOT NULL,
  can_delete INTEGER NOT NULL,
  view_all INTEGER NOT NULL,
  modify_all INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, permission_set_id, object_id)
);
CREATE TABLE IF NOT EXISTS field_permissions (
  tenant_id TEXT NOT NULL,
  permission_set_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  field_id TEXT NOT NULL,
  can_read INTEGER NOT NULL,
  can_edit INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, permission_set_id, field_id)
);
CREATE TABLE IF NOT EXISTS permission_set_assignments (
  tenant_id TEXT NOT NULL,
  permission_set_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, permission_set_id, user_id)
);
CREATE INDEX IF NOT EXISTS psa_user ON permission_set_assignments(tenant_id, user_id);
CREATE TABLE IF NOT EXISTS connected_apps (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  name_lc TEXT NOT NULL,
  client_id TEXT NOT NULL UNIQUE,
  secret_hash TEXT NOT NULL,
  run_as_user_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name_lc)
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
  token_hash TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  issued_at TEXT NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0,
  expires_at TEXT,
  family_id TEXT
);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens(tenant_id, user_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens(tenant_id, family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_expiry ON refresh_tokens(expires_at);
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions(expires_at);
CREATE TABLE IF NOT EXISTS login_failures (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  failures INTEGER NOT NULL,
  window_start TEXT NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS login_failures_window ON login_failures(window_start);
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id TEXT NOT NULL,
  actor_id TEXT NOT NULL,
  action TEXT NOT NULL,
  target_type TEXT NOT NULL,
  target_id TEXT NOT NULL,
  detail TEXT NOT NULL,
  at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_tenant ON audit_log(tenant_id, seq);
"#;

/// Brings a metadata database created before access control up to date:
/// adds `users.role_id`. Runs on its own connection before the engine opens.
pub(crate) fn migrate(path: &Path) -> MosaicResult<()> {
    if !path.exists() {
        return Ok(());
    }
    let conn = Connection::open(path).map_err(map_sql)?;
    conn.busy_timeout(crate::sqlite::BUSY_TIMEOUT)
        .map_err(map_sql)?;
    let mut st = conn
        .prepare("SELECT name FROM pragma_table_info('users')")
        .map_err(map_sql)?;
    let cols: Vec<String> = st
        .query_map([], |r| r.get(0))
        .map_err(map_sql)?
        .collect::<rusqlite::Result<_>>()
        .map_err(map_sql)?;
    if !cols.is_empty() && !cols.iter().any(|c| c == "role_id") {
        conn.execute_batch("ALTER TABLE users ADD COLUMN role_id TEXT")
            .map_err(map_sql)?;
    }
    if !cols.is_empty() && !cols.iter().any(|c| c == "must_change_password") {
        conn.execute_batch(
            "ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0",
        )
        .map_err(map_sql)?;
    }
    // Refresh tokens before expiry and rotation: their expiry counts from
    // their issue (`expires_at` NULL), each is a family of its own.
    let rt: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('refresh_tokens')")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(map_sql)?;
    if !rt.is_empty() && !rt.iter().any(|c| c == "expires_at") {
        conn.execute_batch(
            "ALTER TABLE refresh_tokens ADD COLUMN expires_at TEXT;
             ALTER TABLE refresh_tokens ADD COLUMN family_id TEXT;
             UPDATE refresh_tokens SET family_id = token_hash,
               expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', issued_at, '+30 days');",
        )
        .map_err(map_sql)?;
    }
    add_system_permissions(&conn)?;
    crate::settings::add_fiscal_year_start(&conn)
}

/// Permission sets before system permissions gain
/// `customize_application` (off).
fn add_system_permissions(conn: &Connection) -> MosaicResult<()> {
    let cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('permission_sets')")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(map_sql)?;
    if !cols.is_empty() && !cols.iter().any(|c| c == "customize_application") {
        conn.execute_batch(
            "ALTER TABLE permission_sets ADD COLUMN customize_application INTEGER NOT NULL DEFAULT 0",
        )
        .map_err(map_sql)?;
    }
    Ok(())
}

pub struct SqliteAccessStore {
    db: Arc<SqliteDb>,
}

impl SqliteAccessStore {
    /// The access store on the metadata database `db` (its schema includes
    /// [`ACCESS_SCHEMA`]).
    pub fn new(db: Arc<SqliteDb>) -> SqliteAccessStore {
        SqliteAccessStore { db }
    }
}

fn insert_audit(conn: &Connection, a: &AuditEntry) -> MosaicResult<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (tenant_id, actor_id, action, target_type, target_id, detail, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut st| {
        st.execute(params![
            a.tenant_id,
            a.actor_id,
            a.action,
            a.target_type,
            a.target_id,
            a.detail,
            format_datetime(&a.at)
        ])
    })
    .map_err(map_sql)?;
    Ok(())
}

fn duplicate(field: &str, what: &str, name: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::DUPLICATE_VALUE,
        field,
        format!("a {what} named '{name}' already exists"),
    )
}

fn exists(conn: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> MosaicResult<bool> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.query_row(p, |_| Ok(())).optional())
        .map(|o| o.is_some())
        .map_err(map_sql)
}

// ---------- roles ----------

const ROLE_COLS: &str = "id, tenant_id, name, label, parent_id, path, depth, created_at";

fn role_row(r: &Row) -> rusqlite::Result<RoleRow> {
    Ok(RoleRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        label: r.get(3)?,
        parent_id: r.get(4)?,
        path: r.get(5)?,
        depth: r.get(6)?,
        created_at: parse_ts(&r.get::<_, String>(7)?)?,
    })
}

fn get_role(conn: &Connection, tenant: &str, id: &str) -> MosaicResult<Option<RoleRow>> {
    conn.prepare_cached(&format!(
        "SELECT {ROLE_COLS} FROM roles WHERE tenant_id = ?1 AND id = ?2"
    ))
    .and_then(|mut st| st.query_row([tenant, id], role_row).optional())
    .map_err(map_sql)
}

fn parent_not_found(id: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::INVALID_INPUT,
        "parent_role_id",
        format!(
            "parent_role_id: no role with id '{}'",
            id.chars().take(80).collect::<String>()
        ),
    )
}

fn too_deep() -> MosaicError {
    MosaicError::field(
        ErrorCode::LIMIT_EXCEEDED,
        "parent_role_id",
        format!("a role hierarchy is at most {MAX_ROLE_DEPTH} levels deep"),
    )
}

// ---------- groups ----------

fn group_members(conn: &Connection, tenant: &str, id: &str) -> MosaicResult<Vec<GroupMember>> {
    let mut st = conn
        .prepare_cached(
            "SELECT member_kind, member_id FROM group_members WHERE tenant_id = ?1 AND group_id = ?2 ORDER BY position",
        )
        .map_err(map_sql)?;
    let rows = st
        .query_map([tenant, id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(map_sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(map_sql)?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, id)| MemberKind::parse(&k).map(|kind| GroupMember { kind, id }))
        .collect())
}

fn put_members(
    conn: &Connection,
    tenant: &str,
    group: &str,
    members: &[GroupMember],
) -> MosaicResult<()> {
    conn.execute(
        "DELETE FROM group_members WHERE tenant_id = ?1 AND group_id = ?2",
        [tenant, group],
    )
    .map_err(map_sql)?;
    for (i, m) in members.iter().enumerate() {
        let found = match m.kind {
            MemberKind::User => exists(
                conn,
                "SELECT 1 FROM users WHERE tenant_id = ?1 AND id = ?2",
                &[&tenant, &m.id],
            )?,
            MemberKind::Role | MemberKind::RoleAndSubordinates => exists(
                conn,
                "SELECT 1 FROM roles WHERE tenant_id = ?1 AND id = ?2",
                &[&tenant, &m.id],
            )?,
        };
        if !found {
            let key = match m.kind {
                MemberKind::User => "user_id",
                MemberKind::Role => "role_id",
                MemberKind::RoleAndSubordinates => "role_and_subordinates_id",
            };
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                format!("members[{i}].{key}"),
                format!(
                    "members[{i}].{key}: no {} with id '{}'",
                    if m.kind == MemberKind::User {
                        "user"
                    } else {
                        "role"
                    },
                    m.id.chars().take(80).collect::<String>()
                ),
            ));
        }
        conn.execute(
            "INSERT OR IGNORE INTO group_members (tenant_id, group_id, member_kind, member_id, position) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![tenant, group, m.kind.as_str(), m.id, i as i64],
        )
        .map_err(map_sql)?;
    }
    Ok(())
}

fn get_group(conn: &Connection, tenant: &str, id: &str) -> MosaicResult<Option<GroupRow>> {
    let row = conn
        .prepare_cached(
            "SELECT id, tenant_id, name, label, created_at FROM groups WHERE tenant_id = ?1 AND id = ?2",
        )
        .and_then(|mut st| st.query_row([tenant, id], group_head).optional())
        .map_err(map_sql)?;
    match row {
        None => Ok(None),
        Some(mut g) => {
            g.members = group_members(conn, tenant, id)?;
            Ok(Some(g))
        }
    }
}

fn group_head(r: &Row) -> rusqlite::Result<GroupRow> {
    Ok(GroupRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        label: r.get(3)?,
        members: Vec::new(),
        created_at: parse_ts(&r.get::<_, String>(4)?)?,
    })
}

// ---------- permission sets ----------

fn put_object_perms(
    conn: &Connection,
    tenant: &str,
    set: &str,
    rows: &[ObjectPermissionRow],
) -> MosaicResult<()> {
    conn.execute(
        "DELETE FROM object_permissions WHERE tenant_id = ?1 AND permission_set_id = ?2",
        [tenant, set],
    )
    .map_err(map_sql)?;
    for p in rows {
        let f = p.flags;
        conn.execute(
            "INSERT OR REPLACE INTO object_permissions (tenant_id, permission_set_id, object_id, can_create, can_read, can_edit, can_delete, view_all, modify_all) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![tenant, set, p.object_id, f.create, f.read, f.edit, f.delete, f.view_all, f.modify_all],
        )
        .map_err(map_sql)?;
    }
    Ok(())
}

fn put_field_perms(
    conn: &Connection,
    tenant: &str,
    set: &str,
    rows: &[FieldPermissionRow],
) -> MosaicResult<()> {
    conn.execute(
        "DELETE FROM field_permissions WHERE tenant_id = ?1 AND permission_set_id = ?2",
        [tenant, set],
    )
    .map_err(map_sql)?;
    for p in rows {
        conn.execute(
            "INSERT OR REPLACE INTO field_permissions (tenant_id, permission_set_id, object_id, field_id, can_read, can_edit) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![tenant, set, p.object_id, p.field_id, p.read, p.edit],
        )
        .map_err(map_sql)?;
    }
    Ok(())
}

fn object_perm_row(r: &Row) -> rusqlite::Result<ObjectPermissionRow> {
    Ok(ObjectPermissionRow {
        object_id: r.get(0)?,
        flags: ObjectFlags {
            create: r.get(1)?,
            read: r.get(2)?,
            edit: r.get(3)?,
            delete: r.get(4)?,
            view_all: r.get(5)?,
            modify_all: r.get(6)?,
        },
    })
}

fn field_perm_row(r: &Row) -> rusqlite::Result<FieldPermissionRow> {
    Ok(FieldPermissionRow {
        object_id: r.get(0)?,
        field_id: r.get(1)?,
        read: r.get(2)?,
        edit: r.get(3)?,
    })
}

fn strings(conn: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> MosaicResult<Vec<String>> {
    let mut st = conn.prepare_cached(sql).map_err(map_sql)?;
    let rows = st
        .query_map(p, |r| r.get(0))
        .map_err(map_sql)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(map_sql)?;
    Ok(rows)
}

fn insert_refresh_token(conn: &Connection, r: &RefreshTokenRow) -> MosaicResult<()> {
    conn.prepare_cached(
        "INSERT INTO refresh_tokens (token_hash, tenant_id, user_id, issued_at, revoked, expires_at, family_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut st| {
        st.execute(params![
            r.token_hash,
            r.tenant_id,
            r.user_id,
            format_datetime(&r.issued_at),
            r.revoked,
            format_datetime(&r.expires_at),
            r.family_id
        ])
    })
    .map_err(map_sql)?;
    Ok(())
}

fn get_refresh_token(conn: &Connection, hash: &str) -> MosaicResult<Option<RefreshTokenRow>> {
    conn.prepare_cached(
        "SELECT token_hash, tenant_id, user_id, issued_at, revoked, expires_at, COALESCE(family_id, token_hash) FROM refresh_tokens WHERE token_hash = ?1",
    )
    .and_then(|mut st| {
        st.query_row([hash], |r| {
            let issued_at = parse_ts(&r.get::<_, String>(3)?)?;
            let expires_at = match r.get::<_, Option<String>>(5)? {
                Some(e) => parse_ts(&e)?,
                None => issued_at,
            };
            Ok(RefreshTokenRow {
                token_hash: r.get(0)?,
                tenant_id: r.get(1)?,
                user_id: r.get(2)?,
                issued_at,
                revoked: r.get(4)?,
                expires_at,
                family_id: r.get(6)?,
            })
        })
        .optional()
    })
    .map_err(map_sql)
}

fn get_permission_set(
    conn: &Connection,
    tenant: &str,
    id: &str,
) -> MosaicResult<Option<PermissionSetRow>> {
    let head = conn
        .prepare_cached(
            "SELECT id, tenant_id, name, label, description, created_at, updated_at, customize_application FROM permission_sets WHERE tenant_id = ?1 AND id = ?2",
        )
        .and_then(|mut st| {
            st.query_row([tenant, id], |r| {
                Ok(PermissionSetRow {
                    id: r.get(0)?,
                    tenant_id: r.get(1)?,
                    name: r.get(2)?,
                    label: r.get(3)?,
                    description: r.get(4)?,
                    object_permissions: Vec::new(),
                    field_permissions: Vec::new(),
                    customize_application: r.get(7)?,
                    assignees: Vec::new(),
                    created_at: parse_ts(&r.get::<_, String>(5)?)?,
                    updated_at: parse_ts(&r.get::<_, String>(6)?)?,
                })
            })
            .optional()
        })
        .map_err(map_sql)?;
    let Some(mut set) = head else {
        return Ok(None);
    };
    let mut st = conn
        .prepare_cached(
            "SELECT object_id, can_create, can_read, can_edit, can_delete, view_all, modify_all FROM object_permissions WHERE tenant_id = ?1 AND permission_set_id = ?2 ORDER BY object_id",
        )
        .map_err(map_sql)?;
    set.object_permissions = st
        .query_map([tenant, id], object_perm_row)
        .map_err(map_sql)?
        .collect::<rusqlite::Result<_>>()
        .map_err(map_sql)?;
    let mut st = conn
        .prepare_cached(
            "SELECT object_id, field_id, can_read, can_edit FROM field_permissions WHERE tenant_id = ?1 AND permission_set_id = ?2 ORDER BY object_id, field_id",
        )
        .map_err(map_sql)?;
    set.field_permissions = st
        .query_map([tenant, id], field_perm_row)
        .map_err(map_sql)?
        .collect::<rusqlite::Result<_>>()
        .map_err(map_sql)?;
    set.assignees = strings(
        conn,
        "SELECT user_id FROM permission_set_assignments WHERE tenant_id = ?1 AND permission_set_id = ?2 ORDER BY created_at, user_id",
        &[&tenant, &id],
    )?;
    Ok(Some(set))
}

// ---------- connected apps ----------

const APP_COLS: &str = "id, tenant_id, name, client_id, secret_hash, run_as_user_id, created_at";

fn app_row(r: &Row) -> rusqlite::Result<ConnectedAppRow> {
    Ok(ConnectedAppRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        client_id: r.get(3)?,
        secret_hash: r.get(4)?,
        run_as_user_id: r.get(5)?,
        created_at: parse_ts(&r.get::<_, String>(6)?)?,
    })
}

fn get_user(conn: &Connection, tenant: &str, id: &str) -> MosaicResult<Option<UserRow>> {
    conn.prepare_cached(&format!(
        "SELECT {USER_COLS} FROM users WHERE tenant_id = ?1 AND id = ?2"
    ))
    .and_then(|mut st| st.query_row([tenant, id], user_row).optional())
    .map_err(map_sql)
}

fn role_exists(conn: &Connection, tenant: &str, id: &str) -> MosaicResult<bool> {
    exists(
        conn,
        "SELECT 1 FROM roles WHERE tenant_id = ?1 AND id = ?2",
        &[&tenant, &id],
    )
}

fn no_role(field: &str, id: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::INVALID_INPUT,
        field,
        format!(
            "{field}: no role with id '{}'",
            id.chars().take(80).collect::<String>()
        ),
    )
}

#[async_trait]
impl AccessStore for SqliteAccessStore {
    async fn append_audit(&self, entry: AuditEntry) -> MosaicResult<()> {
        self.db.write(move |conn| insert_audit(conn, &entry)).await
    }

    async fn create_user(&self, u: UserRow, audit: AuditEntry) -> MosaicResult<()> {
        self.db
            .write(move |conn| {
                if exists(
                    conn,
                    "SELECT 1 FROM users WHERE username_lc = ?1",
                    &[&u.username.to_lowercase()],
                )? {
                    return Err(MosaicError::field(
                        ErrorCode::DUPLICATE_VALUE,
                        "username",
                        format!(
                            "the username '{}' is already taken (usernames are unique across all tenants)",
                            u.username
                        ),
                    ));
                }
                if let Some(r) = &u.role_id {
                    if !role_exists(conn, &u.tenant_id, r)? {
                        return Err(no_role("role_id", r));
                    }
                }
                conn.execute(
                    "INSERT INTO users (id, tenant_id, username, username_lc, email, password_hash, is_active, profile, created_at, role_id, must_change_password) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![u.id, u.tenant_id, u.username, u.username.to_lowercase(), u.email, u.password_hash, u.is_active, u.profile, format_datetime(&u.created_at), u.role_id, u.must_change_password],
                )
                .map_err(map_sql)?;
                insert_audit(conn, &audit)
            })
            .await
    }

    async fn update_user(
        &self,
        tenant_id: &str,
        id: &str,
        patch: UserPatch,
        audit: AuditEntry,
    ) -> MosaicResult<Option<UserUpdated>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                if get_user(conn, &t, &id)?.is_none() {
                    return Ok(None);
                }
                if let Some(Some(r)) = &patch.role_id {
                    if !role_exists(conn, &t, r)? {
                        return Err(no_role("role_id", r));
                    }
                }
                if let Some(e) = &patch.email {
                    conn.execute(
                        "UPDATE users SET email = ?1 WHERE tenant_id = ?2 AND id = ?3",
                        params![e, t, id],
                    )
                    .map_err(map_sql)?;
                }
                if let Some(p) = &patch.profile {
                    conn.execute(
                        "UPDATE users SET profile = ?1 WHERE tenant_id = ?2 AND id = ?3",
                        params![p, t, id],
                    )
                    .map_err(map_sql)?;
                }
                if let Some(r) = &patch.role_id {
                    conn.execute(
                        "UPDATE users SET role_id = ?1 WHERE tenant_id = ?2 AND id = ?3",
                        params![r, t, id],
                    )
                    .map_err(map_sql)?;
                }
                let mut revoked_sessions = Vec::new();
                if let Some(a) = patch.is_active {
                    conn.execute(
                        "UPDATE users SET is_active = ?1 WHERE tenant_id = ?2 AND id = ?3",
                        params![a, t, id],
                    )
                    .map_err(map_sql)?;
                    if !a {
                        revoked_sessions = strings(
                            conn,
                            "SELECT token_hash FROM sessions WHERE tenant_id = ?1 AND user_id = ?2 AND revoked = 0",
                            &[&t, &id],
                        )?;
                        conn.execute(
                            "UPDATE sessions SET revoked = 1 WHERE tenant_id = ?1 AND user_id = ?2",
                            [&t, &id],
                        )
                        .map_err(map_sql)?;
                        conn.execute(
                            "UPDATE refresh_tokens SET revoked = 1 WHERE tenant_id = ?1 AND user_id = ?2",
                            [&t, &id],
                        )
                        .map_err(map_sql)?;
                    }
                }
                insert_audit(conn, &audit)?;
                let user = get_user(conn, &t, &id)?
                    .ok_or_else(|| MosaicError::internal("updated user vanished"))?;
                Ok(Some(UserUpdated {
                    user,
                    revoked_sessions,
                }))
            })
            .await
    }

    async fn list_users(&self, tenant_id: &str) -> MosaicResult<Vec<UserRow>> {
        let t = tenant_id.to_string();
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(&format!(
                        "SELECT {USER_COLS} FROM users WHERE tenant_id = ?1 ORDER BY username_lc"
                    ))
                    .map_err(map_sql)?;
                let rows = st
                    .query_map([t], user_row)
                    .map_err(map_sql)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_sql)?;
                Ok(rows)
            })
            .await
    }

    async fn create_role(&self, mut role: RoleRow, audit: AuditEntry) -> MosaicResult<RoleRow> {
        self.db
            .write(move |conn| {
                if exists(
                    conn,
                    "SELECT 1 FROM roles WHERE tenant_id = ?1 AND name_lc = ?2",
                    &[&role.tenant_id, &role.name.to_lowercase()],
                )? {
                    return Err(duplicate("name", "role", &role.name));
                }
                let (path, depth) = match &role.parent_id {
                    None => (format!("/{}/", role.id), 1),
                    Some(p) => {
                        let parent = get_role(conn, &role.tenant_id, p)?
                            .ok_or_else(|| parent_not_found(p))?;
                        (format!("{}{}/", parent.path, role.id), parent.depth + 1)
                    }
                };
                if depth > MAX_ROLE_DEPTH {
                    return Err(too_deep());
                }
                role.path = path;
                role.depth = depth;
                conn.execute(
                    "INSERT INTO roles (tenant_id, id, name, name_lc, label, parent_id, path, depth, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![role.tenant_id, role.id, role.name, role.name.to_lowercase(), role.label, role.parent_id, role.path, role.depth, format_datetime(&role.created_at)],
                )
                .map_err(map_sql)?;
                insert_audit(conn, &audit)?;
                Ok(role)
            })
            .await
    }

    async fn update_role(
        &self,
        tenant_id: &str,
        id: &str,
        label: Option<String>,
        parent_id: Option<Option<String>>,
        audit: AuditEntry,
    ) -> MosaicResult<Option<RoleRow>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                let Some(role) = get_role(conn, &t, &id)? else {
                    return Ok(None);
                };
                if let Some(l) = &label {
                    conn.execute(
                        "UPDATE roles SET label = ?1 WHERE tenant_id = ?2 AND id = ?3",
                        params![l, t, id],
                    )
                    .map_err(map_sql)?;
                }
                if let Some(new_parent) = parent_id {
                    let (prefix, depth) = match &new_parent {
                        None => ("/".to_string(), 1),
                        Some(p) => {
                            let parent =
                                get_role(conn, &t, p)?.ok_or_else(|| parent_not_found(p))?;
                            if parent.path.starts_with(&role.path) {
                                return Err(MosaicError::field(
                                    ErrorCode::INVALID_INPUT,
                                    "parent_role_id",
                                    "a role cannot be moved under itself or one of its subordinates",
                                ));
                            }
                            (parent.path.clone(), parent.depth + 1)
                        }
                    };
                    let new_path = format!("{prefix}{}/", role.id);
                    let delta = depth - role.depth;
                    let deepest: i64 = conn
                        .query_row(
                            "SELECT MAX(depth) FROM roles WHERE tenant_id = ?1 AND substr(path, 1, length(?2)) = ?2",
                            params![t, role.path],
                            |r| r.get(0),
                        )
                        .map_err(map_sql)?;
                    if deepest + delta > MAX_ROLE_DEPTH {
                        return Err(too_deep());
                    }
                    conn.execute(
                        "UPDATE roles SET path = ?1 || substr(path, length(?2) + 1), depth = depth + ?3 WHERE tenant_id = ?4 AND substr(path, 1, length(?2)) = ?2",
                        params![new_path, role.path, delta, t],
                    )
                    .map_err(map_sql)?;
                    conn.execute(
                        "UPDATE roles SET parent_id = ?1 WHERE tenant_id = ?2 AND id = ?3",
                        params![new_parent, t, id],
                    )
                    .map_err(map_sql)?;
                }
                insert_audit(conn, &audit)?;
                get_role(conn, &t, &id)
            })
            .await
    }

    async fn role(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<RoleRow>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db.read(move |conn| get_role(conn, &t, &id)).await
    }

    async fn list_roles(&self, tenant_id: &str) -> MosaicResult<Vec<RoleRow>> {
        let t = tenant_id.to_string();
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(&format!(
                        "SELECT {ROLE_COLS} FROM roles WHERE tenant_id = ?1 ORDER BY path"
                    ))
                    .map_err(map_sql)?;
                let rows = st
                    .query_map([t], role_row)
                    .map_err(map_sql)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_sql)?;
                Ok(rows)
            })
            .await
    }

    async fn delete_role(
        &self,
        tenant_id: &str,
        id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                if get_role(conn, &t, &id)?.is_none() {
                    return Ok(false);
                }
                let in_use = |what: &str| {
                    MosaicError::new(
                        ErrorCode::DELETE_FAILED,
                        format!("the role is in use: {what}; reassign them first"),
                    )
                };
                if exists(
                    conn,
                    "SELECT 1 FROM roles WHERE tenant_id = ?1 AND parent_id = ?2",
                    &[&t, &id],
                )? {
                    return Err(in_use("it has sub-roles"));
                }
                if exists(
                    conn,
                    "SELECT 1 FROM users WHERE tenant_id = ?1 AND role_id = ?2",
                    &[&t, &id],
                )? {
                    return Err(in_use("users hold it"));
                }
                if exists(
                    conn,
                    "SELECT 1 FROM group_members WHERE tenant_id = ?1 AND member_id = ?2 AND member_kind <> 'user'",
                    &[&t, &id],
                )? {
                    return Err(in_use("groups include it"));
                }
                conn.execute(
                    "DELETE FROM roles WHERE tenant_id = ?1 AND id = ?2",
                    [&t, &id],
                )
                .map_err(map_sql)?;
                insert_audit(conn, &audit)?;
                Ok(true)
            })
            .await
    }

    async fn create_group(&self, g: GroupRow, audit: AuditEntry) -> MosaicResult<()> {
        self.db
            .write(move |conn| {
                if exists(
                    conn,
                    "SELECT 1 FROM groups WHERE tenant_id = ?1 AND name_lc = ?2",
                    &[&g.tenant_id, &g.name.to_lowercase()],
                )? {
                    return Err(duplicate("name", "group", &g.name));
                }
                conn.execute(
                    "INSERT INTO groups (tenant_id, id, name, name_lc, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![g.tenant_id, g.id, g.name, g.name.to_lowercase(), g.label, format_datetime(&g.created_at)],
                )
                .map_err(map_sql)?;
                put_members(conn, &g.tenant_id, &g.id, &g.members)?;
                insert_audit(conn, &audit)
            })
            .await
    }

    async fn update_group(
        &self,
        tenant_id: &str,
        id: &str,
        label: Option<String>,
        members: Option<Vec<GroupMember>>,
        audit: AuditEntry,
    ) -> MosaicResult<Option<GroupRow>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                if get_group(conn, &t, &id)?.is_none() {
                    return Ok(None);
                }
                if let Some(l) = &label {
                    conn.execute(
                        "UPDATE groups SET label = ?1 WHERE tenant_id = ?2 AND id = ?3",
                        params![l, t, id],
                    )
                    .map_err(map_sql)?;
                }
                if let Some(m) = &members {
                    put_members(conn, &t, &id, m)?;
                }
                insert_audit(conn, &audit)?;
                get_group(conn, &t, &id)
            })
            .await
    }

    async fn group(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<GroupRow>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db.read(move |conn| get_group(conn, &t, &id)).await
    }

    async fn list_groups(&self, tenant_id: &str) -> MosaicResult<Vec<GroupRow>> {
        let t = tenant_id.to_string();
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT id, tenant_id, name, label, created_at FROM groups WHERE tenant_id = ?1 ORDER BY name_lc",
                    )
                    .map_err(map_sql)?;
                let mut rows = st
                    .query_map([&t], group_head)
                    .map_err(map_sql)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_sql)?;
                for g in rows.iter_mut() {
                    g.members = group_members(conn, &t, &g.id)?;
                }
                Ok(rows)
            })
            .await
    }

    async fn delete_group(
        &self,
        tenant_id: &str,
        id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                let n = conn
                    .execute(
                        "DELETE FROM groups WHERE tenant_id = ?1 AND id = ?2",
                        [&t, &id],
                    )
                    .map_err(map_sql)?;
                if n == 0 {
                    return Ok(false);
                }
                conn.execute(
                    "DELETE FROM group_members WHERE tenant_id = ?1 AND group_id = ?2",
                    [&t, &id],
                )
                .map_err(map_sql)?;
                insert_audit(conn, &audit)?;
                Ok(true)
            })
            .await
    }

    async fn create_permission_set(
        &self,
        s: PermissionSetRow,
        audit: AuditEntry,
    ) -> MosaicResult<()> {
        self.db
            .write(move |conn| {
                if exists(
                    conn,
                    "SELECT 1 FROM permission_sets WHERE tenant_id = ?1 AND name_lc = ?2",
                    &[&s.tenant_id, &s.name.to_lowercase()],
                )? {
                    return Err(duplicate("name", "permission set", &s.name));
                }
                conn.execute(
                    "INSERT INTO permission_sets (tenant_id, id, name, name_lc, label, description, created_at, updated_at, customize_application) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![s.tenant_id, s.id, s.name, s.name.to_lowercase(), s.label, s.description, format_datetime(&s.created_at), format_datetime(&s.updated_at), s.customize_application],
                )
                .map_err(map_sql)?;
                put_object_perms(conn, &s.tenant_id, &s.id, &s.object_permissions)?;
                put_field_perms(conn, &s.tenant_id, &s.id, &s.field_permissions)?;
                insert_audit(conn, &audit)
            })
            .await
    }

    async fn update_permission_set(
        &self,
        tenant_id: &str,
        id: &str,
        patch: PermissionSetPatch,
        audit: AuditEntry,
    ) -> MosaicResult<Option<PermissionSetRow>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                if !exists(
                    conn,
                    "SELECT 1 FROM permission_sets WHERE tenant_id = ?1 AND id = ?2",
                    &[&t, &id],
                )? {
                    return Ok(None);
                }
                if let Some(l) = &patch.label {
                    conn.execute(
                        "UPDATE permission_sets SET label = ?1 WHERE tenant_id = ?2 AND id = ?3",
                        params![l, t, id],
                    )
                    .map_err(map_sql)?;
                }
                if let Some(d) = &patch.description {
                    conn.execute(
                        "UPDATE permission_sets SET description = ?1 WHERE tenant_id = ?2 AND id = ?3",
                        params![d, t, id],
                    )
                    .map_err(map_sql)?;
                }
                if let Some(c) = patch.customize_application {
                    conn.execute(
                        "UPDATE permission_sets SET customize_application = ?1 WHERE tenant_id = ?2 AND id = ?3",
                        params![c, t, id],
                    )
                    .map_err(map_sql)?;
                }
                if let Some(o) = &patch.object_permissions {
                    put_object_perms(conn, &t, &id, o)?;
                }
                if let Some(f) = &patch.field_permissions {
                    put_field_perms(conn, &t, &id, f)?;
                }
                conn.execute(
                    "UPDATE permission_sets SET updated_at = ?1 WHERE tenant_id = ?2 AND id = ?3",
                    params![format_datetime(&audit.at), t, id],
                )
                .map_err(map_sql)?;
                insert_audit(conn, &audit)?;
                get_permission_set(conn, &t, &id)
            })
            .await
    }

    async fn permission_set(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> MosaicResult<Option<PermissionSetRow>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .read(move |conn| get_permission_set(conn, &t, &id))
            .await
    }

    async fn list_permission_sets(&self, tenant_id: &str) -> MosaicResult<Vec<PermissionSetRow>> {
        let t = tenant_id.to_string();
        self.db
            .read(move |conn| {
                let ids = strings(
                    conn,
                    "SELECT id FROM permission_sets WHERE tenant_id = ?1 ORDER BY name_lc",
                    &[&t],
                )?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(s) = get_permission_set(conn, &t, &id)? {
                        out.push(s);
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn delete_permission_set(
        &self,
        tenant_id: &str,
        id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                let n = conn
                    .execute(
                        "DELETE FROM permission_sets WHERE tenant_id = ?1 AND id = ?2",
                        [&t, &id],
                    )
                    .map_err(map_sql)?;
                if n == 0 {
                    return Ok(false);
                }
                for sql in [
                    "DELETE FROM object_permissions WHERE tenant_id = ?1 AND permission_set_id = ?2",
                    "DELETE FROM field_permissions WHERE tenant_id = ?1 AND permission_set_id = ?2",
                    "DELETE FROM permission_set_assignments WHERE tenant_id = ?1 AND permission_set_id = ?2",
                ] {
                    conn.execute(sql, [&t, &id]).map_err(map_sql)?;
                }
                insert_audit(conn, &audit)?;
                Ok(true)
            })
            .await
    }

    async fn assign(
        &self,
        tenant_id: &str,
        set_id: &str,
        user_id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool> {
        let (t, s, u) = (
            tenant_id.to_string(),
            set_id.to_string(),
            user_id.to_string(),
        );
        self.db
            .write(move |conn| {
                if !exists(
                    conn,
                    "SELECT 1 FROM permission_sets WHERE tenant_id = ?1 AND id = ?2",
                    &[&t, &s],
                )? {
                    return Ok(false);
                }
                if get_user(conn, &t, &u)?.is_none() {
                    return Err(MosaicError::field(
                        ErrorCode::INVALID_INPUT,
                        "user_id",
                        format!(
                            "user_id: no user with id '{}'",
                            u.chars().take(80).collect::<String>()
                        ),
                    ));
                }
                conn.execute(
                    "INSERT OR IGNORE INTO permission_set_assignments (tenant_id, permission_set_id, user_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![t, s, u, format_datetime(&audit.at)],
                )
                .map_err(map_sql)?;
                insert_audit(conn, &audit)?;
                Ok(true)
            })
            .await
    }

    async fn unassign(
        &self,
        tenant_id: &str,
        set_id: &str,
        user_id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool> {
        let (t, s, u) = (
            tenant_id.to_string(),
            set_id.to_string(),
            user_id.to_string(),
        );
        self.db
            .write(move |conn| {
                let n = conn
                    .execute(
                        "DELETE FROM permission_set_assignments WHERE tenant_id = ?1 AND permission_set_id = ?2 AND user_id = ?3",
                        [&t, &s, &u],
                    )
                    .map_err(map_sql)?;
                if n == 0 {
                    return Ok(false);
                }
                insert_audit(conn, &audit)?;
                Ok(true)
            })
            .await
    }

    async fn user_grants(&self, tenant_id: &str, user_id: &str) -> MosaicResult<UserGrants> {
        let (t, u) = (tenant_id.to_string(), user_id.to_string());
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT o.object_id, o.can_create, o.can_read, o.can_edit, o.can_delete, o.view_all, o.modify_all
                         FROM object_permissions o JOIN permission_set_assignments a
                           ON a.tenant_id = o.tenant_id AND a.permission_set_id = o.permission_set_id
                         WHERE o.tenant_id = ?1 AND a.user_id = ?2",
                    )
                    .map_err(map_sql)?;
                let objects = st
                    .query_map([&t, &u], object_perm_row)
                    .map_err(map_sql)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_sql)?;
                let mut st = conn
                    .prepare_cached(
                        "SELECT f.object_id, f.field_id, f.can_read, f.can_edit
                         FROM field_permissions f JOIN permission_set_assignments a
                           ON a.tenant_id = f.tenant_id AND a.permission_set_id = f.permission_set_id
                         WHERE f.tenant_id = ?1 AND a.user_id = ?2",
                    )
                    .map_err(map_sql)?;
                let fields = st
                    .query_map([&t, &u], field_perm_row)
                    .map_err(map_sql)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_sql)?;
                let customize_application = exists(
                    conn,
                    "SELECT 1 FROM permission_sets p JOIN permission_set_assignments a
                       ON a.tenant_id = p.tenant_id AND a.permission_set_id = p.id
                     WHERE p.tenant_id = ?1 AND a.user_id = ?2 AND p.customize_application = 1 LIMIT 1",
                    &[&t, &u],
                )?;
                Ok(UserGrants {
                    objects,
                    fields,
                    customize_application,
                })
            })
            .await
    }

    async fn create_connected_app(
        &self,
        a: ConnectedAppRow,
        audit: AuditEntry,
    ) -> MosaicResult<()> {
        self.db
            .write(move |conn| {
                if exists(
                    conn,
                    "SELECT 1 FROM connected_apps WHERE tenant_id = ?1 AND name_lc = ?2",
                    &[&a.tenant_id, &a.name.to_lowercase()],
                )? {
                    return Err(duplicate("name", "connected app", &a.name));
                }
                if get_user(conn, &a.tenant_id, &a.run_as_user_id)?.is_none() {
                    return Err(MosaicError::field(
                        ErrorCode::INVALID_INPUT,
                        "run_as_user_id",
                        format!(
                            "run_as_user_id: no user with id '{}'",
                            a.run_as_user_id.chars().take(80).collect::<String>()
                        ),
                    ));
                }
                conn.execute(
                    "INSERT INTO connected_apps (tenant_id, id, name, name_lc, client_id, secret_hash, run_as_user_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![a.tenant_id, a.id, a.name, a.name.to_lowercase(), a.client_id, a.secret_hash, a.run_as_user_id, format_datetime(&a.created_at)],
                )
                .map_err(map_sql)?;
                insert_audit(conn, &audit)
            })
            .await
    }

    async fn connected_app(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> MosaicResult<Option<ConnectedAppRow>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {APP_COLS} FROM connected_apps WHERE tenant_id = ?1 AND id = ?2"
                ))
                .and_then(|mut st| st.query_row([t, id], app_row).optional())
                .map_err(map_sql)
            })
            .await
    }

    async fn connected_app_by_client_id(
        &self,
        client_id: &str,
    ) -> MosaicResult<Option<ConnectedAppRow>> {
        let c = client_id.to_string();
        self.db
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {APP_COLS} FROM connected_apps WHERE client_id = ?1"
                ))
                .and_then(|mut st| st.query_row([c], app_row).optional())
                .map_err(map_sql)
            })
            .await
    }

    async fn list_connected_apps(&self, tenant_id: &str) -> MosaicResult<Vec<ConnectedAppRow>> {
        let t = tenant_id.to_string();
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(&format!(
                        "SELECT {APP_COLS} FROM connected_apps WHERE tenant_id = ?1 ORDER BY name_lc"
                    ))
                    .map_err(map_sql)?;
                let rows = st
                    .query_map([t], app_row)
                    .map_err(map_sql)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_sql)?;
                Ok(rows)
            })
            .await
    }

    async fn delete_connected_app(
        &self,
        tenant_id: &str,
        id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                let n = conn
                    .execute(
                        "DELETE FROM connected_apps WHERE tenant_id = ?1 AND id = ?2",
                        [&t, &id],
                    )
                    .map_err(map_sql)?;
                if n == 0 {
                    return Ok(false);
                }
                insert_audit(conn, &audit)?;
                Ok(true)
            })
            .await
    }

    async fn create_refresh_token(&self, r: RefreshTokenRow) -> MosaicResult<()> {
        self.db
            .write(move |conn| insert_refresh_token(conn, &r))
            .await
    }

    async fn refresh_token(&self, token_hash: &str) -> MosaicResult<Option<RefreshTokenRow>> {
        let h = token_hash.to_string();
        self.db.read(move |conn| get_refresh_token(conn, &h)).await
    }

    async fn revoke_refresh_token(&self, token_hash: &str) -> MosaicResult<bool> {
        let h = token_hash.to_string();
        self.db
            .write(move |conn| {
                let n = conn
                    .execute(
                        "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = ?1",
                        [h],
                    )
                    .map_err(map_sql)?;
                Ok(n > 0)
            })
            .await
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        next: RefreshTokenRow,
        now: DateTime<Utc>,
    ) -> MosaicResult<RefreshRotation> {
        let h = old_hash.to_string();
        // The single writer thread runs this whole closure in one
        // transaction: two uses of one token are ordered, the second sees
        // the first's revocation.
        self.db
            .write(move |conn| {
                let Some(old) = get_refresh_token(conn, &h)? else {
                    return Ok(RefreshRotation::Invalid);
                };
                if old.revoked {
                    conn.execute(
                        "UPDATE refresh_tokens SET revoked = 1 \
                         WHERE tenant_id = ?1 AND family_id = ?2",
                        [&old.tenant_id, &old.family_id],
                    )
                    .map_err(map_sql)?;
                    return Ok(RefreshRotation::Reused {
                        tenant_id: old.tenant_id,
                        user_id: old.user_id,
                    });
                }
                if old.expires_at <= now {
                    return Ok(RefreshRotation::Invalid);
                }
                conn.execute(
                    "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = ?1",
                    [&h],
                )
                .map_err(map_sql)?;
                insert_refresh_token(
                    conn,
                    &RefreshTokenRow {
                        tenant_id: old.tenant_id.clone(),
                        user_id: old.user_id.clone(),
                        family_id: old.family_id,
                        revoked: false,
                        ..next
                    },
                )?;
                Ok(RefreshRotation::Rotated {
                    tenant_id: old.tenant_id,
                    user_id: old.user_id,
                })
            })
            .await
    }

    async fn set_password(
        &self,
        tenant_id: &str,
        user_id: &str,
        password_hash: &str,
        must_change: bool,
        keep_session: Option<&str>,
        audit: AuditEntry,
    ) -> MosaicResult<Option<Vec<String>>> {
        let (t, id, hash) = (
            tenant_id.to_string(),
            user_id.to_string(),
            password_hash.to_string(),
        );
        let keep = keep_session.unwrap_or("").to_string();
        self.db
            .write(move |conn| {
                let n = conn
                    .execute(
                        "UPDATE users SET password_hash = ?1, must_change_password = ?2 WHERE tenant_id = ?3 AND id = ?4",
                        params![hash, must_change, t, id],
                    )
                    .map_err(map_sql)?;
                if n == 0 {
                    return Ok(None);
                }
                let revoked = strings(
                    conn,
                    "SELECT token_hash FROM sessions WHERE tenant_id = ?1 AND user_id = ?2 AND revoked = 0 AND token_hash <> ?3",
                    &[&t, &id, &keep],
                )?;
                conn.execute(
                    "UPDATE sessions SET revoked = 1 WHERE tenant_id = ?1 AND user_id = ?2 AND token_hash <> ?3",
                    [&t, &id, &keep],
                )
                .map_err(map_sql)?;
                conn.execute(
                    "UPDATE refresh_tokens SET revoked = 1 WHERE tenant_id = ?1 AND user_id = ?2",
                    [&t, &id],
                )
                .map_err(map_sql)?;
                insert_audit(conn, &audit)?;
                Ok(Some(revoked))
            })
            .await
    }

    async fn purge_expired(
        &self,
        now: DateTime<Utc>,
        login_window_secs: i64,
    ) -> MosaicResult<PurgedCredentials> {
        self.db
            .write(move |conn| {
                let at = format_datetime(&now);
                let window = format_datetime(&(now - chrono::Duration::seconds(login_window_secs)));
                let sessions = conn
                    .execute("DELETE FROM sessions WHERE expires_at < ?1", [&at])
                    .map_err(map_sql)?;
                let refresh_tokens = conn
                    .execute("DELETE FROM refresh_tokens WHERE expires_at < ?1", [&at])
                    .map_err(map_sql)?;
                let login_failures = conn
                    .execute(
                        "DELETE FROM login_failures WHERE window_start < ?1",
                        [&window],
                    )
                    .map_err(map_sql)?;
                Ok(PurgedCredentials {
                    sessions: sessions as u64,
                    refresh_tokens: refresh_tokens as u64,
                    login_failures: login_failures as u64,
                })
            })
            .await
    }

    async fn record_login_failure(
        &self,
        scope: &str,
        key: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> MosaicResult<(i64, DateTime<Utc>)> {
        let (s, k) = (scope.to_string(), key.to_string());
        self.db
            .write(move |conn| {
                let cur: Option<(i64, String)> = conn
                    .query_row(
                        "SELECT failures, window_start FROM login_failures WHERE scope = ?1 AND key = ?2",
                        [&s, &k],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(map_sql)?;
                let (n, start) = match cur {
                    Some((n, start)) => {
                        let start = parse_ts(&start).map_err(map_sql)?;
                        if (now - start).num_seconds() < window_secs {
                            (n + 1, start)
                        } else {
                            (1, now)
                        }
                    }
                    None => (1, now),
                };
                if n == 1 {
                    // A new window: forget windows that are over (keeps the
                    // table as small as the recent failures).
                    let expired = now - chrono::Duration::seconds(window_secs);
                    conn.execute(
                        "DELETE FROM login_failures WHERE window_start < ?1",
                        [format_datetime(&expired)],
                    )
                    .map_err(map_sql)?;
                }
                conn.execute(
                    "INSERT OR REPLACE INTO login_failures (scope, key, failures, window_start) VALUES (?1, ?2, ?3, ?4)",
                    params![s, k, n, format_datetime(&start)],
                )
                .map_err(map_sql)?;
                Ok((n, start))
            })
            .await
    }

    async fn login_failures(
        &self,
        scope: &str,
        key: &str,
    ) -> MosaicResult<Option<(i64, DateTime<Utc>)>> {
        let (s, k) = (scope.to_string(), key.to_string());
        self.db
            .read(move |conn| {
                let cur: Option<(i64, String)> = conn
                    .query_row(
                        "SELECT failures, window_start FROM login_failures WHERE scope = ?1 AND key = ?2",
                        [&s, &k],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(map_sql)?;
                match cur {
                    None => Ok(None),
                    Some((n, start)) => Ok(Some((n, parse_ts(&start).map_err(map_sql)?))),
                }
            })
            .await
    }

    async fn clear_login_failures(&self, scope: &str, key: &str) -> MosaicResult<()> {
        let (s, k) = (scope.to_string(), key.to_string());
        self.db
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM login_failures WHERE scope = ?1 AND key = ?2",
                    [&s, &k],
                )
                .map_err(map_sql)?;
                Ok(())
            })
            .await
    }

    async fn forgive_login_failure(&self, scope: &str, key: &str) -> MosaicResult<()> {
        let (s, k) = (scope.to_string(), key.to_string());
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE login_failures SET failures = failures - 1 WHERE scope = ?1 AND key = ?2 AND failures > 0",
                    [&s, &k],
                )
                .map_err(map_sql)?;
                Ok(())
            })
            .await
    }

    async fn audit(&self, tenant_id: &str, f: AuditFilter) -> MosaicResult<Vec<AuditRow>> {
        let t = tenant_id.to_string();
        self.db
            .read(move |conn| {
                // Optional filters as `(?n IS NULL OR col = ?n)`: one statement shape.
                let mut st = conn
                    .prepare_cached(
                        "SELECT seq, tenant_id, actor_id, action, target_type, target_id, detail, at FROM audit_log
                         WHERE tenant_id = ?1
                           AND (?2 IS NULL OR action = ?2)
                           AND (?3 IS NULL OR target_id = ?3 OR target_type = ?3)
                           AND (?4 IS NULL OR at >= ?4)
                           AND (?5 IS NULL OR seq < ?5)
                         ORDER BY seq DESC LIMIT ?6",
                    )
                    .map_err(map_sql)?;
                let rows = st
                    .query_map(
                        params![
                            t,
                            f.action,
                            f.target_id,
                            f.since.as_ref().map(format_datetime),
                            f.before_seq,
                            f.limit as i64
                        ],
                        |r| {
                            Ok(AuditRow {
                                seq: r.get(0)?,
                                entry: AuditEntry {
                                    tenant_id: r.get(1)?,
                                    actor_id: r.get(2)?,
                                    action: r.get(3)?,
                                    target_type: r.get(4)?,
                                    target_id: r.get(5)?,
                                    detail: r.get(6)?,
                                    at: parse_ts(&r.get::<_, String>(7)?)?,
                                },
                            })
                        },
                    )
                    .map_err(map_sql)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_sql)?;
                Ok(rows)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use crate::meta_store::MetaStore;

    /// A metadata database created before access control opens, and its
    /// users gain `role_id`.
    #[tokio::test]
    async fn an_older_metadata_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.sqlite");
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE users (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, username TEXT NOT NULL,
                   username_lc TEXT NOT NULL UNIQUE, email TEXT, password_hash TEXT NOT NULL,
                   is_active INTEGER NOT NULL, profile TEXT NOT NULL, created_at TEXT NOT NULL);
                 INSERT INTO users VALUES ('u1', 't1', 'Ann', 'ann', NULL, 'x', 1, 'standard', '2026-01-01T00:00:00.000Z');
                 CREATE TABLE permission_sets (tenant_id TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL,
                   name_lc TEXT NOT NULL, label TEXT NOT NULL, description TEXT, created_at TEXT NOT NULL,
                   updated_at TEXT NOT NULL, PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, name_lc));
                 INSERT INTO permission_sets VALUES ('t1', 'p1', 'Sales', 'sales', 'Sales', NULL,
                   '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
                 CREATE TABLE locale_settings (tenant_id TEXT NOT NULL, user_id TEXT NOT NULL,
                   time_zone TEXT, locale TEXT, updated_at TEXT NOT NULL, PRIMARY KEY (tenant_id, user_id));
                 INSERT INTO locale_settings VALUES ('t1', '', 'Europe/Paris', NULL, '2026-01-01T00:00:00.000Z');",
            )
            .unwrap();
        }
        let store = crate::SqliteMetaStore::open(&path).unwrap();
        // Permission sets gain the system permission, off.
        let access = crate::SqliteAccessStore::new(store.db().clone());
        let set = crate::AccessStore::permission_set(&access, "t1", "p1")
            .await
            .unwrap()
            .expect("permission set kept");
        assert_eq!(
            (set.name.as_str(), set.customize_application),
            ("Sales", false)
        );
        // Locale settings gain the fiscal year start month, unset.
        let settings = crate::settings::SqliteSettingsStore::new(store.db().clone());
        let rows = crate::settings::SettingsStore::locales(&settings, "t1", "")
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (
                rows[0].time_zone.as_deref(),
                rows[0].fiscal_year_start_month
            ),
            (Some("Europe/Paris"), None)
        );
        let u = store.user("t1", "u1").await.unwrap().expect("user kept");
        assert_eq!((u.username.as_str(), u.role_id), ("Ann", None));
        assert!(
            store.user("t2", "u1").await.unwrap().is_none(),
            "tenant-scoped"
        );
        store.db().close();
        // Opening again is a no-op.
        let again = crate::SqliteMetaStore::open(&path).unwrap();
        assert!(again.user("t1", "u1").await.unwrap().is_some());
        again.db().close();
    }
}
