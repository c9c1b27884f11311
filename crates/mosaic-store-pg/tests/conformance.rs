//! Backend conformance: every behaviour of the metadata stores and the
//! idempotency store, written once over the traits and run against SQLite
//! (the reference) and PostgreSQL. A case that passes on one backend and
//! fails on the other is a parity bug.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use common::Stores;
use mosaic_store::access_store::*;
use mosaic_store::idempotency::{KeptResponse, KeyState, Reservation};
use mosaic_store::meta_store::{ObjectRow, SessionRow, TenantRow, UserRow};
use mosaic_types::{ErrorCode, MosaicError};

// ---------- fixtures ----------

/// A time with sub-millisecond digits: stores keep milliseconds.
fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, 123_456_789)
        .single()
        .expect("valid time")
}

/// What a store returns for `at(secs)`.
fn stored(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, 123_000_000)
        .single()
        .expect("valid time")
}

fn tenant(id: &str) -> TenantRow {
    TenantRow {
        id: id.into(),
        name: format!("Tenant {id}"),
        subdomain: format!("sub-{id}"),
        tier: "starter".into(),
        status: "active".into(),
        created_at: at(0),
    }
}

fn user(tenant: &str, id: &str, username: &str) -> UserRow {
    UserRow {
        id: id.into(),
        tenant_id: tenant.into(),
        username: username.into(),
        email: Some(format!("{}@example.test", id)),
        password_hash: "argon2-hash".into(),
        is_active: true,
        profile: "standard".into(),
        created_at: at(1),
        role_id: None,
        must_change_password: false,
    }
}

fn session(tenant: &str, user: &str, hash: &str, issued: i64) -> SessionRow {
    SessionRow {
        token_hash: hash.into(),
        tenant_id: tenant.into(),
        user_id: user.into(),
        issued_at: at(issued),
        expires_at: at(issued + 3600),
        revoked: false,
    }
}

fn audit(tenant: &str, action: &str, target_id: &str, secs: i64) -> AuditEntry {
    AuditEntry {
        tenant_id: tenant.into(),
        actor_id: "admin".into(),
        action: action.into(),
        target_type: action.split('.').next().unwrap_or("x").into(),
        target_id: target_id.into(),
        detail: "{}".into(),
        at: at(secs),
    }
}

fn role(tenant: &str, id: &str, parent: Option<&str>) -> RoleRow {
    RoleRow {
        id: id.into(),
        tenant_id: tenant.into(),
        name: format!("Role_{id}"),
        label: format!("Role {id}"),
        parent_id: parent.map(str::to_string),
        path: String::new(),
        depth: 0,
        created_at: at(2),
    }
}

fn object(tenant: &str, id: &str, api_name: &str) -> ObjectRow {
    ObjectRow {
        id: id.into(),
        tenant_id: tenant.into(),
        api_name: api_name.into(),
        version: 1,
        definition: format!("{{\"api_name\":\"{api_name}\"}}"),
    }
}

fn flags(read: bool, edit: bool) -> ObjectFlags {
    ObjectFlags {
        read,
        edit,
        ..ObjectFlags::default()
    }
}

fn err_of<T: std::fmt::Debug>(r: Result<T, MosaicError>) -> MosaicError {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

fn assert_code<T: std::fmt::Debug>(r: Result<T, MosaicError>, code: ErrorCode, field: &str) {
    let e = err_of(r);
    assert_eq!(e.code, code, "{e}");
    if field.is_empty() {
        assert!(e.fields.is_empty(), "{e:?}");
    } else {
        assert_eq!(e.fields, vec![field.to_string()], "{e:?}");
    }
}

/// A tenant `t` with administrator `t-admin`.
async fn seed(s: &Stores, t: &str) {
    s.meta
        .create_tenant(
            tenant(t),
            user(t, &format!("{t}-admin"), &format!("admin@{t}")),
            None,
        )
        .await
        .expect("create tenant");
}

async fn audit_actions(s: &Stores, t: &str) -> Vec<String> {
    s.access
        .audit(
            t,
            AuditFilter {
                limit: 1000,
                ..AuditFilter::default()
            },
        )
        .await
        .expect("audit")
        .into_iter()
        .map(|r| r.entry.action)
        .collect()
}

// ---------- metadata store ----------

async fn tenants_users_and_sessions(s: &Stores) {
    s.meta
        .create_tenant(
            tenant("t1"),
            user("t1", "u1", "Ann@Example.test"),
            Some(session("t1", "u1", "h1", 10)),
        )
        .await
        .unwrap();
    let t = s.meta.tenant("t1").await.unwrap().expect("tenant");
    assert_eq!(t.subdomain, "sub-t1");
    assert_eq!(t.created_at, stored(0), "times are kept to the millisecond");
    assert!(s.meta.tenant("nope").await.unwrap().is_none());

    let u = s
        .meta
        .user_by_username("ann@example.TEST")
        .await
        .unwrap()
        .expect("usernames match case-insensitively");
    assert_eq!(
        (u.id.as_str(), u.username.as_str(), u.created_at),
        ("u1", "Ann@Example.test", stored(1))
    );
    assert_eq!(u.email.as_deref(), Some("u1@example.test"));
    assert!(u.is_active);
    assert_eq!(s.meta.user("t1", "u1").await.unwrap(), Some(u));
    assert!(
        s.meta.user("t2", "u1").await.unwrap().is_none(),
        "users are tenant-scoped"
    );

    let sess = s.meta.session("h1").await.unwrap().expect("session");
    assert_eq!(
        (sess.issued_at, sess.expires_at, sess.revoked),
        (stored(10), stored(3610), false)
    );
    s.meta
        .create_session(session("t1", "u1", "h2", 20))
        .await
        .unwrap();
    s.meta.revoke_session("h2").await.unwrap();
    s.meta.revoke_session("unknown").await.unwrap();
    assert!(s.meta.session("h2").await.unwrap().unwrap().revoked);
    assert!(!s.meta.session("h1").await.unwrap().unwrap().revoked);
    assert!(s.meta.session("h3").await.unwrap().is_none());
}

async fn taken_subdomains_and_usernames_are_refused(s: &Stores) {
    seed(s, "t1").await;
    let mut t = tenant("t2");
    t.subdomain = "sub-t1".into();
    assert_code(
        s.meta
            .create_tenant(t, user("t2", "u2", "fresh"), None)
            .await,
        ErrorCode::DUPLICATE_VALUE,
        "subdomain",
    );
    let e = err_of(
        s.meta
            .create_tenant(
                tenant("t2"),
                user("t2", "u2", "ADMIN@t1"),
                Some(session("t2", "u2", "h", 0)),
            )
            .await,
    );
    assert_eq!(
        (e.code, e.fields.clone()),
        (ErrorCode::DUPLICATE_VALUE, vec!["username".to_string()])
    );
    assert!(e.message.contains("ADMIN@t1"), "{e}");
    // Nothing of the refused tenant was written.
    assert!(s.meta.tenant("t2").await.unwrap().is_none());
    assert!(s.meta.session("h").await.unwrap().is_none());
}

async fn objects_are_listed_in_byte_order_of_their_lowercased_names(s: &Stores) {
    seed(s, "t1").await;
    seed(s, "t2").await;
    for (id, name) in [
        ("o1", "b__c"),
        ("o2", "B_a"),
        ("o3", "a_b"),
        ("o4", "_z"),
        ("o5", "Zeta"),
        ("o6", "éclair"),
    ] {
        s.meta.insert_object(object("t1", id, name)).await.unwrap();
    }
    s.meta
        .insert_object(object("t2", "o9", "Other"))
        .await
        .unwrap();
    let names: Vec<String> = s
        .meta
        .list_objects("t1")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.api_name)
        .collect();
    assert_eq!(names, ["_z", "a_b", "b__c", "B_a", "Zeta", "éclair"]);
    let o = s
        .meta
        .object_by_name("t1", "ZETA")
        .await
        .unwrap()
        .expect("by name, any case");
    assert_eq!(o, object("t1", "o5", "Zeta"));
    assert_eq!(s.meta.object_by_id("t1", "o5").await.unwrap(), Some(o));
    assert!(s.meta.object_by_id("t2", "o5").await.unwrap().is_none());
    assert!(s.meta.object_by_name("t2", "zeta").await.unwrap().is_none());
}

async fn object_names_are_unique_per_tenant(s: &Stores) {
    seed(s, "t1").await;
    seed(s, "t2").await;
    s.meta
        .insert_object(object("t1", "o1", "Invoice__c"))
        .await
        .unwrap();
    let e = err_of(s.meta.insert_object(object("t1", "o2", "INVOICE__C")).await);
    assert_eq!(
        (e.code, e.fields.clone()),
        (ErrorCode::DUPLICATE_VALUE, vec!["api_name".to_string()])
    );
    assert!(
        e.message.contains("'Invoice__c'"),
        "names the existing one: {e}"
    );
    s.meta
        .insert_object(object("t2", "o2", "Invoice__c"))
        .await
        .expect("another tenant may use the name");
}

async fn object_updates_are_optimistically_locked(s: &Stores) {
    seed(s, "t1").await;
    s.meta
        .insert_object(object("t1", "o1", "Invoice__c"))
        .await
        .unwrap();
    s.meta
        .insert_object(object("t1", "o2", "Order__c"))
        .await
        .unwrap();
    let mut next = object("t1", "o1", "Bill__c");
    next.version = 2;
    s.meta.update_object(next.clone(), 1).await.unwrap();
    assert_eq!(
        s.meta.object_by_name("t1", "bill__c").await.unwrap(),
        Some(next.clone())
    );
    assert!(s
        .meta
        .object_by_name("t1", "invoice__c")
        .await
        .unwrap()
        .is_none());

    let mut stale = next.clone();
    stale.version = 2;
    stale.definition = "{}".into();
    let e = err_of(s.meta.update_object(stale, 1).await);
    assert_eq!(
        (e.code, e.fields.clone()),
        (ErrorCode::CONFLICT, vec!["version".to_string()])
    );
    assert!(e.message.contains("current version is 2"), "{e}");

    let mut clash = next.clone();
    clash.api_name = "ORDER__c".into();
    clash.version = 3;
    assert_code(
        s.meta.update_object(clash, 2).await,
        ErrorCode::DUPLICATE_VALUE,
        "api_name",
    );
    let mut other_tenant = next.clone();
    other_tenant.tenant_id = "t2".into();
    other_tenant.version = 3;
    assert_code(
        s.meta.update_object(other_tenant, 2).await,
        ErrorCode::NOT_FOUND,
        "",
    );

    s.meta.delete_object("t2", "o1").await.unwrap();
    assert!(s.meta.object_by_id("t1", "o1").await.unwrap().is_some());
    s.meta.delete_object("t1", "o1").await.unwrap();
    s.meta.delete_object("t1", "o1").await.unwrap();
    assert!(s.meta.object_by_id("t1", "o1").await.unwrap().is_none());
}

async fn concurrent_tenants_with_one_subdomain_create_one(s: &Stores) {
    let attempt = |i: usize| {
        let mut t = tenant(&format!("t{i}"));
        t.subdomain = "contested".into();
        s.meta.create_tenant(
            t,
            user(&format!("t{i}"), &format!("u{i}"), &format!("a{i}")),
            None,
        )
    };
    let (a, b, c, d) = tokio::join!(attempt(1), attempt(2), attempt(3), attempt(4));
    let results = [a, b, c, d];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for r in results.into_iter().filter(|r| r.is_err()) {
        assert_code(r, ErrorCode::DUPLICATE_VALUE, "subdomain");
    }
}

async fn concurrent_updates_of_one_version_commit_once(s: &Stores) {
    seed(s, "t1").await;
    s.meta
        .insert_object(object("t1", "o1", "Invoice__c"))
        .await
        .unwrap();
    let attempt = |label: &str| {
        let mut o = object("t1", "o1", "Invoice__c");
        o.version = 2;
        o.definition = format!("{{\"label\":\"{label}\"}}");
        s.meta.update_object(o, 1)
    };
    let (a, b, c) = tokio::join!(attempt("a"), attempt("b"), attempt("c"));
    let results = [a, b, c];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for r in results.into_iter().filter(|r| r.is_err()) {
        assert_code(r, ErrorCode::CONFLICT, "version");
    }
    assert_eq!(
        s.meta
            .object_by_id("t1", "o1")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
}

// ---------- users ----------

async fn users_are_created_with_their_audit_row(s: &Stores) {
    seed(s, "t1").await;
    seed(s, "t2").await;
    s.access
        .create_user(user("t1", "u2", "Bob"), audit("t1", "user.create", "u2", 5))
        .await
        .unwrap();
    assert_code(
        s.access
            .create_user(user("t1", "u3", "bob"), audit("t1", "user.create", "u3", 6))
            .await,
        ErrorCode::DUPLICATE_VALUE,
        "username",
    );
    assert_code(
        s.access
            .create_user(
                user("t2", "u3", "admin@T1"),
                audit("t2", "user.create", "u3", 6),
            )
            .await,
        ErrorCode::DUPLICATE_VALUE,
        "username",
    );
    let mut with_role = user("t1", "u4", "Cy");
    with_role.role_id = Some("no-such-role".into());
    assert_code(
        s.access
            .create_user(with_role, audit("t1", "user.create", "u4", 7))
            .await,
        ErrorCode::INVALID_INPUT,
        "role_id",
    );
    // A role of another tenant is no role here.
    s.access
        .create_role(role("t2", "r2", None), audit("t2", "role.create", "r2", 7))
        .await
        .unwrap();
    let mut foreign = user("t1", "u5", "Di");
    foreign.role_id = Some("r2".into());
    assert_code(
        s.access
            .create_user(foreign, audit("t1", "user.create", "u5", 8))
            .await,
        ErrorCode::INVALID_INPUT,
        "role_id",
    );
    assert_eq!(audit_actions(s, "t1").await, ["user.create"]);
    let names: Vec<String> = s
        .access
        .list_users("t1")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["admin@t1", "Bob"]);
}

async fn users_are_listed_in_byte_order_of_their_lowercased_names(s: &Stores) {
    seed(s, "t1").await;
    for (i, name) in ["b.c", "B_a", "_x", "a-b", "Zed"].iter().enumerate() {
        s.access
            .create_user(
                user("t1", &format!("u{i}"), name),
                audit("t1", "user.create", "u", i as i64),
            )
            .await
            .unwrap();
    }
    let names: Vec<String> = s
        .access
        .list_users("t1")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["_x", "a-b", "admin@t1", "b.c", "B_a", "Zed"]);
}

async fn deactivating_a_user_revokes_sessions_and_refresh_tokens(s: &Stores) {
    seed(s, "t1").await;
    s.access
        .create_user(user("t1", "u2", "bob"), audit("t1", "user.create", "u2", 1))
        .await
        .unwrap();
    for (h, issued) in [("s-b", 30), ("s-a", 20), ("s-c", 10)] {
        s.meta
            .create_session(session("t1", "u2", h, issued))
            .await
            .unwrap();
    }
    s.meta.revoke_session("s-c").await.unwrap();
    s.meta
        .create_session(session("t1", "t1-admin", "s-admin", 5))
        .await
        .unwrap();
    s.access
        .create_refresh_token(RefreshTokenRow {
            token_hash: "r1".into(),
            tenant_id: "t1".into(),
            user_id: "u2".into(),
            issued_at: at(3),
            revoked: false,
            expires_at: at(3 + 86_400),
            family_id: "fam".into(),
        })
        .await
        .unwrap();
    s.access
        .create_role(role("t1", "r1", None), audit("t1", "role.create", "r1", 2))
        .await
        .unwrap();

    assert!(s
        .access
        .update_user(
            "t2",
            "u2",
            UserPatch {
                is_active: Some(false),
                ..UserPatch::default()
            },
            audit("t2", "user.update", "u2", 3),
        )
        .await
        .unwrap()
        .is_none());
    assert!(
        audit_actions(s, "t2").await.is_empty(),
        "no change, no audit"
    );

    assert_code(
        s.access
            .update_user(
                "t1",
                "u2",
                UserPatch {
                    email: Some(None),
                    role_id: Some(Some("nope".into())),
                    ..UserPatch::default()
                },
                audit("t1", "user.update", "u2", 4),
            )
            .await,
        ErrorCode::INVALID_INPUT,
        "role_id",
    );
    assert!(s
        .meta
        .user("t1", "u2")
        .await
        .unwrap()
        .unwrap()
        .email
        .is_some());

    let done = s
        .access
        .update_user(
            "t1",
            "u2",
            UserPatch {
                email: Some(None),
                is_active: Some(false),
                profile: Some("system_administrator".into()),
                role_id: Some(Some("r1".into())),
            },
            audit("t1", "user.update", "u2", 5),
        )
        .await
        .unwrap()
        .expect("user found");
    let mut revoked = done.revoked_sessions.clone();
    revoked.sort();
    assert_eq!(revoked, ["s-a", "s-b"], "the live sessions, not s-c");
    let u = done.user;
    assert_eq!(
        (
            u.email,
            u.is_active,
            u.profile.as_str(),
            u.role_id.as_deref()
        ),
        (None, false, "system_administrator", Some("r1"))
    );
    for h in ["s-a", "s-b", "s-c"] {
        assert!(s.meta.session(h).await.unwrap().unwrap().revoked, "{h}");
    }
    assert!(!s.meta.session("s-admin").await.unwrap().unwrap().revoked);
    assert!(s.access.refresh_token("r1").await.unwrap().unwrap().revoked);

    let back = s
        .access
        .update_user(
            "t1",
            "u2",
            UserPatch {
                is_active: Some(true),
                role_id: Some(None),
                ..UserPatch::default()
            },
            audit("t1", "user.update", "u2", 6),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(back.revoked_sessions.is_empty());
    assert_eq!((back.user.is_active, back.user.role_id), (true, None));
    assert_eq!(
        audit_actions(s, "t1").await,
        ["user.update", "user.update", "role.create", "user.create"]
    );
}

// ---------- roles ----------

async fn paths(s: &Stores, t: &str) -> Vec<(String, String, i64)> {
    s.access
        .list_roles(t)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.path, r.depth))
        .collect()
}

async fn roles_keep_materialized_paths(s: &Stores) {
    seed(s, "t1").await;
    let a = s
        .access
        .create_role(role("t1", "a", None), audit("t1", "role.create", "a", 1))
        .await
        .unwrap();
    assert_eq!((a.path.as_str(), a.depth), ("/a/", 1));
    assert_eq!(a.created_at, at(2), "returned as given");
    let b = s
        .access
        .create_role(
            role("t1", "b", Some("a")),
            audit("t1", "role.create", "b", 2),
        )
        .await
        .unwrap();
    assert_eq!((b.path.as_str(), b.depth), ("/a/b/", 2));
    let stored_b = s.access.role("t1", "b").await.unwrap().expect("stored");
    assert_eq!(
        (stored_b.path.as_str(), stored_b.created_at),
        ("/a/b/", stored(2))
    );
    assert!(s.access.role("t2", "b").await.unwrap().is_none());

    assert_code(
        s.access
            .create_role(
                role("t1", "x", Some("nope")),
                audit("t1", "role.create", "x", 3),
            )
            .await,
        ErrorCode::INVALID_INPUT,
        "parent_role_id",
    );
    let mut dup = role("t1", "y", None);
    dup.name = "ROLE_A".into();
    assert_code(
        s.access
            .create_role(dup, audit("t1", "role.create", "y", 3))
            .await,
        ErrorCode::DUPLICATE_VALUE,
        "name",
    );
    // A chain of MAX_ROLE_DEPTH levels, and not one more.
    let mut parent = "b".to_string();
    for level in 3..=MAX_ROLE_DEPTH {
        let id = format!("l{level}");
        let r = s
            .access
            .create_role(
                role("t1", &id, Some(&parent)),
                audit("t1", "role.create", &id, 4),
            )
            .await
            .unwrap();
        assert_eq!(r.depth, level);
        parent = id;
    }
    assert_code(
        s.access
            .create_role(
                role("t1", "deep", Some(&parent)),
                audit("t1", "role.create", "deep", 5),
            )
            .await,
        ErrorCode::LIMIT_EXCEEDED,
        "parent_role_id",
    );
    assert_eq!(
        audit_actions(s, "t1").await.len(),
        2 + (MAX_ROLE_DEPTH as usize - 2),
        "refused changes write no audit row"
    );
}

async fn moving_a_role_moves_its_subtree(s: &Stores) {
    seed(s, "t1").await;
    for (id, parent) in [
        ("a", None),
        ("b", Some("a")),
        ("c", Some("b")),
        ("d", Some("c")),
        ("e", None),
        ("f", Some("e")),
    ] {
        s.access
            .create_role(role("t1", id, parent), audit("t1", "role.create", id, 1))
            .await
            .unwrap();
    }
    seed(s, "t2").await;
    s.access
        .create_role(role("t2", "b", None), audit("t2", "role.create", "b", 1))
        .await
        .unwrap();

    let moved = s
        .access
        .update_role(
            "t1",
            "b",
            Some("Bee".into()),
            Some(Some("f".into())),
            audit("t1", "role.update", "b", 2),
        )
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        (
            moved.label.as_str(),
            moved.parent_id.as_deref(),
            moved.path.as_str(),
            moved.depth
        ),
        ("Bee", Some("f"), "/e/f/b/", 3)
    );
    let expect = |v: &[(&str, &str, i64)]| -> Vec<(String, String, i64)> {
        v.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
            .collect()
    };
    assert_eq!(
        paths(s, "t1").await,
        expect(&[
            ("a", "/a/", 1),
            ("e", "/e/", 1),
            ("f", "/e/f/", 2),
            ("b", "/e/f/b/", 3),
            ("c", "/e/f/b/c/", 4),
            ("d", "/e/f/b/c/d/", 5),
        ])
    );
    assert_eq!(
        paths(s, "t2").await,
        expect(&[("b", "/b/", 1)]),
        "another tenant's role of the same id is untouched"
    );

    assert_code(
        s.access
            .update_role(
                "t1",
                "b",
                None,
                Some(Some("d".into())),
                audit("t1", "role.update", "b", 3),
            )
            .await,
        ErrorCode::INVALID_INPUT,
        "parent_role_id",
    );
    assert_code(
        s.access
            .update_role(
                "t1",
                "b",
                None,
                Some(Some("b".into())),
                audit("t1", "role.update", "b", 3),
            )
            .await,
        ErrorCode::INVALID_INPUT,
        "parent_role_id",
    );
    assert_code(
        s.access
            .update_role(
                "t1",
                "b",
                Some("label kept?".into()),
                Some(Some("nope".into())),
                audit("t1", "role.update", "b", 3),
            )
            .await,
        ErrorCode::INVALID_INPUT,
        "parent_role_id",
    );
    assert_eq!(
        s.access.role("t1", "b").await.unwrap().unwrap().label,
        "Bee",
        "a refused change changes nothing"
    );

    // Deepen a chain under `a` so that moving the b-subtree (3 levels)
    // there would exceed the limit.
    let mut parent = "a".to_string();
    for level in 2..=8 {
        let id = format!("m{level}");
        s.access
            .create_role(
                role("t1", &id, Some(&parent)),
                audit("t1", "role.create", &id, 4),
            )
            .await
            .unwrap();
        parent = id;
    }
    assert_code(
        s.access
            .update_role(
                "t1",
                "b",
                None,
                Some(Some("m8".into())),
                audit("t1", "role.update", "b", 5),
            )
            .await,
        ErrorCode::LIMIT_EXCEEDED,
        "parent_role_id",
    );
    let ok = s
        .access
        .update_role(
            "t1",
            "c",
            None,
            Some(Some("m8".into())),
            audit("t1", "role.update", "c", 6),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.depth, 9);
    assert_eq!(
        s.access.role("t1", "d").await.unwrap().unwrap().path,
        "/a/m2/m3/m4/m5/m6/m7/m8/c/d/"
    );

    let root = s
        .access
        .update_role(
            "t1",
            "c",
            None,
            Some(None),
            audit("t1", "role.update", "c", 7),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (root.parent_id, root.path.as_str(), root.depth),
        (None, "/c/", 1)
    );
    let d = s.access.role("t1", "d").await.unwrap().unwrap();
    assert_eq!((d.path.as_str(), d.depth), ("/c/d/", 2));

    assert!(s
        .access
        .update_role(
            "t1",
            "zz",
            None,
            Some(None),
            audit("t1", "role.update", "zz", 8)
        )
        .await
        .unwrap()
        .is_none());
}

async fn concurrent_moves_never_make_a_cycle(s: &Stores) {
    seed(s, "t1").await;
    for id in ["a", "b"] {
        s.access
            .create_role(role("t1", id, None), audit("t1", "role.create", id, 1))
            .await
            .unwrap();
    }
    // Each move alone is valid; together they would put a under b under a.
    let mv = |id: &'static str, parent: &'static str| {
        s.access.update_role(
            "t1",
            id,
            None,
            Some(Some(parent.to_string())),
            audit("t1", "role.update", id, 2),
        )
    };
    let (x, y) = tokio::join!(mv("a", "b"), mv("b", "a"));
    let results = [x, y];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for r in results.into_iter().filter(|r| r.is_err()) {
        assert_code(r, ErrorCode::INVALID_INPUT, "parent_role_id");
    }
    let roots = s
        .access
        .list_roles("t1")
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.parent_id.is_none())
        .count();
    assert_eq!(roots, 1, "one role stays the root of the other");
}

async fn roles_in_use_are_not_deleted(s: &Stores) {
    seed(s, "t1").await;
    for (id, parent) in [("a", None), ("b", Some("a")), ("c", None), ("d", None)] {
        s.access
            .create_role(role("t1", id, parent), audit("t1", "role.create", id, 1))
            .await
            .unwrap();
    }
    let mut holder = user("t1", "u2", "holder");
    holder.role_id = Some("c".into());
    s.access
        .create_user(holder, audit("t1", "user.create", "u2", 1))
        .await
        .unwrap();
    s.access
        .create_group(
            GroupRow {
                id: "g1".into(),
                tenant_id: "t1".into(),
                name: "G".into(),
                label: "G".into(),
                members: vec![GroupMember {
                    kind: MemberKind::RoleAndSubordinates,
                    id: "d".into(),
                }],
                created_at: at(1),
            },
            audit("t1", "group.create", "g1", 1),
        )
        .await
        .unwrap();
    for (id, why) in [("a", "sub-roles"), ("c", "users"), ("d", "groups")] {
        let e = err_of(
            s.access
                .delete_role("t1", id, audit("t1", "role.delete", id, 2))
                .await,
        );
        assert_eq!(e.code, ErrorCode::DELETE_FAILED, "{id}: {e}");
        assert!(e.message.contains(why), "{id}: {e}");
    }
    assert!(!s
        .access
        .delete_role("t1", "zz", audit("t1", "role.delete", "zz", 3))
        .await
        .unwrap());
    assert!(!s
        .access
        .delete_role("t2", "b", audit("t2", "role.delete", "b", 3))
        .await
        .unwrap());
    assert!(s
        .access
        .delete_role("t1", "b", audit("t1", "role.delete", "b", 3))
        .await
        .unwrap());
    assert!(s.access.role("t1", "b").await.unwrap().is_none());
    assert_eq!(audit_actions(s, "t1").await[0], "role.delete");
    assert_eq!(
        audit_actions(s, "t1")
            .await
            .iter()
            .filter(|a| *a == "role.delete")
            .count(),
        1
    );
}

// ---------- groups ----------

fn m(kind: MemberKind, id: &str) -> GroupMember {
    GroupMember {
        kind,
        id: id.into(),
    }
}

fn group(tenant: &str, id: &str, name: &str, members: Vec<GroupMember>) -> GroupRow {
    GroupRow {
        id: id.into(),
        tenant_id: tenant.into(),
        name: name.into(),
        label: format!("Label {name}"),
        members,
        created_at: at(4),
    }
}

async fn groups_keep_their_members_in_order(s: &Stores) {
    seed(s, "t1").await;
    seed(s, "t2").await;
    s.access
        .create_role(role("t1", "r1", None), audit("t1", "role.create", "r1", 1))
        .await
        .unwrap();
    s.access
        .create_user(user("t1", "u2", "bob"), audit("t1", "user.create", "u2", 1))
        .await
        .unwrap();
    let members = vec![
        m(MemberKind::User, "u2"),
        m(MemberKind::RoleAndSubordinates, "r1"),
        m(MemberKind::User, "t1-admin"),
        m(MemberKind::User, "u2"),
        m(MemberKind::Role, "r1"),
    ];
    s.access
        .create_group(
            group("t1", "g1", "Sales", members),
            audit("t1", "group.create", "g1", 2),
        )
        .await
        .unwrap();
    let g = s.access.group("t1", "g1").await.unwrap().expect("group");
    assert_eq!(
        g.members,
        vec![
            m(MemberKind::User, "u2"),
            m(MemberKind::RoleAndSubordinates, "r1"),
            m(MemberKind::User, "t1-admin"),
            m(MemberKind::Role, "r1"),
        ],
        "in the order given, a repeated member once"
    );
    assert_eq!((g.label.as_str(), g.created_at), ("Label Sales", stored(4)));
    assert!(s.access.group("t2", "g1").await.unwrap().is_none());

    assert_code(
        s.access
            .create_group(
                group("t1", "g2", "SALES", vec![]),
                audit("t1", "group.create", "g2", 3),
            )
            .await,
        ErrorCode::DUPLICATE_VALUE,
        "name",
    );
    assert_code(
        s.access
            .create_group(
                group(
                    "t1",
                    "g2",
                    "Bad",
                    vec![m(MemberKind::User, "u2"), m(MemberKind::Role, "t2-admin")],
                ),
                audit("t1", "group.create", "g2", 3),
            )
            .await,
        ErrorCode::INVALID_INPUT,
        "members[1].role_id",
    );
    assert_code(
        s.access
            .create_group(
                group(
                    "t1",
                    "g2",
                    "Bad",
                    vec![
                        m(MemberKind::RoleAndSubordinates, "nope"),
                        m(MemberKind::User, "nope"),
                    ],
                ),
                audit("t1", "group.create", "g2", 3),
            )
            .await,
        ErrorCode::INVALID_INPUT,
        "members[0].role_and_subordinates_id",
    );
    assert_code(
        s.access
            .create_group(
                group("t1", "g2", "Bad", vec![m(MemberKind::User, "t2-admin")]),
                audit("t1", "group.create", "g2", 3),
            )
            .await,
        ErrorCode::INVALID_INPUT,
        "members[0].user_id",
    );
    assert!(s.access.group("t1", "g2").await.unwrap().is_none());

    s.access
        .create_group(
            group("t1", "g0", "_first", vec![m(MemberKind::Role, "r1")]),
            audit("t1", "group.create", "g0", 4),
        )
        .await
        .unwrap();
    let listed: Vec<(String, usize)> = s
        .access
        .list_groups("t1")
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.name, g.members.len()))
        .collect();
    assert_eq!(
        listed,
        [("_first".to_string(), 1), ("Sales".to_string(), 4)]
    );

    let updated = s
        .access
        .update_group(
            "t1",
            "g1",
            Some("Renamed".into()),
            Some(vec![m(MemberKind::User, "t1-admin")]),
            audit("t1", "group.update", "g1", 5),
        )
        .await
        .unwrap()
        .expect("found");
    assert_eq!(updated.label, "Renamed");
    assert_eq!(updated.members, vec![m(MemberKind::User, "t1-admin")]);
    assert_code(
        s.access
            .update_group(
                "t1",
                "g1",
                Some("Lost".into()),
                Some(vec![m(MemberKind::User, "nope")]),
                audit("t1", "group.update", "g1", 6),
            )
            .await,
        ErrorCode::INVALID_INPUT,
        "members[0].user_id",
    );
    assert_eq!(
        s.access.group("t1", "g1").await.unwrap().unwrap(),
        updated,
        "a refused update changes nothing"
    );
    let label_only = s
        .access
        .update_group("t1", "g1", None, None, audit("t1", "group.update", "g1", 7))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(label_only, updated);
    assert!(s
        .access
        .update_group("t1", "zz", None, None, audit("t1", "group.update", "zz", 7))
        .await
        .unwrap()
        .is_none());

    assert!(!s
        .access
        .delete_group("t2", "g1", audit("t2", "group.delete", "g1", 8))
        .await
        .unwrap());
    assert!(s
        .access
        .delete_group("t1", "g1", audit("t1", "group.delete", "g1", 8))
        .await
        .unwrap());
    assert!(s.access.group("t1", "g1").await.unwrap().is_none());
    assert_eq!(
        audit_actions(s, "t1").await,
        [
            "group.delete",
            "group.update",
            "group.update",
            "group.create",
            "group.create",
            "user.create",
            "role.create"
        ]
    );
}

// ---------- permission sets ----------

fn perm_set(tenant: &str, id: &str, name: &str) -> PermissionSetRow {
    PermissionSetRow {
        id: id.into(),
        tenant_id: tenant.into(),
        name: name.into(),
        label: format!("Label {name}"),
        description: Some("desc".into()),
        object_permissions: vec![
            ObjectPermissionRow {
                object_id: "obj-b".into(),
                flags: flags(true, false),
            },
            ObjectPermissionRow {
                object_id: "obj-a".into(),
                flags: flags(true, true),
            },
            ObjectPermissionRow {
                object_id: "obj-b".into(),
                flags: flags(true, true),
            },
        ],
        field_permissions: vec![
            FieldPermissionRow {
                object_id: "obj-b".into(),
                field_id: "f2".into(),
                read: true,
                edit: false,
            },
            FieldPermissionRow {
                object_id: "obj-a".into(),
                field_id: "f9".into(),
                read: true,
                edit: true,
            },
            FieldPermissionRow {
                object_id: "obj-b".into(),
                field_id: "f1".into(),
                read: true,
                edit: false,
            },
            FieldPermissionRow {
                object_id: "obj-b".into(),
                field_id: "f2".into(),
                read: true,
                edit: true,
            },
        ],
        customize_application: false,
        assignees: vec![],
        created_at: at(10),
        updated_at: at(10),
    }
}

async fn permission_sets_store_grants_and_assignments(s: &Stores) {
    seed(s, "t1").await;
    seed(s, "t2").await;
    for (id, name) in [("u2", "bob"), ("u3", "cy"), ("u1", "al")] {
        s.access
            .create_user(user("t1", id, name), audit("t1", "user.create", id, 1))
            .await
            .unwrap();
    }
    s.access
        .create_permission_set(
            perm_set("t1", "ps1", "Sales"),
            audit("t1", "permission_set.create", "ps1", 11),
        )
        .await
        .unwrap();
    let ps = s
        .access
        .permission_set("t1", "ps1")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        ps.object_permissions,
        vec![
            ObjectPermissionRow {
                object_id: "obj-a".into(),
                flags: flags(true, true),
            },
            ObjectPermissionRow {
                object_id: "obj-b".into(),
                flags: flags(true, true),
            },
        ],
        "by object id; an object listed twice keeps its last flags"
    );
    let fields: Vec<(&str, &str, bool)> = ps
        .field_permissions
        .iter()
        .map(|f| (f.object_id.as_str(), f.field_id.as_str(), f.edit))
        .collect();
    assert_eq!(
        fields,
        [
            ("obj-a", "f9", true),
            ("obj-b", "f1", false),
            ("obj-b", "f2", true)
        ]
    );
    assert_eq!(
        (ps.created_at, ps.updated_at, ps.description.as_deref()),
        (stored(10), stored(10), Some("desc"))
    );
    assert!(s
        .access
        .permission_set("t2", "ps1")
        .await
        .unwrap()
        .is_none());
    assert_code(
        s.access
            .create_permission_set(
                perm_set("t1", "ps2", "sales"),
                audit("t1", "permission_set.create", "ps2", 12),
            )
            .await,
        ErrorCode::DUPLICATE_VALUE,
        "name",
    );

    // Assignments: listed by time, then user id; twice is a no-op.
    for (u, secs) in [("u3", 20), ("u2", 21), ("u1", 21), ("u3", 22)] {
        assert!(s
            .access
            .assign(
                "t1",
                "ps1",
                u,
                audit("t1", "permission_set.assign", u, secs)
            )
            .await
            .unwrap());
    }
    assert_code(
        s.access
            .assign(
                "t1",
                "ps1",
                "t2-admin",
                audit("t1", "permission_set.assign", "x", 23),
            )
            .await,
        ErrorCode::INVALID_INPUT,
        "user_id",
    );
    assert!(!s
        .access
        .assign(
            "t1",
            "nope",
            "u1",
            audit("t1", "permission_set.assign", "x", 23)
        )
        .await
        .unwrap());
    assert!(!s
        .access
        .assign(
            "t2",
            "ps1",
            "t2-admin",
            audit("t2", "permission_set.assign", "x", 23)
        )
        .await
        .unwrap());
    let ps = s.access.permission_set("t1", "ps1").await.unwrap().unwrap();
    assert_eq!(ps.assignees, ["u3", "u1", "u2"]);

    let grants = s.access.user_grants("t1", "u2").await.unwrap();
    let mut objs: Vec<String> = grants.objects.iter().map(|o| o.object_id.clone()).collect();
    objs.sort();
    assert_eq!(objs, ["obj-a", "obj-b"]);
    assert_eq!(grants.fields.len(), 3);
    assert!(!grants.customize_application);
    assert_eq!(
        s.access.user_grants("t1", "t1-admin").await.unwrap(),
        UserGrants::default()
    );
    assert_eq!(
        s.access.user_grants("t2", "u2").await.unwrap(),
        UserGrants::default()
    );

    // A patch replaces what it names and stamps updated_at with the change's time.
    let updated = s
        .access
        .update_permission_set(
            "t1",
            "ps1",
            PermissionSetPatch {
                label: Some("New label".into()),
                description: Some(None),
                object_permissions: Some(vec![ObjectPermissionRow {
                    object_id: "obj-c".into(),
                    flags: ObjectFlags {
                        create: true,
                        read: true,
                        edit: true,
                        delete: true,
                        view_all: true,
                        modify_all: true,
                    },
                }]),
                field_permissions: None,
                customize_application: Some(true),
            },
            audit("t1", "permission_set.update", "ps1", 30),
        )
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        (updated.label.as_str(), updated.description.clone()),
        ("New label", None)
    );
    assert_eq!(updated.object_permissions.len(), 1);
    assert!(updated.object_permissions[0].flags.modify_all);
    assert_eq!(updated.field_permissions.len(), 3, "fields untouched");
    // The system permission reaches the set's assignees, and only them.
    assert!(updated.customize_application);
    assert!(
        s.access
            .user_grants("t1", "u2")
            .await
            .unwrap()
            .customize_application
    );
    assert!(
        !s.access
            .user_grants("t1", "t1-admin")
            .await
            .unwrap()
            .customize_application
    );
    assert_eq!(
        (updated.created_at, updated.updated_at),
        (stored(10), stored(30))
    );
    assert_eq!(updated.assignees, ["u3", "u1", "u2"]);
    assert_eq!(
        s.access.permission_set("t1", "ps1").await.unwrap(),
        Some(updated.clone())
    );
    assert!(s
        .access
        .update_permission_set(
            "t2",
            "ps1",
            PermissionSetPatch::default(),
            audit("t2", "permission_set.update", "ps1", 31),
        )
        .await
        .unwrap()
        .is_none());

    s.access
        .create_permission_set(
            PermissionSetRow {
                object_permissions: vec![],
                field_permissions: vec![],
                description: None,
                ..perm_set("t1", "ps0", "_Base")
            },
            audit("t1", "permission_set.create", "ps0", 32),
        )
        .await
        .unwrap();
    let listed = s.access.list_permission_sets("t1").await.unwrap();
    let names: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["_Base", "Sales"]);
    assert_eq!(listed[1], updated, "a listed set is the set as read alone");
    assert!(listed[0].object_permissions.is_empty() && listed[0].assignees.is_empty());

    assert!(s
        .access
        .unassign(
            "t1",
            "ps1",
            "u1",
            audit("t1", "permission_set.unassign", "u1", 40)
        )
        .await
        .unwrap());
    assert!(!s
        .access
        .unassign(
            "t1",
            "ps1",
            "u1",
            audit("t1", "permission_set.unassign", "u1", 41)
        )
        .await
        .unwrap());
    assert!(
        !s.access
            .user_grants("t1", "u1")
            .await
            .unwrap()
            .customize_application,
        "unassigned: the system permission is gone"
    );
    assert!(s
        .access
        .delete_permission_set("t1", "ps1", audit("t1", "permission_set.delete", "ps1", 42))
        .await
        .unwrap());
    assert!(!s
        .access
        .delete_permission_set("t1", "ps1", audit("t1", "permission_set.delete", "ps1", 43))
        .await
        .unwrap());
    assert_eq!(
        s.access.user_grants("t1", "u2").await.unwrap(),
        UserGrants::default(),
        "grants and assignments go with the set"
    );
    let actions = audit_actions(s, "t1").await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "permission_set.assign")
            .count(),
        4,
        "assigning twice still records the admin's change"
    );
    assert_eq!(
        &actions[..4],
        [
            "permission_set.delete",
            "permission_set.unassign",
            "permission_set.create",
            "permission_set.update"
        ]
    );
}

// ---------- connected apps, tokens, login failures ----------

fn app(tenant: &str, id: &str, name: &str, client_id: &str, run_as: &str) -> ConnectedAppRow {
    ConnectedAppRow {
        id: id.into(),
        tenant_id: tenant.into(),
        name: name.into(),
        client_id: client_id.into(),
        secret_hash: "secret-hash".into(),
        run_as_user_id: run_as.into(),
        created_at: at(50),
    }
}

async fn connected_apps_and_refresh_tokens(s: &Stores) {
    seed(s, "t1").await;
    seed(s, "t2").await;
    s.access
        .create_connected_app(
            app("t1", "a1", "Zapier", "cid-1", "t1-admin"),
            audit("t1", "connected_app.create", "a1", 50),
        )
        .await
        .unwrap();
    s.access
        .create_connected_app(
            app("t1", "a2", "_cli", "cid-2", "t1-admin"),
            audit("t1", "connected_app.create", "a2", 51),
        )
        .await
        .unwrap();
    assert_code(
        s.access
            .create_connected_app(
                app("t1", "a3", "ZAPIER", "cid-3", "t1-admin"),
                audit("t1", "connected_app.create", "a3", 52),
            )
            .await,
        ErrorCode::DUPLICATE_VALUE,
        "name",
    );
    assert_code(
        s.access
            .create_connected_app(
                app("t1", "a3", "Other", "cid-3", "t2-admin"),
                audit("t1", "connected_app.create", "a3", 52),
            )
            .await,
        ErrorCode::INVALID_INPUT,
        "run_as_user_id",
    );
    let a1 = s.access.connected_app("t1", "a1").await.unwrap().unwrap();
    assert_eq!(a1.created_at, stored(50));
    assert_eq!(
        s.access.connected_app_by_client_id("cid-1").await.unwrap(),
        Some(a1.clone())
    );
    assert!(s.access.connected_app("t2", "a1").await.unwrap().is_none());
    assert!(s
        .access
        .connected_app_by_client_id("cid-9")
        .await
        .unwrap()
        .is_none());
    let names: Vec<String> = s
        .access
        .list_connected_apps("t1")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["_cli", "Zapier"]);
    assert!(!s
        .access
        .delete_connected_app("t2", "a1", audit("t2", "connected_app.delete", "a1", 53))
        .await
        .unwrap());
    assert!(s
        .access
        .delete_connected_app("t1", "a1", audit("t1", "connected_app.delete", "a1", 53))
        .await
        .unwrap());
    assert!(s
        .access
        .connected_app_by_client_id("cid-1")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        audit_actions(s, "t1").await,
        [
            "connected_app.delete",
            "connected_app.create",
            "connected_app.create"
        ]
    );

    s.access
        .create_refresh_token(RefreshTokenRow {
            token_hash: "rt".into(),
            tenant_id: "t1".into(),
            user_id: "t1-admin".into(),
            issued_at: at(60),
            revoked: false,
            expires_at: at(60 + 86_400),
            family_id: "fam".into(),
        })
        .await
        .unwrap();
    let rt = s.access.refresh_token("rt").await.unwrap().unwrap();
    assert_eq!((rt.issued_at, rt.revoked), (stored(60), false));
    assert!(s.access.revoke_refresh_token("rt").await.unwrap());
    assert!(s.access.refresh_token("rt").await.unwrap().unwrap().revoked);
    assert!(!s.access.revoke_refresh_token("nope").await.unwrap());
    assert!(s.access.refresh_token("nope").await.unwrap().is_none());
}

async fn login_failures_count_within_a_window(s: &Stores) {
    let w = 60;
    assert_eq!(
        s.access
            .record_login_failure("user", "ann", at(0), w)
            .await
            .unwrap(),
        (1, at(0)),
        "a new window starts now"
    );
    assert_eq!(
        s.access
            .record_login_failure("user", "ann", at(30), w)
            .await
            .unwrap(),
        (2, stored(0))
    );
    assert_eq!(
        s.access
            .record_login_failure("user", "ann", at(59), w)
            .await
            .unwrap(),
        (3, stored(0))
    );
    assert_eq!(
        s.access.login_failures("user", "ann").await.unwrap(),
        Some((3, stored(0)))
    );
    assert_eq!(
        s.access
            .record_login_failure("ip", "ann", at(59), w)
            .await
            .unwrap(),
        (1, at(59)),
        "scopes count apart"
    );
    assert_eq!(
        s.access
            .record_login_failure("user", "ann", at(60), w)
            .await
            .unwrap(),
        (1, at(60)),
        "the window is over after window_secs"
    );
    assert_eq!(
        s.access.login_failures("user", "ann").await.unwrap(),
        Some((1, stored(60)))
    );
    // A new window elsewhere forgets windows that are over.
    assert_eq!(
        s.access
            .record_login_failure("user", "bob", at(200), w)
            .await
            .unwrap()
            .0,
        1
    );
    assert_eq!(s.access.login_failures("user", "ann").await.unwrap(), None);
    assert_eq!(s.access.login_failures("ip", "ann").await.unwrap(), None);
    s.access.clear_login_failures("user", "bob").await.unwrap();
    s.access.clear_login_failures("user", "bob").await.unwrap();
    assert_eq!(s.access.login_failures("user", "bob").await.unwrap(), None);
}

async fn concurrent_login_failures_all_count(s: &Stores) {
    let hit = |secs: i64| s.access.record_login_failure("user", "eve", at(secs), 600);
    s.access
        .record_login_failure("user", "eve", at(0), 600)
        .await
        .unwrap();
    let (a, b, c, d, e) = tokio::join!(hit(1), hit(2), hit(3), hit(4), hit(5));
    let mut counts: Vec<i64> = [a, b, c, d, e].into_iter().map(|r| r.unwrap().0).collect();
    counts.sort();
    assert_eq!(counts, [2, 3, 4, 5, 6]);
    assert_eq!(
        s.access.login_failures("user", "eve").await.unwrap(),
        Some((6, stored(0)))
    );
}

fn refresh_row(hash: &str, user: &str, family: &str, issued: i64) -> RefreshTokenRow {
    RefreshTokenRow {
        token_hash: hash.into(),
        tenant_id: "t1".into(),
        user_id: user.into(),
        issued_at: at(issued),
        revoked: false,
        expires_at: at(issued + 100),
        family_id: family.into(),
    }
}

async fn refresh_tokens_rotate_and_a_reuse_revokes_the_family(s: &Stores) {
    s.access
        .create_refresh_token(refresh_row("r1", "u1", "r1", 0))
        .await
        .unwrap();
    s.access
        .create_refresh_token(refresh_row("other", "u1", "other", 0))
        .await
        .unwrap();
    // The successor takes the old token's user and family, whatever it says.
    let next = refresh_row("r2", "nobody", "wrong", 10);
    assert_eq!(
        s.access
            .rotate_refresh_token("r1", next, at(10))
            .await
            .unwrap(),
        RefreshRotation::Rotated {
            tenant_id: "t1".into(),
            user_id: "u1".into()
        }
    );
    let r2 = s.access.refresh_token("r2").await.unwrap().unwrap();
    assert_eq!(
        (
            r2.user_id.as_str(),
            r2.family_id.as_str(),
            r2.revoked,
            r2.expires_at
        ),
        ("u1", "r1", false, stored(110))
    );
    assert!(s.access.refresh_token("r1").await.unwrap().unwrap().revoked);
    // r1 again: the family (r2) is revoked, the other family is not.
    assert_eq!(
        s.access
            .rotate_refresh_token("r1", refresh_row("r3", "u1", "x", 20), at(20))
            .await
            .unwrap(),
        RefreshRotation::Reused {
            tenant_id: "t1".into(),
            user_id: "u1".into()
        }
    );
    assert!(s.access.refresh_token("r3").await.unwrap().is_none());
    assert!(s.access.refresh_token("r2").await.unwrap().unwrap().revoked);
    assert!(
        !s.access
            .refresh_token("other")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    // Expired or unknown: invalid, nothing stored.
    for (old, now) in [("other", 100), ("nope", 0)] {
        assert_eq!(
            s.access
                .rotate_refresh_token(old, refresh_row("r4", "u1", "x", now), at(now))
                .await
                .unwrap(),
            RefreshRotation::Invalid
        );
    }
    assert!(s.access.refresh_token("r4").await.unwrap().is_none());
}

async fn concurrent_uses_of_one_refresh_token_rotate_once(s: &Stores) {
    s.access
        .create_refresh_token(refresh_row("r1", "u1", "r1", 0))
        .await
        .unwrap();
    let use_it = |h: &'static str| {
        s.access
            .rotate_refresh_token("r1", refresh_row(h, "u1", "r1", 1), at(1))
    };
    let (a, b, c) = tokio::join!(use_it("a"), use_it("b"), use_it("c"));
    let outcomes = [a.unwrap(), b.unwrap(), c.unwrap()];
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, RefreshRotation::Rotated { .. }))
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
    for h in ["a", "b", "c"] {
        if let Some(r) = s.access.refresh_token(h).await.unwrap() {
            assert!(r.revoked, "the reuse revoked the winner's successor too");
        }
    }
}

async fn setting_a_password_revokes_all_but_the_kept_session(s: &Stores) {
    seed(s, "t1").await;
    s.access
        .create_user(user("t1", "u2", "bob"), audit("t1", "user.create", "u2", 1))
        .await
        .unwrap();
    for h in ["keep", "s1", "s2"] {
        s.meta
            .create_session(session("t1", "u2", h, 10))
            .await
            .unwrap();
    }
    s.meta
        .create_session(session("t1", "t1-admin", "admin", 10))
        .await
        .unwrap();
    s.access
        .create_refresh_token(refresh_row("r1", "u2", "r1", 0))
        .await
        .unwrap();
    let revoked = s
        .access
        .set_password(
            "t1",
            "u2",
            "new-hash",
            true,
            Some("keep"),
            audit("t1", "user.password_reset", "u2", 20),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.len(), 2);
    assert!(revoked.contains(&"s1".to_string()) && revoked.contains(&"s2".to_string()));
    assert!(!s.meta.session("keep").await.unwrap().unwrap().revoked);
    assert!(!s.meta.session("admin").await.unwrap().unwrap().revoked);
    assert!(s.meta.session("s1").await.unwrap().unwrap().revoked);
    assert!(s.access.refresh_token("r1").await.unwrap().unwrap().revoked);
    let u = s.meta.user("t1", "u2").await.unwrap().unwrap();
    assert_eq!(
        (u.password_hash.as_str(), u.must_change_password),
        ("new-hash", true)
    );
    assert_eq!(
        audit_actions(s, "t1").await.first().map(String::as_str),
        Some("user.password_reset")
    );
    // Another tenant's user is not found and nothing changes.
    assert!(s
        .access
        .set_password(
            "t2",
            "u2",
            "x",
            false,
            None,
            audit("t2", "user.password_reset", "u2", 21)
        )
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.meta
            .user("t1", "u2")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "new-hash"
    );
}

async fn expired_credentials_are_purged(s: &Stores) {
    seed(s, "t1").await;
    // Sessions live an hour from `issued`; refresh tokens 100 s.
    s.meta
        .create_session(session("t1", "t1-admin", "old", 0))
        .await
        .unwrap();
    s.meta
        .create_session(session("t1", "t1-admin", "new", 1000))
        .await
        .unwrap();
    s.access
        .create_refresh_token(refresh_row("r-old", "t1-admin", "r-old", 0))
        .await
        .unwrap();
    s.access
        .create_refresh_token(refresh_row("r-new", "t1-admin", "r-new", 3650))
        .await
        .unwrap();
    // (A new window deletes the windows over before it: bob's first.)
    s.access
        .record_login_failure("user", "bob", at(3500), 300)
        .await
        .unwrap();
    s.access
        .record_login_failure("user", "ann", at(0), 300)
        .await
        .unwrap();
    let purged = s.access.purge_expired(at(3700), 300).await.unwrap();
    assert_eq!(
        purged,
        PurgedCredentials {
            sessions: 1,
            refresh_tokens: 1,
            login_failures: 1
        }
    );
    assert!(s.meta.session("old").await.unwrap().is_none());
    assert!(s.meta.session("new").await.unwrap().is_some());
    assert!(s.access.refresh_token("r-old").await.unwrap().is_none());
    assert!(s.access.refresh_token("r-new").await.unwrap().is_some());
    assert_eq!(s.access.login_failures("user", "ann").await.unwrap(), None);
    assert!(s
        .access
        .login_failures("user", "bob")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        s.access.purge_expired(at(3700), 300).await.unwrap(),
        PurgedCredentials::default()
    );
}

async fn a_forgiven_attempt_is_taken_back(s: &Stores) {
    for secs in 0..3 {
        s.access
            .record_login_failure("address", "10.0.0.1", at(secs), 300)
            .await
            .unwrap();
    }
    s.access
        .forgive_login_failure("address", "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(
        s.access
            .login_failures("address", "10.0.0.1")
            .await
            .unwrap(),
        Some((2, stored(0)))
    );
    for _ in 0..3 {
        s.access
            .forgive_login_failure("address", "10.0.0.1")
            .await
            .unwrap();
    }
    assert_eq!(
        s.access
            .login_failures("address", "10.0.0.1")
            .await
            .unwrap(),
        Some((0, stored(0))),
        "never below zero"
    );
    s.access
        .forgive_login_failure("address", "unknown")
        .await
        .unwrap();
    assert_eq!(
        s.access.login_failures("address", "unknown").await.unwrap(),
        None
    );
}

// ---------- audit log ----------

async fn the_audit_log_filters_and_pages_newest_first(s: &Stores) {
    for (i, (action, target)) in [
        ("user.create", "u1"),
        ("role.create", "r1"),
        ("user.update", "u1"),
        ("object.update", "o1"),
        ("user.update", "u2"),
    ]
    .iter()
    .enumerate()
    {
        s.access
            .append_audit(audit("t1", action, target, i as i64 * 10))
            .await
            .unwrap();
    }
    s.access
        .append_audit(audit("t2", "user.create", "u1", 5))
        .await
        .unwrap();
    let q = |f: AuditFilter| s.access.audit("t1", f);
    let all = q(AuditFilter {
        limit: 100,
        ..AuditFilter::default()
    })
    .await
    .unwrap();
    let targets: Vec<&str> = all.iter().map(|r| r.entry.target_id.as_str()).collect();
    assert_eq!(targets, ["u2", "o1", "u1", "r1", "u1"]);
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq));
    assert_eq!(all[0].entry.at, stored(40));
    assert_eq!(all[0].entry, {
        let mut e = audit("t1", "user.update", "u2", 40);
        e.at = stored(40);
        e
    });

    let seqs = |rows: Vec<AuditRow>| -> Vec<i64> { rows.into_iter().map(|r| r.seq).collect() };
    let by_action = q(AuditFilter {
        action: Some("user.update".into()),
        limit: 100,
        ..AuditFilter::default()
    })
    .await
    .unwrap();
    assert_eq!(seqs(by_action), [all[0].seq, all[2].seq]);
    let by_target = q(AuditFilter {
        target_id: Some("u1".into()),
        limit: 100,
        ..AuditFilter::default()
    })
    .await
    .unwrap();
    assert_eq!(seqs(by_target), [all[2].seq, all[4].seq]);
    let by_type = q(AuditFilter {
        target_id: Some("role".into()),
        limit: 100,
        ..AuditFilter::default()
    })
    .await
    .unwrap();
    assert_eq!(seqs(by_type), [all[3].seq], "target matches the type too");
    // `since` is inclusive at millisecond precision.
    let since = q(AuditFilter {
        since: Some(at(20) + chrono::Duration::microseconds(500)),
        limit: 100,
        ..AuditFilter::default()
    })
    .await
    .unwrap();
    assert_eq!(seqs(since), [all[0].seq, all[1].seq, all[2].seq]);
    let page = q(AuditFilter {
        before_seq: Some(all[1].seq),
        limit: 2,
        ..AuditFilter::default()
    })
    .await
    .unwrap();
    assert_eq!(seqs(page), [all[2].seq, all[3].seq]);
    assert!(
        q(AuditFilter::default()).await.unwrap().is_empty(),
        "limit 0"
    );
    assert_eq!(
        s.access
            .audit(
                "t3",
                AuditFilter {
                    limit: 9,
                    ..AuditFilter::default()
                }
            )
            .await
            .unwrap(),
        vec![]
    );
}

// ---------- idempotency keys ----------

fn response(body: &[u8]) -> KeptResponse {
    KeptResponse {
        status: 201,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("location".into(), "/x/1".into()),
        ],
        body: Some(body.to_vec()),
    }
}

async fn idempotency_keys_reserve_complete_and_expire(s: &Stores) {
    let keys = &s.idempotency;
    let Reservation::Reserved { token } =
        keys.reserve("t1", "k", "fp", 1_000, 9_000).await.unwrap()
    else {
        panic!("the first reservation wins");
    };
    let Reservation::Existing(rec) = keys.reserve("t1", "k", "fp2", 1_001, 9_001).await.unwrap()
    else {
        panic!("the second sees the first");
    };
    assert_eq!(
        (rec.fingerprint.as_str(), rec.created_at_ms, rec.state),
        ("fp", 1_000, KeyState::Pending)
    );
    assert!(matches!(
        keys.reserve("t2", "k", "fp", 1_000, 9_000).await.unwrap(),
        Reservation::Reserved { .. }
    ));
    assert!(!keys
        .complete("t1", "k", "not-the-token", response(b"{}"))
        .await
        .unwrap());
    let body: Vec<u8> = (0..=255u8).collect();
    assert!(keys
        .complete("t1", "k", &token, response(&body))
        .await
        .unwrap());
    assert!(
        !keys
            .complete("t1", "k", &token, response(b"again"))
            .await
            .unwrap(),
        "completes once"
    );
    assert_eq!(
        keys.get("t1", "k", 2_000).await.unwrap().unwrap().state,
        KeyState::Complete(response(&body)),
        "the body byte for byte"
    );
    keys.release("t1", "k", &token).await.unwrap();
    assert!(
        keys.get("t1", "k", 2_000).await.unwrap().is_some(),
        "a completed key is not released"
    );
    assert!(
        keys.get("t1", "k", 9_000).await.unwrap().is_none(),
        "expired"
    );
    assert!(keys.get("t3", "k", 2_000).await.unwrap().is_none());

    let Reservation::Reserved { token: t2 } = keys.reserve("t1", "k2", "fp", 0, 100).await.unwrap()
    else {
        panic!("reserve");
    };
    let mut unkept = response(b"");
    unkept.body = None;
    unkept.headers.clear();
    assert!(keys
        .complete("t1", "k2", &t2, unkept.clone())
        .await
        .unwrap());
    assert_eq!(
        keys.get("t1", "k2", 1).await.unwrap().unwrap().state,
        KeyState::Complete(unkept)
    );
    let Reservation::Reserved { token: t3 } = keys.reserve("t1", "k3", "fp", 0, 100).await.unwrap()
    else {
        panic!("reserve");
    };
    keys.release("t1", "k3", &t3).await.unwrap();
    assert!(keys.get("t1", "k3", 1).await.unwrap().is_none(), "released");
    // An expired key is replaced; its old token completes nothing.
    assert!(matches!(
        keys.reserve("t1", "k2", "new", 100, 200).await.unwrap(),
        Reservation::Reserved { .. }
    ));
    assert!(!keys
        .complete("t1", "k2", &t2, response(b"y"))
        .await
        .unwrap());
    assert_eq!(keys.purge_expired(199).await.unwrap(), 0);
    assert_eq!(keys.purge_expired(200).await.unwrap(), 1);
    assert_eq!(keys.purge_expired(10_000).await.unwrap(), 2);
}

async fn concurrent_reservations_of_one_key_admit_one(s: &Stores) {
    let keys = &s.idempotency;
    let r = |fp: &'static str| keys.reserve("t1", "same", fp, 10, 1_000);
    let (a, b, c, d) = tokio::join!(r("a"), r("b"), r("c"), r("d"));
    let results: Vec<Reservation> = [a, b, c, d].into_iter().map(Result::unwrap).collect();
    let winners = results
        .iter()
        .filter(|r| matches!(r, Reservation::Reserved { .. }))
        .count();
    assert_eq!(winners, 1, "{results:?}");
    let fps: std::collections::HashSet<String> = results
        .iter()
        .filter_map(|r| match r {
            Reservation::Existing(rec) => Some(rec.fingerprint.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(fps.len(), 1, "every loser sees the one winner: {fps:?}");
}

// ---------- the two backends ----------

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let stores = crate::common::sqlite().await;
                    super::$case(&stores).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let stores = crate::common::postgres().await;
                    super::$case(&stores).await;
                }
            )*
        }
    };
}

conformance!(
    tenants_users_and_sessions,
    taken_subdomains_and_usernames_are_refused,
    objects_are_listed_in_byte_order_of_their_lowercased_names,
    object_names_are_unique_per_tenant,
    object_updates_are_optimistically_locked,
    concurrent_tenants_with_one_subdomain_create_one,
    concurrent_updates_of_one_version_commit_once,
    users_are_created_with_their_audit_row,
    users_are_listed_in_byte_order_of_their_lowercased_names,
    deactivating_a_user_revokes_sessions_and_refresh_tokens,
    roles_keep_materialized_paths,
    moving_a_role_moves_its_subtree,
    concurrent_moves_never_make_a_cycle,
    roles_in_use_are_not_deleted,
    groups_keep_their_members_in_order,
    permission_sets_store_grants_and_assignments,
    connected_apps_and_refresh_tokens,
    login_failures_count_within_a_window,
    concurrent_login_failures_all_count,
    refresh_tokens_rotate_and_a_reuse_revokes_the_family,
    concurrent_uses_of_one_refresh_token_rotate_once,
    setting_a_password_revokes_all_but_the_kept_session,
    expired_credentials_are_purged,
    a_forgiven_attempt_is_taken_back,
    the_audit_log_filters_and_pages_newest_first,
    idempotency_keys_reserve_complete_and_expire,
    concurrent_reservations_of_one_key_admit_one,
);
