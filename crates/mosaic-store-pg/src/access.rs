//! PostgreSQL implementation of [`AccessStore`], on the metadata database:
//! roles with materialized paths, public groups, permission sets and their
//! assignments, connected apps, refresh tokens, login-failure windows and
//! the audit log. Every admin change writes its audit row in the same
//! transaction.

use crate::meta::{insert_user, user_row, username_exists, username_taken, USER_COLS};
use crate::pool::{millis, read_tx, with_client, write_tx, PgPool, Step};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use mosaic_store::access_store::*;
use mosaic_store::meta_store::UserRow;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::collections::{HashMap, HashSet};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// The access store on the metadata database (the pool of a [`crate::PgMetaStore`]).
#[derive(Clone, Debug)]
pub struct PgAccessStore {
    pool: PgPool,
}

impl PgAccessStore {
    /// The access store on `pool`, which [`crate::migrate::migrate_metadata`]
    /// has brought up to date (as [`crate::PgMetaStore::connect`] does).
    pub fn new(pool: PgPool) -> PgAccessStore {
        PgAccessStore { pool }
    }
}

type Params<'a> = [&'a (dyn ToSql + Sync)];

async fn exists<C: GenericClient + Sync>(c: &C, sql: &str, p: &Params<'_>) -> Step<bool> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&st, p).await?.is_some())
}

async fn strings<C: GenericClient + Sync>(c: &C, sql: &str, p: &Params<'_>) -> Step<Vec<String>> {
    let st = c.prepare_cached(sql).await?;
    let rows = c.query(&st, p).await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

async fn execute<C: GenericClient + Sync>(c: &C, sql: &str, p: &Params<'_>) -> Step<u64> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.execute(&st, p).await?)
}

async fn insert_refresh_token<C: GenericClient + Sync>(c: &C, r: &RefreshTokenRow) -> Step<()> {
    execute(
        c,
        "INSERT INTO refresh_tokens (token_hash, tenant_id, user_id, issued_at, revoked, expires_at, family_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &r.token_hash,
            &r.tenant_id,
            &r.user_id,
            &millis(&r.issued_at),
            &r.revoked,
            &millis(&r.expires_at),
            &r.family_id,
        ],
    )
    .await?;
    Ok(())
}

/// A refresh token by hash; `lock`: `FOR UPDATE` (inside a transaction).
async fn get_refresh_token<C: GenericClient + Sync>(
    c: &C,
    hash: &str,
    lock: bool,
) -> Step<Option<RefreshTokenRow>> {
    let sql = if lock {
        "SELECT token_hash, tenant_id, user_id, issued_at, revoked, expires_at, family_id FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE"
    } else {
        "SELECT token_hash, tenant_id, user_id, issued_at, revoked, expires_at, family_id FROM refresh_tokens WHERE token_hash = $1"
    };
    let st = c.prepare_cached(sql).await?;
    match c.query_opt(&st, &[&hash]).await? {
        Some(r) => Ok(Some(RefreshTokenRow {
            token_hash: r.try_get(0)?,
            tenant_id: r.try_get(1)?,
            user_id: r.try_get(2)?,
            issued_at: r.try_get(3)?,
            revoked: r.try_get(4)?,
            expires_at: r.try_get(5)?,
            family_id: r.try_get(6)?,
        })),
        None => Ok(None),
    }
}

async fn insert_audit<C: GenericClient + Sync>(c: &C, a: &AuditEntry) -> Step<()> {
    execute(
        c,
        "INSERT INTO audit_log (tenant_id, actor_id, action, target_type, target_id, detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &a.tenant_id,
            &a.actor_id,
            &a.action,
            &a.target_type,
            &a.target_id,
            &a.detail,
            &millis(&a.at),
        ],
    )
    .await?;
    Ok(())
}

fn duplicate(field: &str, what: &str, name: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::DUPLICATE_VALUE,
        field,
        format!("a {what} named '{name}' already exists"),
    )
}

fn short(id: &str) -> String {
    id.chars().take(80).collect()
}

// ---------- users ----------

pub(crate) async fn get_user<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    id: &str,
) -> Step<Option<UserRow>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND id = $2"
        ))
        .await?;
    match c.query_opt(&st, &[&tenant, &id]).await? {
        Some(r) => Ok(Some(user_row(&r)?)),
        None => Ok(None),
    }
}

fn no_user(field: &str, id: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::INVALID_INPUT,
        field,
        format!("{field}: no user with id '{}'", short(id)),
    )
}

// ---------- roles ----------

const ROLE_COLS: &str = "id, tenant_id, name, label, parent_id, path, depth, created_at";

fn role_row(r: &Row) -> Result<RoleRow, tokio_postgres::Error> {
    Ok(RoleRow {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        name: r.try_get(2)?,
        label: r.try_get(3)?,
        parent_id: r.try_get(4)?,
        path: r.try_get(5)?,
        depth: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}

async fn get_role<C: GenericClient + Sync>(c: &C, tenant: &str, id: &str) -> Step<Option<RoleRow>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {ROLE_COLS} FROM roles WHERE tenant_id = $1 AND id = $2"
        ))
        .await?;
    match c.query_opt(&st, &[&tenant, &id]).await? {
        Some(r) => Ok(Some(role_row(&r)?)),
        None => Ok(None),
    }
}

async fn role_exists<C: GenericClient + Sync>(c: &C, tenant: &str, id: &str) -> Step<bool> {
    exists(
        c,
        "SELECT 1 FROM roles WHERE tenant_id = $1 AND id = $2",
        &[&tenant, &id],
    )
    .await
}

fn no_role(field: &str, id: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::INVALID_INPUT,
        field,
        format!("{field}: no role with id '{}'", short(id)),
    )
}

fn parent_not_found(id: &str) -> MosaicError {
    no_role("parent_role_id", id)
}

fn too_deep() -> MosaicError {
    MosaicError::field(
        ErrorCode::LIMIT_EXCEEDED,
        "parent_role_id",
        format!("a role hierarchy is at most {MAX_ROLE_DEPTH} levels deep"),
    )
}

// ---------- groups ----------

const GROUP_COLS: &str = "id, tenant_id, name, label, created_at";

fn group_head(r: &Row) -> Result<GroupRow, tokio_postgres::Error> {
    Ok(GroupRow {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        name: r.try_get(2)?,
        label: r.try_get(3)?,
        members: Vec::new(),
        created_at: r.try_get(4)?,
    })
}

fn member(kind: &str, id: String) -> Option<GroupMember> {
    MemberKind::parse(kind).map(|kind| GroupMember { kind, id })
}

async fn group_members<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    id: &str,
) -> Step<Vec<GroupMember>> {
    let st = c
        .prepare_cached(
            "SELECT member_kind, member_id FROM group_members WHERE tenant_id = $1 AND group_id = $2 ORDER BY position",
        )
        .await?;
    let mut out = Vec::new();
    for r in c.query(&st, &[&tenant, &id]).await? {
        let kind: String = r.try_get(0)?;
        if let Some(m) = member(&kind, r.try_get(1)?) {
            out.push(m);
        }
    }
    Ok(out)
}

async fn get_group<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    id: &str,
) -> Step<Option<GroupRow>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {GROUP_COLS} FROM groups WHERE tenant_id = $1 AND id = $2"
        ))
        .await?;
    let Some(r) = c.query_opt(&st, &[&tenant, &id]).await? else {
        return Ok(None);
    };
    let mut g = group_head(&r)?;
    g.members = group_members(c, tenant, id).await?;
    Ok(Some(g))
}

/// The ids among `ids` that name rows of `table` (`users` or `roles`) in the tenant.
async fn existing_ids<C: GenericClient + Sync>(
    c: &C,
    sql: &str,
    tenant: &str,
    ids: &[String],
) -> Step<HashSet<String>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(strings(c, sql, &[&tenant, &ids])
        .await?
        .into_iter()
        .collect())
}

/// Replaces a group's members. The first member that names no user or role
/// of the tenant fails the change; a member listed twice is kept once, at
/// its first position.
async fn put_members<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    group: &str,
    members: &[GroupMember],
) -> Step<()> {
    execute(
        c,
        "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2",
        &[&tenant, &group],
    )
    .await?;
    let (user_ids, role_ids): (Vec<&GroupMember>, Vec<&GroupMember>) =
        members.iter().partition(|m| m.kind == MemberKind::User);
    let user_ids: Vec<String> = user_ids.iter().map(|m| m.id.clone()).collect();
    let role_ids: Vec<String> = role_ids.iter().map(|m| m.id.clone()).collect();
    let users = existing_ids(
        c,
        "SELECT id FROM users WHERE tenant_id = $1 AND id = ANY($2)",
        tenant,
        &user_ids,
    )
    .await?;
    let roles = existing_ids(
        c,
        "SELECT id FROM roles WHERE tenant_id = $1 AND id = ANY($2)",
        tenant,
        &role_ids,
    )
    .await?;
    let mut seen = HashSet::new();
    let (mut kinds, mut ids, mut positions) = (Vec::new(), Vec::new(), Vec::new());
    for (i, m) in members.iter().enumerate() {
        let (found, key, what) = match m.kind {
            MemberKind::User => (users.contains(&m.id), "user_id", "user"),
            MemberKind::Role => (roles.contains(&m.id), "role_id", "role"),
            MemberKind::RoleAndSubordinates => {
                (roles.contains(&m.id), "role_and_subordinates_id", "role")
            }
        };
        if !found {
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                format!("members[{i}].{key}"),
                format!("members[{i}].{key}: no {what} with id '{}'", short(&m.id)),
            )
            .into());
        }
        if seen.insert((m.kind.as_str(), m.id.as_str())) {
            kinds.push(m.kind.as_str().to_string());
            ids.push(m.id.clone());
            positions.push(i as i64);
        }
    }
    if !ids.is_empty() {
        execute(
            c,
            "INSERT INTO group_members (tenant_id, group_id, member_kind, member_id, position)
             SELECT $1, $2, k, m, p FROM UNNEST($3::text[], $4::text[], $5::bigint[]) AS u(k, m, p)",
            &[&tenant, &group, &kinds, &ids, &positions],
        )
        .await?;
    }
    Ok(())
}

// ---------- permission sets ----------

const SET_COLS: &str =
    "id, tenant_id, name, label, description, created_at, updated_at, customize_application";

fn set_head(r: &Row) -> Result<PermissionSetRow, tokio_postgres::Error> {
    Ok(PermissionSetRow {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        name: r.try_get(2)?,
        label: r.try_get(3)?,
        description: r.try_get(4)?,
        object_permissions: Vec::new(),
        field_permissions: Vec::new(),
        customize_application: r.try_get(7)?,
        assignees: Vec::new(),
        created_at: r.try_get(5)?,
        updated_at: r.try_get(6)?,
    })
}

fn object_perm_row(r: &Row, at: usize) -> Result<ObjectPermissionRow, tokio_postgres::Error> {
    Ok(ObjectPermissionRow {
        object_id: r.try_get(at)?,
        flags: ObjectFlags {
            create: r.try_get(at + 1)?,
            read: r.try_get(at + 2)?,
            edit: r.try_get(at + 3)?,
            delete: r.try_get(at + 4)?,
            view_all: r.try_get(at + 5)?,
            modify_all: r.try_get(at + 6)?,
        },
    })
}

fn field_perm_row(r: &Row, at: usize) -> Result<FieldPermissionRow, tokio_postgres::Error> {
    Ok(FieldPermissionRow {
        object_id: r.try_get(at)?,
        field_id: r.try_get(at + 1)?,
        read: r.try_get(at + 2)?,
        edit: r.try_get(at + 3)?,
    })
}

/// Replaces a set's object permissions; an object listed twice keeps its
/// last flags.
async fn put_object_perms<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    set: &str,
    rows: &[ObjectPermissionRow],
) -> Step<()> {
    execute(
        c,
        "DELETE FROM object_permissions WHERE tenant_id = $1 AND permission_set_id = $2",
        &[&tenant, &set],
    )
    .await?;
    let mut last: HashMap<&str, ObjectFlags> = HashMap::new();
    let mut order = Vec::new();
    for p in rows {
        if last.insert(p.object_id.as_str(), p.flags).is_none() {
            order.push(p.object_id.as_str());
        }
    }
    if order.is_empty() {
        return Ok(());
    }
    let flags: Vec<ObjectFlags> = order.iter().map(|o| last[o]).collect();
    let col = |f: fn(&ObjectFlags) -> bool| flags.iter().map(f).collect::<Vec<bool>>();
    let objects: Vec<&str> = order;
    execute(
        c,
        "INSERT INTO object_permissions (tenant_id, permission_set_id, object_id, can_create, can_read, can_edit, can_delete, view_all, modify_all)
         SELECT $1, $2, o, c, r, e, d, va, ma
         FROM UNNEST($3::text[], $4::bool[], $5::bool[], $6::bool[], $7::bool[], $8::bool[], $9::bool[]) AS u(o, c, r, e, d, va, ma)",
        &[
            &tenant,
            &set,
            &objects,
            &col(|f| f.create),
            &col(|f| f.read),
            &col(|f| f.edit),
            &col(|f| f.delete),
            &col(|f| f.view_all),
            &col(|f| f.modify_all),
        ],
    )
    .await?;
    Ok(())
}

/// Replaces a set's field permissions; a field listed twice keeps its last row.
async fn put_field_perms<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    set: &str,
    rows: &[FieldPermissionRow],
) -> Step<()> {
    execute(
        c,
        "DELETE FROM field_permissions WHERE tenant_id = $1 AND permission_set_id = $2",
        &[&tenant, &set],
    )
    .await?;
    let mut last: HashMap<&str, &FieldPermissionRow> = HashMap::new();
    let mut order = Vec::new();
    for p in rows {
        if last.insert(p.field_id.as_str(), p).is_none() {
            order.push(p.field_id.as_str());
        }
    }
    if order.is_empty() {
        return Ok(());
    }
    let kept: Vec<&FieldPermissionRow> = order.iter().map(|f| last[f]).collect();
    let objects: Vec<&str> = kept.iter().map(|p| p.object_id.as_str()).collect();
    let fields: Vec<&str> = kept.iter().map(|p| p.field_id.as_str()).collect();
    let reads: Vec<bool> = kept.iter().map(|p| p.read).collect();
    let edits: Vec<bool> = kept.iter().map(|p| p.edit).collect();
    execute(
        c,
        "INSERT INTO field_permissions (tenant_id, permission_set_id, object_id, field_id, can_read, can_edit)
         SELECT $1, $2, o, f, r, e FROM UNNEST($3::text[], $4::text[], $5::bool[], $6::bool[]) AS u(o, f, r, e)",
        &[&tenant, &set, &objects, &fields, &reads, &edits],
    )
    .await?;
    Ok(())
}

const OBJECT_PERM_COLS: &str =
    "object_id, can_create, can_read, can_edit, can_delete, view_all, modify_all";

/// The permission sets of a tenant with their permissions and assignees;
/// only the set `only` when given. Sets in name order.
async fn load_permission_sets<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    only: Option<&str>,
) -> Step<Vec<PermissionSetRow>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {SET_COLS} FROM permission_sets WHERE tenant_id = $1 AND ($2::text IS NULL OR id = $2) ORDER BY name_lc"
        ))
        .await?;
    let mut sets = c
        .query(&st, &[&tenant, &only])
        .await?
        .iter()
        .map(set_head)
        .collect::<Result<Vec<_>, _>>()?;
    if sets.is_empty() {
        return Ok(sets);
    }
    let index: HashMap<String, usize> = sets
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i))
        .collect();
    let st = c
        .prepare_cached(&format!(
            "SELECT permission_set_id, {OBJECT_PERM_COLS} FROM object_permissions
             WHERE tenant_id = $1 AND ($2::text IS NULL OR permission_set_id = $2)
             ORDER BY permission_set_id, object_id"
        ))
        .await?;
    for r in c.query(&st, &[&tenant, &only]).await? {
        let set: String = r.try_get(0)?;
        if let Some(&i) = index.get(&set) {
            sets[i].object_permissions.push(object_perm_row(&r, 1)?);
        }
    }
    let st = c
        .prepare_cached(
            "SELECT permission_set_id, object_id, field_id, can_read, can_edit FROM field_permissions
             WHERE tenant_id = $1 AND ($2::text IS NULL OR permission_set_id = $2)
             ORDER BY permission_set_id, object_id, field_id",
        )
        .await?;
    for r in c.query(&st, &[&tenant, &only]).await? {
        let set: String = r.try_get(0)?;
        if let Some(&i) = index.get(&set) {
            sets[i].field_permissions.push(field_perm_row(&r, 1)?);
        }
    }
    let st = c
        .prepare_cached(
            "SELECT permission_set_id, user_id FROM permission_set_assignments
             WHERE tenant_id = $1 AND ($2::text IS NULL OR permission_set_id = $2)
             ORDER BY permission_set_id, created_at, user_id",
        )
        .await?;
    for r in c.query(&st, &[&tenant, &only]).await? {
        let set: String = r.try_get(0)?;
        if let Some(&i) = index.get(&set) {
            sets[i].assignees.push(r.try_get(1)?);
        }
    }
    Ok(sets)
}

async fn get_permission_set<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    id: &str,
) -> Step<Option<PermissionSetRow>> {
    Ok(load_permission_sets(c, tenant, Some(id)).await?.pop())
}

async fn set_exists<C: GenericClient + Sync>(c: &C, tenant: &str, id: &str) -> Step<bool> {
    exists(
        c,
        "SELECT 1 FROM permission_sets WHERE tenant_id = $1 AND id = $2",
        &[&tenant, &id],
    )
    .await
}

// ---------- connected apps ----------

const APP_COLS: &str = "id, tenant_id, name, client_id, secret_hash, run_as_user_id, created_at";

fn app_row(r: &Row) -> Result<ConnectedAppRow, tokio_postgres::Error> {
    Ok(ConnectedAppRow {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        name: r.try_get(2)?,
        client_id: r.try_get(3)?,
        secret_hash: r.try_get(4)?,
        run_as_user_id: r.try_get(5)?,
        created_at: r.try_get(6)?,
    })
}

#[async_trait]
impl AccessStore for PgAccessStore {
    async fn append_audit(&self, entry: AuditEntry) -> MosaicResult<()> {
        with_client!(self.pool, |c| insert_audit(c, &entry).await)
    }

    async fn create_user(&self, u: UserRow, audit: AuditEntry) -> MosaicResult<()> {
        write_tx!(self.pool, |tx| {
            if username_exists(tx, &u.username).await? {
                return Err(username_taken(&u.username).into());
            }
            if let Some(r) = &u.role_id {
                if !role_exists(tx, &u.tenant_id, r).await? {
                    return Err(no_role("role_id", r).into());
                }
            }
            insert_user(tx, &u).await?;
            insert_audit(tx, &audit).await
        })
    }

    async fn update_user(
        &self,
        tenant_id: &str,
        id: &str,
        patch: UserPatch,
        audit: AuditEntry,
    ) -> MosaicResult<Option<UserUpdated>> {
        let t = tenant_id;
        write_tx!(self.pool, |tx| {
            if get_user(tx, t, id).await?.is_none() {
                return Ok(None);
            }
            if let Some(Some(r)) = &patch.role_id {
                if !role_exists(tx, t, r).await? {
                    return Err(no_role("role_id", r).into());
                }
            }
            if let Some(e) = &patch.email {
                execute(
                    tx,
                    "UPDATE users SET email = $1 WHERE tenant_id = $2 AND id = $3",
                    &[e, &t, &id],
                )
                .await?;
            }
            if let Some(p) = &patch.profile {
                execute(
                    tx,
                    "UPDATE users SET profile = $1 WHERE tenant_id = $2 AND id = $3",
                    &[p, &t, &id],
                )
                .await?;
            }
            if let Some(r) = &patch.role_id {
                execute(
                    tx,
                    "UPDATE users SET role_id = $1 WHERE tenant_id = $2 AND id = $3",
                    &[r, &t, &id],
                )
                .await?;
            }
            let mut revoked_sessions = Vec::new();
            if let Some(a) = patch.is_active {
                execute(
                    tx,
                    "UPDATE users SET is_active = $1 WHERE tenant_id = $2 AND id = $3",
                    &[&a, &t, &id],
                )
                .await?;
                if !a {
                    revoked_sessions = strings(
                        tx,
                        "SELECT token_hash FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND NOT revoked ORDER BY issued_at, token_hash",
                        &[&t, &id],
                    )
                    .await?;
                    execute(
                        tx,
                        "UPDATE sessions SET revoked = TRUE WHERE tenant_id = $1 AND user_id = $2",
                        &[&t, &id],
                    )
                    .await?;
                    execute(
                        tx,
                        "UPDATE refresh_tokens SET revoked = TRUE WHERE tenant_id = $1 AND user_id = $2",
                        &[&t, &id],
                    )
                    .await?;
                }
            }
            insert_audit(tx, &audit).await?;
            let user = get_user(tx, t, id)
                .await?
                .ok_or_else(|| MosaicError::internal("updated user vanished"))?;
            Ok(Some(UserUpdated {
                user,
                revoked_sessions,
            }))
        })
    }

    async fn list_users(&self, tenant_id: &str) -> MosaicResult<Vec<UserRow>> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(&format!(
                    "SELECT {USER_COLS} FROM users WHERE tenant_id = $1 ORDER BY username_lc"
                ))
                .await?;
            let rows = c.query(&st, &[&tenant_id]).await?;
            Ok(rows.iter().map(user_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn create_role(&self, role: RoleRow, audit: AuditEntry) -> MosaicResult<RoleRow> {
        write_tx!(self.pool, |tx| {
            let mut role = role.clone();
            if exists(
                tx,
                "SELECT 1 FROM roles WHERE tenant_id = $1 AND name_lc = $2",
                &[&role.tenant_id, &role.name.to_lowercase()],
            )
            .await?
            {
                return Err(duplicate("name", "role", &role.name).into());
            }
            let (path, depth) = match &role.parent_id {
                None => (format!("/{}/", role.id), 1),
                Some(p) => {
                    let parent = get_role(tx, &role.tenant_id, p)
                        .await?
                        .ok_or_else(|| parent_not_found(p))?;
                    (format!("{}{}/", parent.path, role.id), parent.depth + 1)
                }
            };
            if depth > MAX_ROLE_DEPTH {
                return Err(too_deep().into());
            }
            role.path = path;
            role.depth = depth;
            execute(
                tx,
                "INSERT INTO roles (tenant_id, id, name, name_lc, label, parent_id, path, depth, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &role.tenant_id,
                    &role.id,
                    &role.name,
                    &role.name.to_lowercase(),
                    &role.label,
                    &role.parent_id,
                    &role.path,
                    &role.depth,
                    &millis(&role.created_at),
                ],
            )
            .await?;
            insert_audit(tx, &audit).await?;
            Ok(role)
        })
    }

    async fn update_role(
        &self,
        tenant_id: &str,
        id: &str,
        label: Option<String>,
        parent_id: Option<Option<String>>,
        audit: AuditEntry,
    ) -> MosaicResult<Option<RoleRow>> {
        let t = tenant_id;
        write_tx!(self.pool, |tx| {
            let Some(role) = get_role(tx, t, id).await? else {
                return Ok(None);
            };
            if let Some(l) = &label {
                execute(
                    tx,
                    "UPDATE roles SET label = $1 WHERE tenant_id = $2 AND id = $3",
                    &[l, &t, &id],
                )
                .await?;
            }
            if let Some(new_parent) = &parent_id {
                let (prefix, depth) = match new_parent {
                    None => ("/".to_string(), 1),
                    Some(p) => {
                        let parent = get_role(tx, t, p)
                            .await?
                            .ok_or_else(|| parent_not_found(p))?;
                        if parent.path.starts_with(&role.path) {
                            return Err(MosaicError::field(
                                ErrorCode::INVALID_INPUT,
                                "parent_role_id",
                                "a role cannot be moved under itself or one of its subordinates",
                            )
                            .into());
                        }
                        (parent.path.clone(), parent.depth + 1)
                    }
                };
                let new_path = format!("{prefix}{}/", role.id);
                let delta = depth - role.depth;
                let st = tx
                    .prepare_cached(
                        "SELECT MAX(depth) FROM roles WHERE tenant_id = $1 AND starts_with(path, $2::text)",
                    )
                    .await?;
                let deepest: Option<i64> =
                    tx.query_one(&st, &[&t, &role.path]).await?.try_get(0)?;
                if deepest.unwrap_or(role.depth) + delta > MAX_ROLE_DEPTH {
                    return Err(too_deep().into());
                }
                // The whole subtree in one statement: every path under the
                // old prefix gets the new one.
                execute(
                    tx,
                    "UPDATE roles SET path = $1::text || substr(path, length($2::text) + 1), depth = depth + $3
                     WHERE tenant_id = $4 AND starts_with(path, $2::text)",
                    &[&new_path, &role.path, &delta, &t],
                )
                .await?;
                execute(
                    tx,
                    "UPDATE roles SET parent_id = $1 WHERE tenant_id = $2 AND id = $3",
                    &[new_parent, &t, &id],
                )
                .await?;
            }
            insert_audit(tx, &audit).await?;
            get_role(tx, t, id).await
        })
    }

    async fn role(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<RoleRow>> {
        with_client!(self.pool, |c| get_role(c, tenant_id, id).await)
    }

    async fn list_roles(&self, tenant_id: &str) -> MosaicResult<Vec<RoleRow>> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(&format!(
                    "SELECT {ROLE_COLS} FROM roles WHERE tenant_id = $1 ORDER BY path"
                ))
                .await?;
            let rows = c.query(&st, &[&tenant_id]).await?;
            Ok(rows.iter().map(role_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn delete_role(
        &self,
        tenant_id: &str,
        id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool> {
        let t = tenant_id;
        write_tx!(self.pool, |tx| {
            if get_role(tx, t, id).await?.is_none() {
                return Ok(false);
            }
            let in_use = |what: &str| {
                MosaicError::new(
                    ErrorCode::DELETE_FAILED,
                    format!("the role is in use: {what}; reassign them first"),
                )
            };
            if exists(
                tx,
                "SELECT 1 FROM roles WHERE tenant_id = $1 AND parent_id = $2",
                &[&t, &id],
            )
            .await?
            {
                return Err(in_use("it has sub-roles").into());
            }
            if exists(
                tx,
                "SELECT 1 FROM users WHERE tenant_id = $1 AND role_id = $2",
                &[&t, &id],
            )
            .await?
            {
                return Err(in_use("users hold it").into());
            }
            if exists(
                tx,
                "SELECT 1 FROM group_members WHERE tenant_id = $1 AND member_id = $2 AND member_kind <> 'user'",
                &[&t, &id],
            )
            .await?
            {
                return Err(in_use("groups include it").into());
            }
            execute(
                tx,
                "DELETE FROM roles WHERE tenant_id = $1 AND id = $2",
                &[&t, &id],
            )
            .await?;
            insert_audit(tx, &audit).await?;
            Ok(true)
        })
    }

    async fn create_group(&self, g: GroupRow, audit: AuditEntry) -> MosaicResult<()> {
        write_tx!(self.pool, |tx| {
            if exists(
                tx,
                "SELECT 1 FROM groups WHERE tenant_id = $1 AND name_lc = $2",
                &[&g.tenant_id, &g.name.to_lowercase()],
            )
            .await?
            {
                return Err(duplicate("name", "group", &g.name).into());
            }
            execute(
                tx,
                "INSERT INTO groups (tenant_id, id, name, name_lc, label, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &g.tenant_id,
                    &g.id,
                    &g.name,
                    &g.name.to_lowercase(),
                    &g.label,
                    &millis(&g.created_at),
                ],
            )
            .await?;
            put_members(tx, &g.tenant_id, &g.id, &g.members).await?;
            insert_audit(tx, &audit).await
        })
    }

    async fn update_group(
        &self,
        tenant_id: &str,
        id: &str,
        label: Option<String>,
        members: Option<Vec<GroupMember>>,
        audit: AuditEntry,
    ) -> MosaicResult<Option<GroupRow>> {
        let t = tenant_id;
        write_tx!(self.pool, |tx| {
            if !exists(
                tx,
                "SELECT 1 FROM groups WHERE tenant_id = $1 AND id = $2",
                &[&t, &id],
            )
            .await?
            {
                return Ok(None);
            }
            if let Some(l) = &label {
                execute(
                    tx,
                    "UPDATE groups SET label = $1 WHERE tenant_id = $2 AND id = $3",
                    &[l, &t, &id],
                )
                .await?;
            }
            if let Some(m) = &members {
                put_members(tx, t, id, m).await?;
            }
            insert_audit(tx, &audit).await?;
            get_group(tx, t, id).await
        })
    }

    async fn group(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<GroupRow>> {
        read_tx!(self.pool, |tx| get_group(tx, tenant_id, id).await)
    }

    async fn list_groups(&self, tenant_id: &str) -> MosaicResult<Vec<GroupRow>> {
        read_tx!(self.pool, |tx| {
            let st = tx
                .prepare_cached(&format!(
                    "SELECT {GROUP_COLS} FROM groups WHERE tenant_id = $1 ORDER BY name_lc"
                ))
                .await?;
            let mut groups = tx
                .query(&st, &[&tenant_id])
                .await?
                .iter()
                .map(group_head)
                .collect::<Result<Vec<_>, _>>()?;
            let index: HashMap<String, usize> = groups
                .iter()
                .enumerate()
                .map(|(i, g)| (g.id.clone(), i))
                .collect();
            let st = tx
                .prepare_cached(
                    "SELECT group_id, member_kind, member_id FROM group_members WHERE tenant_id = $1 ORDER BY group_id, position",
                )
                .await?;
            for r in tx.query(&st, &[&tenant_id]).await? {
                let g: String = r.try_get(0)?;
                let kind: String = r.try_get(1)?;
                if let (Some(&i), Some(m)) = (index.get(&g), member(&kind, r.try_get(2)?)) {
                    groups[i].members.push(m);
                }
            }
            Ok(groups)
        })
    }

    async fn delete_group(
        &self,
        tenant_id: &str,
        id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool> {
        let t = tenant_id;
        write_tx!(self.pool, |tx| {
            let n = execute(
                tx,
                "DELETE FROM groups WHERE tenant_id = $1 AND id = $2",
                &[&t, &id],
            )
            .await?;
            if n == 0 {
                return Ok(false);
            }
            execute(
                tx,
                "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2",
                &[&t, &id],
            )
            .await?;
            insert_audit(tx, &audit).await?;
            Ok(true)
        })
    }

    async fn create_permission_set(
        &self,
        s: PermissionSetRow,
        audit: AuditEntry,
    ) -> MosaicResult<()> {
        write_tx!(self.pool, |tx| {
            if exists(
                tx,
                "SELECT 1 FROM permission_sets WHERE tenant_id = $1 AND name_lc = $2",
                &[&s.tenant_id, &s.name.to_lowercase()],
            )
            .await?
            {
                return Err(duplicate("name", "permission set", &s.name).into());
            }
            execute(
                tx,
                "INSERT INTO permission_sets (tenant_id, id, name, name_lc, label, description, created_at, updated_at, customize_application) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &s.tenant_id,
                    &s.id,
                    &s.name,
                    &s.name.to_lowercase(),
                    &s.label,
                    &s.description,
                    &millis(&s.created_at),
                    &millis(&s.updated_at),
                    &s.customize_application,
                ],
            )
            .await?;
            put_object_perms(tx, &s.tenant_id, &s.id, &s.object_permissions).await?;
            put_field_perms(tx, &s.tenant_id, &s.id, &s.field_permissions).await?;
            insert_audit(tx, &audit).await
        })
    }

    async fn update_permission_set(
        &self,
        tenant_id: &str,
        id: &str,
        patch: PermissionSetPatch,
        audit: AuditEntry,
    ) -> MosaicResult<Option<PermissionSetRow>> {
        let t = tenant_id;
        write_tx!(self.pool, |tx| {
            if !set_exists(tx, t, id).await? {
                return Ok(None);
            }
            if let Some(l) = &patch.label {
                execute(
                    tx,
                    "UPDATE permission_sets SET label = $1 WHERE tenant_id = $2 AND id = $3",
                    &[l, &t, &id],
                )
                .await?;
            }
            if let Some(d) = &patch.description {
                execute(
                    tx,
                    "UPDATE permission_sets SET description = $1 WHERE tenant_id = $2 AND id = $3",
                    &[d, &t, &id],
                )
                .await?;
            }
            if let Some(c) = &patch.customize_application {
                execute(
                    tx,
                    "UPDATE permission_sets SET customize_application = $1 WHERE tenant_id = $2 AND id = $3",
                    &[c, &t, &id],
                )
                .await?;
            }
            if let Some(o) = &patch.object_permissions {
                put_object_perms(tx, t, id, o).await?;
            }
            if let Some(f) = &patch.field_permissions {
                put_field_perms(tx, t, id, f).await?;
            }
            execute(
                tx,
                "UPDATE permission_sets SET updated_at = $1 WHERE tenant_id = $2 AND id = $3",
                &[&millis(&audit.at), &t, &id],
            )
            .await?;
            insert_audit(tx, &audit).await?;
            get_permission_set(tx, t, id).await
        })
    }

    async fn permission_set(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> MosaicResult<Option<PermissionSetRow>> {
        read_tx!(self.pool, |tx| get_permission_set(tx, tenant_id, id).await)
    }

    async fn list_permission_sets(&self, tenant_id: &str) -> MosaicResult<Vec<PermissionSetRow>> {
        read_tx!(self.pool, |tx| load_permission_sets(tx, tenant_id, None)
            .await)
    }

    async fn delete_permission_set(
        &self,
        tenant_id: &str,
        id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool> {
        let t = tenant_id;
        write_tx!(self.pool, |tx| {
            let n = execute(
                tx,
                "DELETE FROM permission_sets WHERE tenant_id = $1 AND id = $2",
                &[&t, &id],
            )
            .await?;
            if n == 0 {
                return Ok(false);
            }
            for sql in [
                "DELETE FROM object_permissions WHERE tenant_id = $1 AND permission_set_id = $2",
                "DELETE FROM field_permissions WHERE tenant_id = $1 AND permission_set_id = $2",
                "DELETE FROM permission_set_assignments WHERE tenant_id = $1 AND permission_set_id = $2",
            ] {
                execute(tx, sql, &[&t, &id]).await?;
            }
            insert_audit(tx, &audit).await?;
            Ok(true)
        })
    }

    async fn assign(
        &self,
        tenant_id: &str,
        set_id: &str,
        user_id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool> {
        let (t, s, u) = (tenant_id, set_id, user_id);
        write_tx!(self.pool, |tx| {
            if !set_exists(tx, t, s).await? {
                return Ok(false);
            }
            if get_user(tx, t, u).await?.is_none() {
                return Err(no_user("user_id", u).into());
            }
            execute(
                tx,
                "INSERT INTO permission_set_assignments (tenant_id, permission_set_id, user_id, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, permission_set_id, user_id) DO NOTHING",
                &[&t, &s, &u, &millis(&audit.at)],
            )
            .await?;
            insert_audit(tx, &audit).await?;
            Ok(true)
        })
    }

    async fn unassign(
        &self,
        tenant_id: &str,
        set_id: &str,
        user_id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool> {
        let (t, s, u) = (tenant_id, set_id, user_id);
        write_tx!(self.pool, |tx| {
            let n = execute(
                tx,
                "DELETE FROM permission_set_assignments WHERE tenant_id = $1 AND permission_set_id = $2 AND user_id = $3",
                &[&t, &s, &u],
            )
            .await?;
            if n == 0 {
                return Ok(false);
            }
            insert_audit(tx, &audit).await?;
            Ok(true)
        })
    }

    async fn user_grants(&self, tenant_id: &str, user_id: &str) -> MosaicResult<UserGrants> {
        read_tx!(self.pool, |tx| {
            let st = tx
                .prepare_cached(
                    "SELECT o.object_id, o.can_create, o.can_read, o.can_edit, o.can_delete, o.view_all, o.modify_all
                     FROM object_permissions o JOIN permission_set_assignments a
                       ON a.tenant_id = o.tenant_id AND a.permission_set_id = o.permission_set_id
                     WHERE o.tenant_id = $1 AND a.user_id = $2",
                )
                .await?;
            let objects = tx
                .query(&st, &[&tenant_id, &user_id])
                .await?
                .iter()
                .map(|r| object_perm_row(r, 0))
                .collect::<Result<Vec<_>, _>>()?;
            let st = tx
                .prepare_cached(
                    "SELECT f.object_id, f.field_id, f.can_read, f.can_edit
                     FROM field_permissions f JOIN permission_set_assignments a
                       ON a.tenant_id = f.tenant_id AND a.permission_set_id = f.permission_set_id
                     WHERE f.tenant_id = $1 AND a.user_id = $2",
                )
                .await?;
            let fields = tx
                .query(&st, &[&tenant_id, &user_id])
                .await?
                .iter()
                .map(|r| field_perm_row(r, 0))
                .collect::<Result<Vec<_>, _>>()?;
            let customize_application = exists(
                tx,
                "SELECT 1 FROM permission_sets p JOIN permission_set_assignments a
                   ON a.tenant_id = p.tenant_id AND a.permission_set_id = p.id
                 WHERE p.tenant_id = $1 AND a.user_id = $2 AND p.customize_application LIMIT 1",
                &[&tenant_id, &user_id],
            )
            .await?;
            Ok(UserGrants {
                objects,
                fields,
                customize_application,
            })
        })
    }

    async fn create_connected_app(
        &self,
        a: ConnectedAppRow,
        audit: AuditEntry,
    ) -> MosaicResult<()> {
        write_tx!(self.pool, |tx| {
            if exists(
                tx,
                "SELECT 1 FROM connected_apps WHERE tenant_id = $1 AND name_lc = $2",
                &[&a.tenant_id, &a.name.to_lowercase()],
            )
            .await?
            {
                return Err(duplicate("name", "connected app", &a.name).into());
            }
            if get_user(tx, &a.tenant_id, &a.run_as_user_id)
                .await?
                .is_none()
            {
                return Err(no_user("run_as_user_id", &a.run_as_user_id).into());
            }
            execute(
                tx,
                "INSERT INTO connected_apps (tenant_id, id, name, name_lc, client_id, secret_hash, run_as_user_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &a.tenant_id,
                    &a.id,
                    &a.name,
                    &a.name.to_lowercase(),
                    &a.client_id,
                    &a.secret_hash,
                    &a.run_as_user_id,
                    &millis(&a.created_at),
                ],
            )
            .await?;
            insert_audit(tx, &audit).await
        })
    }

    async fn connected_app(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> MosaicResult<Option<ConnectedAppRow>> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(&format!(
                    "SELECT {APP_COLS} FROM connected_apps WHERE tenant_id = $1 AND id = $2"
                ))
                .await?;
            match c.query_opt(&st, &[&tenant_id, &id]).await? {
                Some(r) => Ok(Some(app_row(&r)?)),
                None => Ok(None),
            }
        })
    }

    async fn connected_app_by_client_id(
        &self,
        client_id: &str,
    ) -> MosaicResult<Option<ConnectedAppRow>> {
        with_client!(self.pool, |c| {
            // Before any tenant is known (the client_credentials grant): the
            // client id is unique across tenants.
            let st = c
                .prepare_cached(&format!(
                    "SELECT {APP_COLS} FROM connected_apps WHERE client_id = $1"
                ))
                .await?;
            match c.query_opt(&st, &[&client_id]).await? {
                Some(r) => Ok(Some(app_row(&r)?)),
                None => Ok(None),
            }
        })
    }

    async fn list_connected_apps(&self, tenant_id: &str) -> MosaicResult<Vec<ConnectedAppRow>> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(&format!(
                    "SELECT {APP_COLS} FROM connected_apps WHERE tenant_id = $1 ORDER BY name_lc"
                ))
                .await?;
            let rows = c.query(&st, &[&tenant_id]).await?;
            Ok(rows.iter().map(app_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn delete_connected_app(
        &self,
        tenant_id: &str,
        id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool> {
        let t = tenant_id;
        write_tx!(self.pool, |tx| {
            let n = execute(
                tx,
                "DELETE FROM connected_apps WHERE tenant_id = $1 AND id = $2",
                &[&t, &id],
            )
            .await?;
            if n == 0 {
                return Ok(false);
            }
            insert_audit(tx, &audit).await?;
            Ok(true)
        })
    }

    async fn create_refresh_token(&self, r: RefreshTokenRow) -> MosaicResult<()> {
        with_client!(self.pool, |c| {
            insert_refresh_token(c, &r).await?;
            Ok(())
        })
    }

    async fn refresh_token(&self, token_hash: &str) -> MosaicResult<Option<RefreshTokenRow>> {
        with_client!(self.pool, |c| get_refresh_token(c, token_hash, false).await)
    }

    async fn revoke_refresh_token(&self, token_hash: &str) -> MosaicResult<bool> {
        with_client!(self.pool, |c| {
            let n = execute(
                c,
                "UPDATE refresh_tokens SET revoked = TRUE WHERE token_hash = $1",
                &[&token_hash],
            )
            .await?;
            Ok(n > 0)
        })
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        next: RefreshTokenRow,
        now: DateTime<Utc>,
    ) -> MosaicResult<RefreshRotation> {
        // Serializable, and the row locked: of two uses of one token, the
        // second sees the first's revocation.
        write_tx!(self.pool, |tx| {
            let Some(old) = get_refresh_token(tx, old_hash, true).await? else {
                return Ok(RefreshRotation::Invalid);
            };
            if old.revoked {
                execute(
                    tx,
                    "UPDATE refresh_tokens SET revoked = TRUE \
                     WHERE tenant_id = $1 AND family_id = $2",
                    &[&old.tenant_id, &old.family_id],
                )
                .await?;
                return Ok(RefreshRotation::Reused {
                    tenant_id: old.tenant_id,
                    user_id: old.user_id,
                });
            }
            if old.expires_at <= now {
                return Ok(RefreshRotation::Invalid);
            }
            execute(
                tx,
                "UPDATE refresh_tokens SET revoked = TRUE WHERE token_hash = $1",
                &[&old_hash],
            )
            .await?;
            insert_refresh_token(
                tx,
                &RefreshTokenRow {
                    tenant_id: old.tenant_id.clone(),
                    user_id: old.user_id.clone(),
                    family_id: old.family_id.clone(),
                    revoked: false,
                    ..next.clone()
                },
            )
            .await?;
            Ok(RefreshRotation::Rotated {
                tenant_id: old.tenant_id,
                user_id: old.user_id,
            })
        })
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
        let keep = keep_session.unwrap_or("");
        write_tx!(self.pool, |tx| {
            let n = execute(
                tx,
                "UPDATE users SET password_hash = $1, must_change_password = $2 WHERE tenant_id = $3 AND id = $4",
                &[&password_hash, &must_change, &tenant_id, &user_id],
            )
            .await?;
            if n == 0 {
                return Ok(None);
            }
            let revoked = strings(
                tx,
                "SELECT token_hash FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND NOT revoked AND token_hash <> $3 ORDER BY issued_at, token_hash",
                &[&tenant_id, &user_id, &keep],
            )
            .await?;
            execute(
                tx,
                "UPDATE sessions SET revoked = TRUE WHERE tenant_id = $1 AND user_id = $2 AND token_hash <> $3",
                &[&tenant_id, &user_id, &keep],
            )
            .await?;
            execute(
                tx,
                "UPDATE refresh_tokens SET revoked = TRUE WHERE tenant_id = $1 AND user_id = $2",
                &[&tenant_id, &user_id],
            )
            .await?;
            insert_audit(tx, &audit).await?;
            Ok(Some(revoked))
        })
    }

    async fn purge_expired(
        &self,
        now: DateTime<Utc>,
        login_window_secs: i64,
    ) -> MosaicResult<PurgedCredentials> {
        let at = millis(&now);
        let window = millis(&(now - chrono::Duration::seconds(login_window_secs)));
        with_client!(self.pool, |c| {
            let sessions = execute(c, "DELETE FROM sessions WHERE expires_at < $1", &[&at]).await?;
            let refresh_tokens = execute(
                c,
                "DELETE FROM refresh_tokens WHERE expires_at < $1",
                &[&at],
            )
            .await?;
            let login_failures = execute(
                c,
                "DELETE FROM login_failures WHERE window_start < $1",
                &[&window],
            )
            .await?;
            Ok(PurgedCredentials {
                sessions,
                refresh_tokens,
                login_failures,
            })
        })
    }

    async fn record_login_failure(
        &self,
        scope: &str,
        key: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> MosaicResult<(i64, DateTime<Utc>)> {
        with_client!(self.pool, |c| {
            // One atomic upsert: concurrent failures for the same key each
            // count (a row lock orders them), with no retry loop under attack.
            // A window is over once `window_secs` have passed since it started.
            let st = c
                .prepare_cached(
                    "INSERT INTO login_failures AS f (scope, key, failures, window_start) VALUES ($1, $2, 1, $3)
                     ON CONFLICT (scope, key) DO UPDATE SET
                       failures = CASE WHEN $4 < f.window_start + $5::bigint * INTERVAL '1 second'
                                       THEN f.failures + 1 ELSE 1 END,
                       window_start = CASE WHEN $4 < f.window_start + $5::bigint * INTERVAL '1 second'
                                           THEN f.window_start ELSE EXCLUDED.window_start END
                     RETURNING failures, window_start",
                )
                .await?;
            let row = c
                .query_one(&st, &[&scope, &key, &millis(&now), &now, &window_secs])
                .await?;
            let n: i64 = row.try_get(0)?;
            if n == 1 {
                // A new window: forget windows that are over (keeps the
                // table as small as the recent failures).
                let expired = millis(&(now - chrono::Duration::seconds(window_secs)));
                execute(
                    c,
                    "DELETE FROM login_failures WHERE window_start < $1",
                    &[&expired],
                )
                .await?;
                return Ok((1, now));
            }
            Ok((n, row.try_get(1)?))
        })
    }

    async fn login_failures(
        &self,
        scope: &str,
        key: &str,
    ) -> MosaicResult<Option<(i64, DateTime<Utc>)>> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(
                    "SELECT failures, window_start FROM login_failures WHERE scope = $1 AND key = $2",
                )
                .await?;
            match c.query_opt(&st, &[&scope, &key]).await? {
                Some(r) => Ok(Some((r.try_get(0)?, r.try_get(1)?))),
                None => Ok(None),
            }
        })
    }

    async fn clear_login_failures(&self, scope: &str, key: &str) -> MosaicResult<()> {
        with_client!(self.pool, |c| {
            execute(
                c,
                "DELETE FROM login_failures WHERE scope = $1 AND key = $2",
                &[&scope, &key],
            )
            .await?;
            Ok(())
        })
    }

    async fn forgive_login_failure(&self, scope: &str, key: &str) -> MosaicResult<()> {
        with_client!(self.pool, |c| {
            execute(
                c,
                "UPDATE login_failures SET failures = failures - 1 WHERE scope = $1 AND key = $2 AND failures > 0",
                &[&scope, &key],
            )
            .await?;
            Ok(())
        })
    }

    async fn audit(&self, tenant_id: &str, f: AuditFilter) -> MosaicResult<Vec<AuditRow>> {
        let since = f.since.as_ref().map(millis);
        let limit = i64::try_from(f.limit).unwrap_or(i64::MAX);
        with_client!(self.pool, |c| {
            // Optional filters as `($n IS NULL OR col = $n)`: one statement shape.
            let st = c
                .prepare_cached(
                    "SELECT seq, tenant_id, actor_id, action, target_type, target_id, detail, at FROM audit_log
                     WHERE tenant_id = $1
                       AND ($2::text IS NULL OR action = $2)
                       AND ($3::text IS NULL OR target_id = $3 OR target_type = $3)
                       AND ($4::timestamptz IS NULL OR at >= $4)
                       AND ($5::bigint IS NULL OR seq < $5)
                     ORDER BY seq DESC LIMIT $6",
                )
                .await?;
            let rows = c
                .query(
                    &st,
                    &[
                        &tenant_id,
                        &f.action,
                        &f.target_id,
                        &since,
                        &f.before_seq,
                        &limit,
                    ],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(AuditRow {
                    seq: r.try_get(0)?,
                    entry: AuditEntry {
                        tenant_id: r.try_get(1)?,
                        actor_id: r.try_get(2)?,
                        action: r.try_get(3)?,
                        target_type: r.try_get(4)?,
                        target_id: r.try_get(5)?,
                        detail: r.try_get(6)?,
                        at: r.try_get(7)?,
                    },
                });
            }
            Ok(out)
        })
    }
}
