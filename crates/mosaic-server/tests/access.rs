//! Access control: the admin API, object permissions and field-level
//! security on the Data API, revocation without cache lag, the refresh-token
//! and client-credentials grants, login rate limiting, tenant isolation of
//! every admin endpoint, and the role hierarchy.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ADMIN: &str = "/services/admin/v1";
const PASSWORD: &str = "correct-horse-battery";

async fn token_request(base: &str, form: &[(&str, &str)]) -> (StatusCode, Value, Option<String>) {
    let res = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let s = res.status();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (s, res.json().await.unwrap(), retry)
}

async fn password_grant(base: &str, user: &str, pass: &str) -> (StatusCode, Value, Option<String>) {
    token_request(
        base,
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", pass),
        ],
    )
    .await
}

async fn revoke(base: &str, token: &str) {
    let res = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/revoke"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// Creates a user through the admin API and logs them in.
async fn user(admin: &Client, name: &str, profile: &str) -> (String, Client) {
    let username = format!("{name}-{}@example.test", admin.tenant_id);
    let (s, v) = admin
        .post(
            &format!("{ADMIN}/users"),
            json!({"username": username, "password": PASSWORD, "email": "u@example.test", "profile": profile}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (s, t, _) = password_grant(&admin.base, &username, PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let mut c = admin.with_token(t["access_token"].as_str().unwrap());
    c.user_id = id.clone();
    c.username = username;
    (id, c)
}

async fn permission_set(admin: &Client, body: Value) -> String {
    let (s, v) = admin.post(&format!("{ADMIN}/permission-sets"), body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_string()
}

async fn assign(admin: &Client, set: &str, user: &str) {
    let (s, v) = admin
        .post(
            &format!("{ADMIN}/permission-sets/{set}/assignments"),
            json!({"user_id": user}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

fn fields_of(v: &Value) -> Vec<String> {
    v.as_array()
        .and_then(|a| a.first())
        .and_then(|e| e["fields"].as_array())
        .map(|f| {
            f.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn query_path(q: &str) -> String {
    format!(
        "{DATA}/query?{}",
        serde_urlencoded::to_string([("q", q)]).unwrap()
    )
}

async fn secret_object(admin: &Client) {
    admin
        .create_object(json!({
            "api_name": "Secret__c",
            "fields": [{"api_name": "Code__c", "data_type": "text", "length": 20, "is_external_id": true, "is_unique": true}]
        }))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_shapes_and_errors() {
    let server = TestServer::start().await;
    let a = server.tenant().await;

    // Users.
    let (uid, std_user) = user(&a, "ann", "standard").await;
    let (s, v) = a.get(&format!("{ADMIN}/users/{uid}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["profile"], "standard");
    assert_eq!(v["active"], true);
    assert_eq!(v["email"], "u@example.test");
    assert!(v.get("password").is_none() && v.get("password_hash").is_none());
    let (s, v) = a
        .post(
            &format!("{ADMIN}/users"),
            json!({"username": std_user.username, "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(codes(&v), vec!["DUPLICATE_VALUE"]);
    assert_eq!(fields_of(&v), vec!["username"]);
    let (s, v) = a
        .post(
            &format!("{ADMIN}/users"),
            json!({"username": "x@example.test", "password": PASSWORD, "colour": "red"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(fields_of(&v), vec!["colour"], "{v}");
    for (body, field) in [
        (
            json!({"username": "y@example.test", "password": PASSWORD, "profile": "root"}),
            "profile",
        ),
        (
            json!({"username": "y@example.test", "password": "short"}),
            "password",
        ),
        (
            json!({"username": "y @example.test", "password": PASSWORD}),
            "username",
        ),
        (json!({"password": PASSWORD}), "username"),
        (
            json!({"username": "y@example.test", "password": PASSWORD, "role_id": "nope"}),
            "role_id",
        ),
        (
            json!({"username": "y@example.test", "password": PASSWORD, "email": "not-mail"}),
            "email",
        ),
    ] {
        let (s, v) = a.post(&format!("{ADMIN}/users"), body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(fields_of(&v), vec![field], "{body}: {v}");
    }
    let (s, v) = a
        .patch(
            &format!("{ADMIN}/users/{uid}"),
            json!({"email": "new@example.test"}),
        )
        .await;
    assert_eq!(
        (s, v["email"].as_str()),
        (StatusCode::OK, Some("new@example.test"))
    );
    let (s, v) = a
        .patch(&format!("{ADMIN}/users/{uid}"), json!({"activ": false}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(fields_of(&v), vec!["activ"]);
    let (s, v) = a
        .patch(&format!("{ADMIN}/users/{uid}"), json!({"active": "yes"}))
        .await;
    assert_eq!(
        (s, fields_of(&v)),
        (StatusCode::BAD_REQUEST, vec!["active".to_string()]),
        "{v}"
    );
    let (s, v) = a
        .patch(
            &format!("{ADMIN}/users/{}", a.user_id),
            json!({"profile": "standard"}),
        )
        .await;
    assert_eq!(
        (s, fields_of(&v)),
        (StatusCode::BAD_REQUEST, vec!["profile".to_string()]),
        "no self-demotion"
    );
    let (s, v) = a.get(&format!("{ADMIN}/users")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["users"].as_array().unwrap().len(), 2);
    for missing in ["0190a3d2-0000-7000-8000-000000000000", "garbage"] {
        let (s, v) = a.get(&format!("{ADMIN}/users/{missing}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        assert_eq!(codes(&v), vec!["NOT_FOUND"]);
    }

    // Roles.
    let (s, role) = a
        .post(
            &format!("{ADMIN}/roles"),
            json!({"name": "CEO", "label": "Chief"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{role}");
    let rid = role["id"].as_str().unwrap();
    assert_eq!(role["depth"], 1);
    assert_eq!(role["path"], format!("/{rid}/"));
    let (s, v) = a
        .post(&format!("{ADMIN}/roles"), json!({"name": "ceo"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(fields_of(&v), vec!["name"]);
    let (s, v) = a
        .post(&format!("{ADMIN}/roles"), json!({"name": "bad name"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(fields_of(&v), vec!["name"]);
    let (s, v) = a
        .patch(&format!("{ADMIN}/users/{uid}"), json!({"role_id": rid}))
        .await;
    assert_eq!(
        (s, v["role_id"].as_str()),
        (StatusCode::OK, Some(rid)),
        "{v}"
    );
    let (s, v) = a.delete(&format!("{ADMIN}/roles/{rid}")).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "a held role is not deleted: {v}"
    );
    assert_eq!(codes(&v), vec!["DELETE_FAILED"]);

    // Groups.
    let (s, g) = a
        .post(
            &format!("{ADMIN}/groups"),
            json!({"name": "Sales", "members": [{"user_id": uid}, {"role_and_subordinates_id": rid}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_str().unwrap();
    assert_eq!(
        g["members"],
        json!([{"user_id": uid}, {"role_and_subordinates_id": rid}])
    );
    let (s, v) = a
        .post(
            &format!("{ADMIN}/groups"),
            json!({"name": "Other", "members": [{"user_id": "0190a3d2-0000-7000-8000-000000000000"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(fields_of(&v), vec!["members[0].user_id"], "{v}");
    for (members, field) in [
        (json!([{"user_id": 5}]), "members[0].user_id"),
        (
            json!([{"user_id": uid}, {"group_id": uid}]),
            "members[1].group_id",
        ),
    ] {
        let (s, v) = a
            .post(
                &format!("{ADMIN}/groups"),
                json!({"name": "Other", "members": members}),
            )
            .await;
        assert_eq!(
            (s, fields_of(&v)),
            (StatusCode::BAD_REQUEST, vec![field.to_string()]),
            "{v}"
        );
    }
    let (s, v) = a
        .post(
            &format!("{ADMIN}/groups"),
            json!({"name": "Other", "members": [{"user_id": uid, "role_id": rid}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(fields_of(&v), vec!["members[0]"], "{v}");
    let (s, v) = a
        .patch(
            &format!("{ADMIN}/groups/{gid}"),
            json!({"members": [{"role_id": rid}]}),
        )
        .await;
    assert_eq!(
        (s, v["members"].clone()),
        (StatusCode::OK, json!([{"role_id": rid}]))
    );
    let (s, v) = a.get(&format!("{ADMIN}/groups")).await;
    assert_eq!(
        (s, v["groups"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    let (s, _) = a.delete(&format!("{ADMIN}/groups/{gid}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = a.get(&format!("{ADMIN}/groups/{gid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Permission sets.
    secret_object(&a).await;
    let (s, v) = a
        .post(
            &format!("{ADMIN}/permission-sets"),
            json!({"name": "Bad", "object_permissions": [{"object": "Nope__c", "read": true}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(fields_of(&v), vec!["object_permissions[0].object"]);
    let (s, v) = a
        .post(
            &format!("{ADMIN}/permission-sets"),
            json!({"name": "Bad", "field_permissions": [{"object": "Secret__c", "field": "Nope__c", "read": true}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(fields_of(&v), vec!["field_permissions[0].field"]);
    let (s, v) = a
        .post(
            &format!("{ADMIN}/permission-sets"),
            json!({"name": "Bad", "object_permissions": [{"object": "Secret__c", "raed": true}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(fields_of(&v), vec!["object_permissions[0].raed"]);
    let ps = permission_set(
        &a,
        json!({"name": "Readers", "label": "Secret readers",
               "object_permissions": [{"object": "Secret__c", "edit": true}],
               "field_permissions": [{"object": "Secret__c", "field": "Code__c", "read": true}]}),
    )
    .await;
    let (s, v) = a
        .post(
            &format!("{ADMIN}/permission-sets"),
            json!({"name": "readers"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assign(&a, &ps, &uid).await;
    let (s, v) = a
        .post(
            &format!("{ADMIN}/permission-sets/{ps}/assignments"),
            json!({"user_id": "0190a3d2-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(fields_of(&v), vec!["user_id"]);
    let (s, v) = a.get(&format!("{ADMIN}/permission-sets/{ps}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["object_permissions"],
        json!([{"object": "Secret__c", "create": false, "read": true, "edit": true,
                "delete": false, "view_all": false, "modify_all": false}]),
        "edit implies read"
    );
    assert_eq!(
        v["field_permissions"],
        json!([{"object": "Secret__c", "field": "Code__c", "read": true, "edit": false}])
    );
    assert_eq!(v["assignments"], json!([{"user_id": uid}]));
    let (s, v) = a
        .patch(
            &format!("{ADMIN}/permission-sets/{ps}"),
            json!({"label": "Renamed"}),
        )
        .await;
    assert_eq!((s, v["label"].as_str()), (StatusCode::OK, Some("Renamed")));
    let (s, v) = a.get(&format!("{ADMIN}/permission-sets")).await;
    assert_eq!(
        (s, v["permission_sets"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    let (s, _) = a
        .delete(&format!("{ADMIN}/permission-sets/{ps}/assignments/{uid}"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = a
        .delete(&format!("{ADMIN}/permission-sets/{ps}/assignments/{uid}"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Only system administrators reach the admin and metadata APIs.
    for path in [
        format!("{ADMIN}/users"),
        format!("{ADMIN}/roles"),
        format!("{ADMIN}/groups"),
        format!("{ADMIN}/permission-sets"),
        format!("{ADMIN}/connected-apps"),
        format!("{ADMIN}/audit"),
        format!("{META}/objects"),
    ] {
        let (s, v) = std_user.get(&path).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
        assert_eq!(codes(&v), vec!["INSUFFICIENT_ACCESS"]);
    }
    let (s, v) = std_user
        .post(
            &format!("{ADMIN}/users"),
            json!({"username": "z@example.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (s, codes(&v)),
        (
            StatusCode::FORBIDDEN,
            vec!["INSUFFICIENT_ACCESS".to_string()]
        )
    );

    // The audit log: who, what, when; newest first; filters and paging.
    let (s, v) = a.get(&format!("{ADMIN}/audit")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let entries = v["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"permission_set.unassign"));
    assert_eq!(actions.last(), Some(&"user.create"));
    for want in [
        "user.update",
        "role.create",
        "group.create",
        "group.update",
        "group.delete",
        "permission_set.create",
        "permission_set.assign",
        "permission_set.update",
    ] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
    assert!(entries
        .iter()
        .all(|e| e["actor_user_id"] == a.user_id.as_str()));
    assert!(
        !v.to_string().contains(PASSWORD),
        "no secrets in the audit log"
    );
    let (_, v) = a.get(&format!("{ADMIN}/audit?action=user.create")).await;
    let e = v["entries"].as_array().unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["target_type"], "user");
    assert_eq!(e[0]["target_id"], uid.as_str());
    assert_eq!(e[0]["detail"]["profile"], "standard");
    let (_, v) = a.get(&format!("{ADMIN}/audit?target={uid}")).await;
    assert!(v["entries"].as_array().unwrap().len() >= 3, "{v}");
    let (_, v) = a
        .get(&format!("{ADMIN}/audit?since=2999-01-01T00:00:00Z"))
        .await;
    assert_eq!(v["entries"], json!([]));
    let (_, p1) = a.get(&format!("{ADMIN}/audit?limit=2")).await;
    assert_eq!(p1["entries"].as_array().unwrap().len(), 2);
    let next = p1["next"].as_str().expect("next page").to_string();
    let (_, p2) = a.get(&next).await;
    let p2e = p2["entries"].as_array().unwrap();
    assert_eq!(p2e.len(), 2);
    assert!(p2e[0]["seq"].as_i64() < p1["entries"][1]["seq"].as_i64());
    let (s, v) = a.get(&format!("{ADMIN}/audit?since=yesterday")).await;
    assert_eq!(
        (s, fields_of(&v)),
        (StatusCode::BAD_REQUEST, vec!["since".to_string()])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_user_sees_nothing_until_granted() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    secret_object(&a).await;
    let rec = a
        .create_record("Secret__c", json!({"Name": "One", "Code__c": "X1"}))
        .await;
    let (uid, u) = user(&a, "bob", "standard").await;

    let (s, v) = u.get(&format!("{DATA}/sobjects")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["sobjects"], json!([]), "describe global lists nothing");
    let (s, v) = u.get(&format!("{DATA}/sobjects/Secret__c/describe")).await;
    assert_eq!(
        (s, codes(&v)),
        (StatusCode::NOT_FOUND, vec!["NOT_FOUND".to_string()])
    );
    let (_, unknown) = u.get(&format!("{DATA}/sobjects/Nothing__c/describe")).await;
    assert_eq!(
        v[0]["message"].as_str().unwrap().replace("Secret__c", "X"),
        unknown[0]["message"]
            .as_str()
            .unwrap()
            .replace("Nothing__c", "X"),
        "an unreadable object looks like a missing one"
    );
    let (s, _) = u.get(&format!("{DATA}/sobjects/Secret__c/{rec}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = u.get(&format!("{DATA}/sobjects/Secret__c")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = u
        .get(&format!("{DATA}/sobjects/Secret__c?fields=Name"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = u.get(&query_path("SELECT Name FROM Secret__c")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&v), vec!["INVALID_TYPE"]);
    assert!(v[0]["message"]
        .as_str()
        .unwrap()
        .contains("sObject type 'Secret__c' is not supported"));
    let (s, v) = u
        .get(&format!(
            "{DATA}/search?q=FIND%20%7BOne%7D%20RETURNING%20Secret__c(Name)"
        ))
        .await;
    assert_eq!(
        (s, codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["INVALID_TYPE".to_string()])
    );
    let (s, _) = u
        .post(
            &format!("{DATA}/sobjects/Secret__c"),
            json!({"Name": "Mine"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = u
        .patch(
            &format!("{DATA}/sobjects/Secret__c/{rec}"),
            json!({"Name": "X"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = u.delete(&format!("{DATA}/sobjects/Secret__c/{rec}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = u
        .get(&format!("{DATA}/sobjects/Secret__c/Code__c/X1"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Read only: visible, but writes are INSUFFICIENT_ACCESS.
    let ps = permission_set(
        &a,
        json!({"name": "Read", "object_permissions": [{"object": "Secret__c", "read": true}],
               "field_permissions": [{"object": "Secret__c", "field": "Code__c", "read": true}]}),
    )
    .await;
    assign(&a, &ps, &uid).await;
    let (s, v) = u.get(&format!("{DATA}/sobjects/Secret__c/{rec}")).await;
    assert_eq!(
        (s, v["Code__c"].as_str()),
        (StatusCode::OK, Some("X1")),
        "{v}"
    );
    let (s, v) = u.get(&format!("{DATA}/sobjects")).await;
    assert_eq!(
        (s, v["sobjects"][0]["name"].as_str()),
        (StatusCode::OK, Some("Secret__c"))
    );
    let (s, v) = u
        .get(&query_path("SELECT Name, Code__c FROM Secret__c"))
        .await;
    assert_eq!(
        (s, v["totalSize"].as_i64()),
        (StatusCode::OK, Some(1)),
        "{v}"
    );
    let (s, v) = u.get(&format!("{DATA}/sobjects/Secret__c/describe")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            v["createable"].as_bool(),
            v["updateable"].as_bool(),
            v["deletable"].as_bool()
        ),
        (Some(false), Some(false), Some(false))
    );
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            format!("{DATA}/sobjects/Secret__c"),
            Some(json!({"Name": "Mine"})),
        ),
        (
            reqwest::Method::PATCH,
            format!("{DATA}/sobjects/Secret__c/{rec}"),
            Some(json!({"Name": "X"})),
        ),
        (
            reqwest::Method::DELETE,
            format!("{DATA}/sobjects/Secret__c/{rec}"),
            None,
        ),
        (
            reqwest::Method::PATCH,
            format!("{DATA}/sobjects/Secret__c/Code__c/NEW"),
            Some(json!({"Name": "X"})),
        ),
    ] {
        let (s, v) = u.send(method.clone(), &path, body.as_ref()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
        assert_eq!(codes(&v), vec!["INSUFFICIENT_ACCESS"]);
    }
    let (s, v) = u
        .post(
            &format!("{DATA}/composite/sobjects"),
            json!({"records": [{"attributes": {"type": "Secret__c"}, "Name": "B"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["errors"][0]["statusCode"], "INSUFFICIENT_ACCESS");

    // Create, edit, delete granted.
    let (s, _) = a
        .patch(
            &format!("{ADMIN}/permission-sets/{ps}"),
            json!({"object_permissions": [{"object": "Secret__c", "create": true, "edit": true, "delete": true}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mine = u.create_record("Secret__c", json!({"Name": "Mine"})).await;
    let (s, _) = u
        .patch(
            &format!("{DATA}/sobjects/Secret__c/{mine}"),
            json!({"Name": "Mine 2"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = u.delete(&format!("{DATA}/sobjects/Secret__c/{mine}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_level_security_matrix() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    a.create_object(json!({
        "api_name": "Doc__c",
        "fields": [
            {"api_name": "Open__c", "data_type": "text", "length": 20},
            {"api_name": "ReadOnly__c", "data_type": "text", "length": 20},
            {"api_name": "Hidden__c", "data_type": "text", "length": 20},
            {"api_name": "Calc__c", "data_type": "formula", "formula_return_type": "text",
             "formula_expression": "Hidden__c & \"!\""},
            {"api_name": "HiddenCalc__c", "data_type": "formula", "formula_return_type": "text",
             "formula_expression": "Open__c & \"?\""}
        ]
    }))
    .await;
    let rec = a
        .create_record(
            "Doc__c",
            json!({"Name": "D", "Open__c": "o", "ReadOnly__c": "r", "Hidden__c": "h"}),
        )
        .await;
    let (uid, u) = user(&a, "fls", "standard").await;
    let ps = permission_set(
        &a,
        json!({"name": "Docs",
               "object_permissions": [{"object": "Doc__c", "create": true, "read": true, "edit": true}],
               "field_permissions": [
                   {"object": "Doc__c", "field": "Open__c", "read": true, "edit": true},
                   {"object": "Doc__c", "field": "ReadOnly__c", "read": true},
                   {"object": "Doc__c", "field": "Calc__c", "read": true}]}),
    )
    .await;
    assign(&a, &ps, &uid).await;

    // get: readable fields only; the formula computes from the hidden field.
    let (s, v) = u.get(&format!("{DATA}/sobjects/Doc__c/{rec}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["Open__c"], "o");
    assert_eq!(v["ReadOnly__c"], "r");
    assert_eq!(v["Calc__c"], "h!", "formulas evaluate with full data");
    assert!(v.get("Hidden__c").is_none(), "{v}");
    assert!(
        v.get("HiddenCalc__c").is_none(),
        "formula fields are subject to FLS"
    );
    assert_eq!(v["Name"], "D");
    for f in ["Hidden__c", "HiddenCalc__c"] {
        let (s, v) = u
            .get(&format!("{DATA}/sobjects/Doc__c/{rec}?fields=Name,{f}"))
            .await;
        assert_eq!(
            (s, codes(&v)),
            (StatusCode::BAD_REQUEST, vec!["INVALID_FIELD".to_string()]),
            "{f}"
        );
    }
    let (s, v) = u
        .get(&format!(
            "{DATA}/sobjects/Doc__c/{rec}?fields=Open__c,Calc__c"
        ))
        .await;
    assert_eq!((s, v["Calc__c"].as_str()), (StatusCode::OK, Some("h!")));

    // query: unreadable fields do not exist, anywhere in the statement.
    for q in [
        "SELECT Hidden__c FROM Doc__c",
        "SELECT Name FROM Doc__c WHERE Hidden__c = 'h'",
        "SELECT Name FROM Doc__c ORDER BY Hidden__c",
        "SELECT HiddenCalc__c FROM Doc__c",
        "SELECT Name FROM Doc__c WHERE HiddenCalc__c = 'o?'",
    ] {
        let (s, v) = u.get(&query_path(q)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
        assert_eq!(codes(&v), vec!["INVALID_FIELD"], "{q}");
        let (s, _) = a.get(&query_path(q)).await;
        assert_eq!(s, StatusCode::OK, "the admin may: {q}");
    }
    let (s, v) = u
        .get(&query_path(
            "SELECT Open__c, ReadOnly__c, Calc__c FROM Doc__c WHERE Calc__c = 'h!'",
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["records"][0]["Calc__c"], "h!");
    let (s, v) = u
        .get(&format!("{DATA}/sobjects/Doc__c?fields=Name,Hidden__c"))
        .await;
    assert_eq!(
        (s, codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["INVALID_FIELD".to_string()])
    );

    // describe: unreadable fields absent, read-only ones not updateable.
    let (s, v) = u.get(&format!("{DATA}/sobjects/Doc__c/describe")).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Open__c") && names.contains(&"ReadOnly__c") && names.contains(&"Calc__c")
    );
    assert!(
        !names.contains(&"Hidden__c") && !names.contains(&"HiddenCalc__c"),
        "{names:?}"
    );
    let field = |n: &str| {
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(field("Open__c")["updateable"], true);
    assert_eq!(field("ReadOnly__c")["updateable"], false);
    assert_eq!(field("ReadOnly__c")["createable"], false);
    let (_, admin_view) = a.get(&format!("{DATA}/sobjects/Doc__c/describe")).await;
    assert!(
        admin_view.to_string().contains("Hidden__c"),
        "the admin's describe is whole"
    );

    // create / update: read-only and hidden fields are refused.
    for (body, code, field) in [
        (
            json!({"Name": "N", "ReadOnly__c": "x"}),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "ReadOnly__c",
        ),
        (
            json!({"Name": "N", "Hidden__c": "x"}),
            "INVALID_FIELD",
            "Hidden__c",
        ),
    ] {
        let (s, v) = u
            .post(&format!("{DATA}/sobjects/Doc__c"), body.clone())
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            (codes(&v), fields_of(&v)),
            (vec![code.to_string()], vec![field.to_string()]),
            "{body}"
        );
        let (s, v) = u
            .patch(&format!("{DATA}/sobjects/Doc__c/{rec}"), body.clone())
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            (codes(&v), fields_of(&v)),
            (vec![code.to_string()], vec![field.to_string()]),
            "{body}"
        );
    }
    let id = u
        .create_record("Doc__c", json!({"Name": "N", "Open__c": "mine"}))
        .await;
    let (s, _) = u
        .patch(
            &format!("{DATA}/sobjects/Doc__c/{id}"),
            json!({"Open__c": "changed"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = a.get(&format!("{DATA}/sobjects/Doc__c/{rec}")).await;
    assert_eq!(
        (v["ReadOnly__c"].as_str(), v["Hidden__c"].as_str()),
        (Some("r"), Some("h")),
        "nothing was written"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_take_effect_on_the_very_next_request() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    secret_object(&a).await;
    let rec = a
        .create_record("Secret__c", json!({"Name": "One", "Code__c": "c"}))
        .await;
    let (uid, u) = user(&a, "rev", "standard").await;
    let read = json!({"object_permissions": [{"object": "Secret__c", "read": true}],
                      "field_permissions": [{"object": "Secret__c", "field": "Code__c", "read": true}]});
    let mut body = read.clone();
    body["name"] = json!("Read");
    let ps = permission_set(&a, body).await;
    let path = format!("{DATA}/sobjects/Secret__c/{rec}");
    let status = |c: Client| {
        let p = path.clone();
        async move { c.get(&p).await.0 }
    };

    // Assignment added, then removed.
    assert_eq!(status(u.clone()).await, StatusCode::NOT_FOUND);
    assign(&a, &ps, &uid).await;
    assert_eq!(status(u.clone()).await, StatusCode::OK);
    assert_eq!(
        status(u.clone()).await,
        StatusCode::OK,
        "served from the cache"
    );
    let (s, _) = a
        .delete(&format!("{ADMIN}/permission-sets/{ps}/assignments/{uid}"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        status(u.clone()).await,
        StatusCode::NOT_FOUND,
        "assignment removed"
    );

    // The permission set edited.
    assign(&a, &ps, &uid).await;
    assert_eq!(status(u.clone()).await, StatusCode::OK);
    let (s, _) = a
        .patch(
            &format!("{ADMIN}/permission-sets/{ps}"),
            json!({"object_permissions": []}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        status(u.clone()).await,
        StatusCode::NOT_FOUND,
        "object permission removed"
    );
    let (s, _) = a
        .patch(&format!("{ADMIN}/permission-sets/{ps}"), read.clone())
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = u.get(&path).await;
    assert_eq!(v["Code__c"], "c");
    let (s, _) = a
        .patch(
            &format!("{ADMIN}/permission-sets/{ps}"),
            json!({"field_permissions": []}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = u.get(&path).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.get("Code__c").is_none(), "field permission removed: {v}");

    // The permission set deleted.
    let (s, _) = a.delete(&format!("{ADMIN}/permission-sets/{ps}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        status(u.clone()).await,
        StatusCode::NOT_FOUND,
        "permission set deleted"
    );

    // Profile change: an administrator demoted loses the admin APIs at once.
    let (bid, boss) = user(&a, "boss", "system_administrator").await;
    let (s, _) = boss.get(&format!("{ADMIN}/users")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = a
        .patch(
            &format!("{ADMIN}/users/{bid}"),
            json!({"profile": "standard"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = boss.get(&format!("{ADMIN}/users")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "profile changed");
    assert_eq!(status(boss.clone()).await, StatusCode::NOT_FOUND);

    // Deactivation: every token of the user dies, refresh tokens too.
    let (s, t, _) = password_grant(&server.base, &u.username, PASSWORD).await;
    assert_eq!(s, StatusCode::OK);
    let second = u.with_token(t["access_token"].as_str().unwrap());
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    let (s, _) = second.get(&format!("{DATA}/sobjects")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = a
        .patch(&format!("{ADMIN}/users/{uid}"), json!({"active": false}))
        .await;
    assert_eq!((s, v["active"].as_bool()), (StatusCode::OK, Some(false)));
    for c in [&u, &second] {
        let (s, v) = c.get(&format!("{DATA}/sobjects")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "deactivated: {v}");
        assert_eq!(codes(&v), vec!["INVALID_SESSION_ID"]);
    }
    let (s, v, _) = token_request(
        &server.base,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (s, _, _) = password_grant(&server.base, &u.username, PASSWORD).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "an inactive user cannot log in");
    let (s, _) = a
        .patch(
            &format!("{ADMIN}/users/{}", a.user_id),
            json!({"active": false}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "admins cannot lock themselves out"
    );

    // Access token revoked; refresh token revoked.
    let (_, t, _) = password_grant(&server.base, &boss.username, PASSWORD).await;
    let tok = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    let b2 = boss.with_token(tok);
    assert_eq!(b2.get(&format!("{DATA}/sobjects")).await.0, StatusCode::OK);
    revoke(&server.base, tok).await;
    assert_eq!(
        b2.get(&format!("{DATA}/sobjects")).await.0,
        StatusCode::UNAUTHORIZED,
        "token revoked"
    );
    let (s, _, _) = token_request(
        &server.base,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the refresh token outlives the access token"
    );
    revoke(&server.base, refresh).await;
    let (s, v, _) = token_request(
        &server.base,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "refresh token revoked"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_and_client_credentials_grants() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    secret_object(&a).await;
    a.create_record("Secret__c", json!({"Name": "One"})).await;
    let (uid, u) = user(&a, "svc", "standard").await;

    // Refresh token: a new access token for the same user; not a bearer token.
    let (s, t, _) = password_grant(&server.base, &u.username, PASSWORD).await;
    assert_eq!(s, StatusCode::OK);
    let refresh = t["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string();
    assert!(t["id"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/{}/{uid}", a.tenant_id)));
    let (s, v, _) = token_request(
        &server.base,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["instance_url"], server.base.as_str());
    let fresh = u.with_token(v["access_token"].as_str().unwrap());
    assert_eq!(
        fresh.get(&format!("{DATA}/sobjects")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        u.with_token(&refresh)
            .get(&format!("{DATA}/sobjects"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    for bad in ["", "mosr_nope", "mos_nope", &"x".repeat(3000)] {
        let (s, v, _) = token_request(
            &server.base,
            &[("grant_type", "refresh_token"), ("refresh_token", bad)],
        )
        .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{bad:.10}"
        );
    }
    let (s, v, _) = token_request(&server.base, &[("grant_type", "refresh_token")]).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // Connected app: the secret is shown once; the grant runs as the run-as user.
    let (s, app) = a
        .post(
            &format!("{ADMIN}/connected-apps"),
            json!({"name": "Etl", "run_as_user_id": uid}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{app}");
    let (app_id, client_id, secret) = (
        app["id"].as_str().unwrap().to_string(),
        app["client_id"].as_str().unwrap().to_string(),
        app["client_secret"].as_str().unwrap().to_string(),
    );
    let (s, v) = a.get(&format!("{ADMIN}/connected-apps/{app_id}")).await;
    assert_eq!(
        (s, v["client_id"].as_str()),
        (StatusCode::OK, Some(client_id.as_str()))
    );
    assert!(
        !v.to_string().contains(&secret),
        "the secret is never shown again"
    );
    let (_, v) = a.get(&format!("{ADMIN}/connected-apps")).await;
    assert!(!v.to_string().contains(&secret));
    let (_, v) = a.get(&format!("{ADMIN}/audit")).await;
    assert!(!v.to_string().contains(&secret), "nor logged");
    let (s, v) = a
        .post(
            &format!("{ADMIN}/connected-apps"),
            json!({"name": "etl", "run_as_user_id": uid}),
        )
        .await;
    assert_eq!(
        (s, fields_of(&v)),
        (StatusCode::CONFLICT, vec!["name".to_string()])
    );
    let (s, v) = a
        .post(
            &format!("{ADMIN}/connected-apps"),
            json!({"name": "Other", "run_as_user_id": "0190a3d2-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_eq!(
        (s, fields_of(&v)),
        (StatusCode::BAD_REQUEST, vec!["run_as_user_id".to_string()])
    );

    let (s, v, _) = token_request(
        &server.base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v.get("refresh_token").is_none());
    let svc = u.with_token(v["access_token"].as_str().unwrap());
    let (s, v) = svc.get(&format!("{DATA}/sobjects")).await;
    assert_eq!(
        (s, v["sobjects"].clone()),
        (StatusCode::OK, json!([])),
        "runs with the run-as user's permissions"
    );
    let (s, _) = svc.get(&format!("{ADMIN}/users")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // HTTP Basic client authentication works too.
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", server.base))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    for (id, sec) in [
        (client_id.as_str(), "moss_wrong"),
        ("mosc_unknown", secret.as_str()),
        ("", ""),
    ] {
        let (s, v, _) = token_request(
            &server.base,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", sec),
            ],
        )
        .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{id}"
        );
    }
    let (s, _) = a.delete(&format!("{ADMIN}/connected-apps/{app_id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = token_request(
        &server.base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a deleted app grants nothing");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited_per_username_and_per_address() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let (_, victim) = user(&a, "victim", "standard").await;
    let (_, other) = user(&a, "other", "standard").await;
    for i in 0..5 {
        let (s, v, _) = password_grant(&server.base, &victim.username, "wrong-password").await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "attempt {i}"
        );
    }
    // Locked: even the right password is refused, with Retry-After.
    let (s, v, retry) = password_grant(&server.base, &victim.username, PASSWORD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(
        v,
        json!({"error": "invalid_grant", "error_description": "too many failed attempts; retry later"})
    );
    let secs: i64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=300).contains(&secs), "{secs}");
    // The per-username limit is case-insensitive.
    let (s, _, _) = password_grant(&server.base, &victim.username.to_uppercase(), PASSWORD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // Another user from the same address is not locked out by it...
    let (s, _, _) = password_grant(&server.base, &other.username, PASSWORD).await;
    assert_eq!(s, StatusCode::OK);
    // ...until the address itself has failed too often; a success in
    // between does not reset the address's count.
    for i in 0..15 {
        let (s, _, _) = password_grant(
            &server.base,
            &format!("nobody{i}@example.test"),
            "wrong-password",
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "attempt {i}");
    }
    let (s, v, retry) = password_grant(&server.base, &other.username, PASSWORD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(retry.is_some());
    // Existing sessions are unaffected.
    assert_eq!(
        victim.get(&format!("{DATA}/sobjects")).await.0,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_never_reach_another_tenants_ids() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let b = server.tenant().await;
    secret_object(&b).await;
    let (b_user, _) = user(&b, "bee", "standard").await;
    let (_, b_role) = b
        .post(&format!("{ADMIN}/roles"), json!({"name": "BRole"}))
        .await;
    let b_role = b_role["id"].as_str().unwrap().to_string();
    let (_, b_group) = b
        .post(
            &format!("{ADMIN}/groups"),
            json!({"name": "BGroup", "members": [{"user_id": b_user}]}),
        )
        .await;
    let b_group = b_group["id"].as_str().unwrap().to_string();
    let b_ps = permission_set(
        &b,
        json!({"name": "BSet", "object_permissions": [{"object": "Secret__c", "read": true}]}),
    )
    .await;
    assign(&b, &b_ps, &b_user).await;
    let (_, b_app) = b
        .post(
            &format!("{ADMIN}/connected-apps"),
            json!({"name": "BApp", "run_as_user_id": b_user}),
        )
        .await;
    let b_app = b_app["id"].as_str().unwrap().to_string();
    let a_ps = permission_set(&a, json!({"name": "ASet"})).await;

    use reqwest::Method;
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("{ADMIN}/users/{b_user}"), None),
        (
            Method::PATCH,
            format!("{ADMIN}/users/{b_user}"),
            Some(json!({"active": false})),
        ),
        (Method::GET, format!("{ADMIN}/roles/{b_role}"), None),
        (
            Method::PATCH,
            format!("{ADMIN}/roles/{b_role}"),
            Some(json!({"label": "Mine"})),
        ),
        (Method::DELETE, format!("{ADMIN}/roles/{b_role}"), None),
        (Method::GET, format!("{ADMIN}/groups/{b_group}"), None),
        (
            Method::PATCH,
            format!("{ADMIN}/groups/{b_group}"),
            Some(json!({"members": []})),
        ),
        (Method::DELETE, format!("{ADMIN}/groups/{b_group}"), None),
        (Method::GET, format!("{ADMIN}/permission-sets/{b_ps}"), None),
        (
            Method::PATCH,
            format!("{ADMIN}/permission-sets/{b_ps}"),
            Some(json!({"label": "Mine"})),
        ),
        (
            Method::DELETE,
            format!("{ADMIN}/permission-sets/{b_ps}"),
            None,
        ),
        (
            Method::POST,
            format!("{ADMIN}/permission-sets/{b_ps}/assignments"),
            Some(json!({"user_id": a.user_id})),
        ),
        (
            Method::DELETE,
            format!("{ADMIN}/permission-sets/{b_ps}/assignments/{b_user}"),
            None,
        ),
        (
            Method::DELETE,
            format!("{ADMIN}/permission-sets/{a_ps}/assignments/{b_user}"),
            None,
        ),
        (Method::GET, format!("{ADMIN}/connected-apps/{b_app}"), None),
        (
            Method::DELETE,
            format!("{ADMIN}/connected-apps/{b_app}"),
            None,
        ),
    ];
    for (m, path, body) in calls {
        let (s, v) = a.send(m.clone(), &path, body.as_ref()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {path}: {v}");
        assert_eq!(codes(&v), vec!["NOT_FOUND"], "{m} {path}");
        // The request id is random hex and may spell "bee-" by chance.
        let mut shown = v.clone();
        for e in shown.as_array_mut().into_iter().flatten() {
            if let Some(o) = e.as_object_mut() {
                o.remove("requestId");
            }
        }
        for secret in ["BRole", "BGroup", "BSet", "BApp", "bee-"] {
            assert!(
                !shown.to_string().contains(secret),
                "{m} {path} leaks {secret}: {v}"
            );
        }
    }
    // References to B's ids in A's inputs fail as ids that do not exist.
    let nowhere = "0190a3d2-0000-7000-8000-000000000000";
    for (path, body_b, body_none) in [
        (
            format!("{ADMIN}/permission-sets/{a_ps}/assignments"),
            json!({"user_id": b_user}),
            json!({"user_id": nowhere}),
        ),
        (
            format!("{ADMIN}/groups"),
            json!({"name": "G1", "members": [{"role_id": b_role}]}),
            json!({"name": "G1", "members": [{"role_id": nowhere}]}),
        ),
        (
            format!("{ADMIN}/roles"),
            json!({"name": "R1", "parent_role_id": b_role}),
            json!({"name": "R1", "parent_role_id": nowhere}),
        ),
        (
            format!("{ADMIN}/connected-apps"),
            json!({"name": "A1", "run_as_user_id": b_user}),
            json!({"name": "A1", "run_as_user_id": nowhere}),
        ),
        (
            format!("{ADMIN}/permission-sets"),
            json!({"name": "P1", "object_permissions": [{"object": "Secret__c", "read": true}]}),
            json!({"name": "P1", "object_permissions": [{"object": "Nothing__c", "read": true}]}),
        ),
    ] {
        let (s1, v1) = a.post(&path, body_b.clone()).await;
        let (s2, v2) = a.post(&path, body_none).await;
        assert_eq!(s1, StatusCode::BAD_REQUEST, "{path}: {v1}");
        assert_eq!(
            (s1, codes(&v1), fields_of(&v1)),
            (s2, codes(&v2), fields_of(&v2)),
            "{path}"
        );
    }
    // Lists show only the caller's tenant; B is untouched.
    let (_, v) = a.get(&format!("{ADMIN}/users")).await;
    assert_eq!(v["users"].as_array().unwrap().len(), 1);
    let (_, v) = a.get(&format!("{ADMIN}/audit")).await;
    assert!(!v.to_string().contains(&b_user));
    let (s, v) = b.get(&format!("{ADMIN}/permission-sets/{b_ps}")).await;
    assert_eq!((s, v["label"].as_str()), (StatusCode::OK, Some("BSet")));
    assert_eq!(v["assignments"], json!([{"user_id": b_user}]));
    let (_, v) = b.get(&format!("{ADMIN}/users/{b_user}")).await;
    assert_eq!(v["active"], true);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_hierarchy_paths_depth_and_cycles() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let role = |name: &str, parent: Option<&str>| {
        let a = a.clone();
        let body = match parent {
            Some(p) => json!({"name": name, "parent_role_id": p}),
            None => json!({"name": name}),
        };
        async move {
            let (s, v) = a.post(&format!("{ADMIN}/roles"), body).await;
            (s, v)
        }
    };
    // A chain of 10 is the limit.
    let mut chain = Vec::new();
    let mut parent: Option<String> = None;
    for i in 1..=10 {
        let (s, v) = role(&format!("L{i}"), parent.as_deref()).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["depth"], i);
        let id = v["id"].as_str().unwrap().to_string();
        let want: String = chain
            .iter()
            .chain(std::iter::once(&id))
            .map(|x: &String| format!("/{x}"))
            .collect::<String>()
            + "/";
        assert_eq!(v["path"], want);
        chain.push(id.clone());
        parent = Some(id);
    }
    let (s, v) = role("L11", parent.as_deref()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        (codes(&v), fields_of(&v)),
        (
            vec!["LIMIT_EXCEEDED".to_string()],
            vec!["parent_role_id".to_string()]
        )
    );

    // A tree: CEO > VP > Rep; moving VP under Other rewrites VP and Rep.
    let (_, ceo) = role("CEO", None).await;
    let ceo = ceo["id"].as_str().unwrap().to_string();
    let (_, vp) = role("VP", Some(&ceo)).await;
    let vp = vp["id"].as_str().unwrap().to_string();
    let (_, rep) = role("Rep", Some(&vp)).await;
    let rep = rep["id"].as_str().unwrap().to_string();
    let (_, other) = role("Other", None).await;
    let other = other["id"].as_str().unwrap().to_string();
    let (s, v) = a
        .patch(
            &format!("{ADMIN}/roles/{vp}"),
            json!({"parent_role_id": other}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["path"], format!("/{other}/{vp}/"));
    assert_eq!(v["parent_role_id"], other.as_str());
    let (_, v) = a.get(&format!("{ADMIN}/roles/{rep}")).await;
    assert_eq!(v["path"], format!("/{other}/{vp}/{rep}/"));
    assert_eq!(v["depth"], 3);
    let (_, list) = a.get(&format!("{ADMIN}/roles")).await;
    let ceo_row = list["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == ceo.as_str())
        .unwrap()
        .clone();
    assert_eq!(ceo_row["path"], format!("/{ceo}/"), "others are untouched");
    // To the root and back.
    let (s, v) = a
        .patch(
            &format!("{ADMIN}/roles/{vp}"),
            json!({"parent_role_id": null}),
        )
        .await;
    assert_eq!((s, v["depth"].as_i64()), (StatusCode::OK, Some(1)));
    let (_, v) = a.get(&format!("{ADMIN}/roles/{rep}")).await;
    assert_eq!(
        (v["path"].as_str().unwrap(), v["depth"].as_i64()),
        (format!("/{vp}/{rep}/").as_str(), Some(2))
    );

    // Cycles are refused: under itself or under a subordinate.
    for target in [&vp, &rep] {
        let (s, v) = a
            .patch(
                &format!("{ADMIN}/roles/{vp}"),
                json!({"parent_role_id": target}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(fields_of(&v), vec!["parent_role_id"]);
    }
    // A move that would make the subtree deeper than 10 is refused whole.
    let (s, v) = a
        .patch(
            &format!("{ADMIN}/roles/{vp}"),
            json!({"parent_role_id": chain[8]}),
        )
        .await;
    assert_eq!(
        (s, codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["LIMIT_EXCEEDED".to_string()]),
        "{v}"
    );
    let (_, v) = a.get(&format!("{ADMIN}/roles/{rep}")).await;
    assert_eq!(v["path"], format!("/{vp}/{rep}/"), "nothing moved");
    let (s, _) = a
        .patch(
            &format!("{ADMIN}/roles/{vp}"),
            json!({"parent_role_id": chain[7]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "depth 9 + 1 = 10 fits");
    let (_, v) = a.get(&format!("{ADMIN}/roles/{rep}")).await;
    assert_eq!(v["depth"], 10);

    // Delete: only unused roles.
    let (s, v) = a.delete(&format!("{ADMIN}/roles/{vp}")).await;
    assert_eq!(
        (s, codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["DELETE_FAILED".to_string()])
    );
    let (s, _) = a.delete(&format!("{ADMIN}/roles/{rep}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = a.get(&format!("{ADMIN}/roles/{rep}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = a.get(&format!("{ADMIN}/audit?action=role.move")).await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 3, "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_transfer_needs_edit_and_ownership() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    secret_object(&a).await;
    let (u1_id, u1) = user(&a, "one", "standard").await;
    let (u2_id, u2) = user(&a, "two", "standard").await;
    let ps = permission_set(
        &a,
        json!({"name": "Edit", "object_permissions": [{"object": "Secret__c", "create": true, "edit": true}]}),
    )
    .await;
    assign(&a, &ps, &u1_id).await;
    assign(&a, &ps, &u2_id).await;
    let admins = a
        .create_record("Secret__c", json!({"Name": "Admin's"}))
        .await;
    let (s, v) = u1
        .patch(
            &format!("{DATA}/sobjects/Secret__c/{admins}"),
            json!({"OwnerId": u1_id}),
        )
        .await;
    assert_eq!(
        (s, codes(&v)),
        (
            StatusCode::FORBIDDEN,
            vec!["INSUFFICIENT_ACCESS".to_string()]
        ),
        "{v}"
    );
    let mine = u1.create_record("Secret__c", json!({"Name": "Mine"})).await;
    let (s, v) = u1
        .patch(
            &format!("{DATA}/sobjects/Secret__c/{mine}"),
            json!({"OwnerId": u2_id}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, v) = u2.get(&format!("{DATA}/sobjects/Secret__c/{mine}")).await;
    assert_eq!(v["OwnerId"], u2_id.as_str());
    let (s, _) = u1
        .patch(
            &format!("{DATA}/sobjects/Secret__c/{mine}"),
            json!({"OwnerId": u1_id}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no longer the owner");
    let (s, _) = u1
        .patch(
            &format!("{DATA}/sobjects/Secret__c/{mine}"),
            json!({"Name": "Renamed"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NO_CONTENT,
        "plain edits need no ownership (no sharing yet)"
    );
    let (s, _) = a
        .patch(
            &format!("{DATA}/sobjects/Secret__c/{mine}"),
            json!({"OwnerId": u1_id}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NO_CONTENT,
        "administrators transfer anything"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationships_into_unreadable_objects_do_not_exist() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    a.create_object(
        json!({"api_name": "Acct__c", "fields": [{"api_name": "Tier__c", "data_type": "text"}]}),
    )
    .await;
    a.create_object(json!({"api_name": "Opp__c", "fields": [
        {"api_name": "Acct__c", "data_type": "lookup", "lookup_object": "Acct__c", "child_relationship_name": "Opps__r"}]}))
        .await;
    let acct = a
        .create_record("Acct__c", json!({"Name": "Acme", "Tier__c": "gold"}))
        .await;
    a.create_record("Opp__c", json!({"Name": "Deal", "Acct__c": acct}))
        .await;
    let (opp_reader, o) = user(&a, "opps", "standard").await;
    let (acct_reader, ac) = user(&a, "accts", "standard").await;
    let opps = permission_set(
        &a,
        json!({"name": "Opps",
        "object_permissions": [{"object": "Opp__c", "read": true}],
        "field_permissions": [{"object": "Opp__c", "field": "Acct__c", "read": true}]}),
    )
    .await;
    assign(&a, &opps, &opp_reader).await;
    let accts = permission_set(
        &a,
        json!({"name": "Accts",
        "object_permissions": [{"object": "Acct__c", "read": true}],
        "field_permissions": [{"object": "Acct__c", "field": "Tier__c", "read": true}]}),
    )
    .await;
    assign(&a, &accts, &acct_reader).await;

    // The lookup's id is readable; the parent object behind it is not.
    let (s, v) = o.get(&query_path("SELECT Name, Acct__c FROM Opp__c")).await;
    assert_eq!(
        (s, v["records"][0]["Acct__c"].as_str()),
        (StatusCode::OK, Some(acct.as_str())),
        "{v}"
    );
    for q in [
        "SELECT Name, Acct__r.Name FROM Opp__c",
        "SELECT Name FROM Opp__c WHERE Acct__r.Tier__c = 'gold'",
    ] {
        let (s, v) = o.get(&query_path(q)).await;
        assert_eq!(
            (s, codes(&v)),
            (StatusCode::BAD_REQUEST, vec!["INVALID_FIELD".to_string()]),
            "{q}: {v}"
        );
        assert_eq!(a.get(&query_path(q)).await.0, StatusCode::OK, "{q}");
    }
    // A child relationship into an unreadable object is refused too.
    let q = "SELECT Name, (SELECT Name FROM Opps__r) FROM Acct__c";
    let (s, v) = ac.get(&query_path(q)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = a.get(&query_path(q)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Describe does not list the unreadable child relationship.
    let (_, v) = ac.get(&format!("{DATA}/sobjects/Acct__c/describe")).await;
    assert_eq!(v["childRelationships"], json!([]), "{v}");
    let (_, v) = a.get(&format!("{DATA}/sobjects/Acct__c/describe")).await;
    assert_eq!(v["childRelationships"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_actions_run_in_system_context() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    a.create_object(json!({"api_name": "Case__c", "fields": [
        {"api_name": "Stage__c", "data_type": "text", "length": 20}]}))
        .await;
    let (s, v) = a
        .post(
            &format!("{META}/objects/Case__c/workflows"),
            json!({"name": "Triage", "trigger_type": "created", "actions": [
                {"action_type": "task_creation", "action_config": {"subject": "Call about {!Name}", "assignee": "owner"}},
                {"action_type": "field_update", "action_config": {"field_api_name": "Stage__c", "value_type": "literal", "value": "New"}}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (uid, u) = user(&a, "agent", "standard").await;
    let ps = permission_set(
        &a,
        json!({"name": "Agents", "object_permissions": [{"object": "Case__c", "create": true}],
               "field_permissions": [{"object": "Case__c", "field": "Stage__c", "read": true}]}),
    )
    .await;
    assign(&a, &ps, &uid).await;
    // The user may not edit Stage__c nor touch Task; the rule's actions may.
    let id = u.create_record("Case__c", json!({"Name": "Printer"})).await;
    let (_, v) = u.get(&format!("{DATA}/sobjects/Case__c/{id}")).await;
    assert_eq!(v["Stage__c"], "New", "{v}");
    let (s, q) = a
        .get(&query_path("SELECT Subject, OwnerId FROM Task"))
        .await;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(q["records"][0]["Subject"], "Call about Printer");
    assert_eq!(q["records"][0]["OwnerId"], uid.as_str());
    let (s, _) = u.get(&query_path("SELECT Subject FROM Task")).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "Task itself stays unreadable to the user"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automation_endpoints_follow_permissions() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    a.create_object(
        json!({"api_name": "Lead__c", "enable_history": true, "fields": [
        {"api_name": "Status__c", "data_type": "text", "length": 20},
        {"api_name": "Score__c", "data_type": "number", "precision": 5, "scale": 0}]}),
    )
    .await;
    let id = a
        .create_record(
            "Lead__c",
            json!({"Name": "L", "Status__c": "New", "Score__c": 1}),
        )
        .await;
    let rec = format!("{DATA}/sobjects/Lead__c/{id}");
    let (s, _) = a
        .patch(&rec, json!({"Status__c": "Working", "Score__c": 9}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (uid, u) = user(&a, "hist", "standard").await;
    for path in [
        format!("{META}/objects/Lead__c/workflows"),
        format!("{ADMIN}/dead-letters"),
    ] {
        let (s, v) = u.get(&path).await;
        assert_eq!(
            (s, codes(&v)),
            (
                StatusCode::FORBIDDEN,
                vec!["INSUFFICIENT_ACCESS".to_string()]
            ),
            "{path}"
        );
    }
    let (s, _) = u.get(&format!("{rec}/history")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no read on the object");
    let ps = permission_set(
        &a,
        json!({"name": "Leads", "object_permissions": [{"object": "Lead__c", "read": true}],
               "field_permissions": [{"object": "Lead__c", "field": "Status__c", "read": true}]}),
    )
    .await;
    assign(&a, &ps, &uid).await;
    let (s, h) = u.get(&format!("{rec}/history")).await;
    assert_eq!(s, StatusCode::OK, "{h}");
    let fields: Vec<&str> = h["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"Status__c"), "{fields:?}");
    assert!(
        !fields.contains(&"Score__c"),
        "unreadable field changes are left out: {fields:?}"
    );
    let (_, h) = a.get(&format!("{rec}/history")).await;
    assert!(h.to_string().contains("Score__c"));
    server.stop().await;
}
