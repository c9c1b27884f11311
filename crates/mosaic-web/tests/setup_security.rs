//! Setup's security administration and the operator view over HTTP (no
//! browser): every form with its bad input (the error next to the input,
//! what was typed kept), one-time secrets shown once, standard users
//! refused on every security URL, tenant administrators refused on every
//! operator URL, the operator sign-in (wrong tokens refused and rate
//! limited), and the maintenance switch. Runs on SQLite, and on
//! PostgreSQL with `MOSAIC_TEST_BACKEND=postgres`.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// Signs the tenant's admin in through the login form.
async fn admin_browser(server: &WebServer, api: &Api) -> Browser {
    let mut b = Browser::new(&server.base);
    let p = b.login(&api.username, PASSWORD).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    b
}

/// Posts a form of the page at `page` (its CSRF token) to `action`.
async fn submit(b: &mut Browser, page: &str, action: &str, form: &[(&str, &str)]) -> Page {
    let csrf = b.get(page).await.csrf();
    let mut all: Vec<(&str, &str)> = vec![("_csrf", &csrf)];
    all.extend_from_slice(form);
    b.post(action, &all).await
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let at = body
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {body}"))
        + start.len();
    let rest = &body[at..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_user_is_refused_every_security_url() {
    let server = WebServer::start().await;
    let api = server.tenant("secstd").await;
    sales_app(&api).await;
    let (uid, std_name) = api.user("std", "standard").await;
    let role = api
        .post("/services/admin/v1/roles", json!({"name": "Boss"}))
        .await;
    let rid = role["id"].as_str().unwrap().to_string();
    let mut admin = admin_browser(&server, &api).await;
    let mut std = Browser::new(&server.base);
    std.login(&std_name, PASSWORD).await;
    let csrf = std.get("/").await.csrf();
    let gets = [
        "/setup/users".to_string(),
        format!("/setup/users/{uid}"),
        "/setup/roles".into(),
        "/setup/groups".into(),
        "/setup/permission-sets".into(),
        "/setup/sharing".into(),
        "/setup/connected-apps".into(),
        "/setup/audit-log".into(),
    ];
    for path in &gets {
        let p = std.get(path).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
        assert!(p.body.contains("for administrators"), "{path}");
        assert!(!p.body.contains("<form class=\"card\""), "{path}");
        assert_eq!(admin.get(path).await.status, StatusCode::OK, "admin {path}");
    }
    let posts = [
        "/setup/users".to_string(),
        format!("/setup/users/{uid}"),
        format!("/setup/users/{uid}/reset-password"),
        format!("/setup/users/{uid}/permission-sets"),
        "/setup/roles".into(),
        format!("/setup/roles/{rid}"),
        format!("/setup/roles/{rid}/delete"),
        "/setup/groups".into(),
        "/setup/permission-sets".into(),
        "/setup/sharing/defaults".into(),
        "/setup/sharing/rules".into(),
        "/setup/connected-apps".into(),
    ];
    for path in &posts {
        let p = std
            .post(
                path,
                &[("_csrf", &csrf), ("name", "Sneaky"), ("username", "x@y.z")],
            )
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "POST {path}");
    }
    // Nothing was changed by those posts.
    let (_, roles) = api.get("/services/admin/v1/roles").await;
    assert_eq!(roles["roles"].as_array().unwrap().len(), 1);
    let (_, users) = api.get("/services/admin/v1/users").await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    // Without a session: the login page, returning to where it was.
    let p = Browser::new(&server.base).get("/setup/roles").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location.as_deref(), Some("/login?next=%2Fsetup%2Froles"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_edited_reset_and_assigned() {
    let server = WebServer::start().await;
    let api = server.tenant("secusers").await;
    sales_app(&api).await;
    let mut b = admin_browser(&server, &api).await;

    // Bad input: the error next to the input, what was typed kept.
    let p = submit(
        &mut b,
        "/setup/users",
        "/setup/users",
        &[
            ("username", ""),
            ("email", "kept@example.test"),
            ("profile", "standard"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"u-username-err\""), "{}", p.body);
    assert!(p.body.contains("value=\"kept@example.test\""));
    let p = submit(
        &mut b,
        "/setup/users",
        "/setup/users",
        &[
            ("username", "tz@example.test"),
            ("time_zone", "Mars/Olympus"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("id=\"u-tz-err\""), "{}", p.body);
    assert!(p.body.contains("value=\"Mars/Olympus\""));
    let p = submit(
        &mut b,
        "/setup/users",
        "/setup/users",
        &[("username", "weak@example.test"), ("password", "short")],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("id=\"u-password-err\""), "{}", p.body);
    assert!(
        !p.body.contains("value=\"short\""),
        "a password is never echoed"
    );

    // Created with a generated one-time password, shown on that answer only.
    let name = format!("ann-{}@example.test", std::process::id());
    let p = submit(
        &mut b,
        "/setup/users",
        "/setup/users",
        &[
            ("username", &name),
            ("email", "ann@example.test"),
            ("profile", "standard"),
            ("time_zone", "Europe/Paris"),
            ("locale", "fr_FR"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let one_time = between(&p.body, "id=\"one-time-password\">", "<").to_string();
    assert!(one_time.len() >= 20);
    assert!(!b.get("/setup/users").await.body.contains(&one_time));
    let (_, users) = api.get("/services/admin/v1/users").await;
    let ann = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == name.as_str())
        .unwrap()
        .clone();
    assert_eq!(ann["time_zone"], "Europe/Paris");
    assert_eq!(ann["locale"], "fr_FR");
    let id = ann["id"].as_str().unwrap().to_string();
    // The user must change the one-time password at the first sign-in.
    let mut ann_b = Browser::new(&server.base);
    let first = ann_b.login(&name, &one_time).await;
    assert!(first.body.contains("new_password"), "{}", first.body);

    // Edit: a bad locale is refused next to its input; then deactivate.
    let page = format!("/setup/users/{id}");
    let p = submit(
        &mut b,
        &page,
        &page,
        &[
            ("email", "ann2@example.test"),
            ("profile", "standard"),
            ("locale", "xx_NOPE"),
            ("active", "1"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("id=\"u-locale-err\""), "{}", p.body);
    assert!(p.body.contains("value=\"ann2@example.test\""));
    let p = submit(
        &mut b,
        &page,
        &page,
        &[("email", "ann2@example.test"), ("profile", "standard")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let (_, u) = api.get(&format!("/services/admin/v1/users/{id}")).await;
    assert_eq!(u["active"], false);
    assert_eq!(u["email"], "ann2@example.test");
    assert!(b.get("/setup/users").await.body.contains("Inactive"));
    // Reactivate, and reset the password: a new one-time password.
    submit(
        &mut b,
        &page,
        &page,
        &[("profile", "standard"), ("active", "1")],
    )
    .await;
    let p = submit(&mut b, &page, &format!("{page}/reset-password"), &[]).await;
    assert_eq!(p.status, StatusCode::OK);
    let again = between(&p.body, "id=\"one-time-password\">", "<").to_string();
    assert_ne!(again, one_time);
    let first = Browser::new(&server.base).login(&name, &again).await;
    assert!(first.body.contains("new_password"), "{}", first.body);

    // Permission sets: assigned and removed with checkboxes.
    let ps = api
        .post(
            "/services/admin/v1/permission-sets",
            json!({"name": "Readers", "object_permissions": [{"object": "Deal__c", "read": true}]}),
        )
        .await;
    let ps_id = ps["id"].as_str().unwrap();
    let p = submit(
        &mut b,
        &page,
        &format!("{page}/permission-sets"),
        &[("set", ps_id)],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let (_, set) = api
        .get(&format!("/services/admin/v1/permission-sets/{ps_id}"))
        .await;
    assert_eq!(set["assignments"], json!([{"user_id": id}]));
    submit(&mut b, &page, &format!("{page}/permission-sets"), &[]).await;
    let (_, set) = api
        .get(&format!("/services/admin/v1/permission-sets/{ps_id}"))
        .await;
    assert_eq!(set["assignments"], json!([]));
    // A stale form is refused and changes nothing.
    let p = b
        .post(
            page.as_str(),
            &[("_csrf", "forged"), ("profile", "system_administrator")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_groups_and_permission_sets() {
    let server = WebServer::start().await;
    let api = server.tenant("secroles").await;
    sales_app(&api).await;
    let (uid, _) = api.user("grp", "standard").await;
    let mut b = admin_browser(&server, &api).await;

    // Roles as a tree: a root, a child under it; a taken name is 409.
    let p = submit(
        &mut b,
        "/setup/roles",
        "/setup/roles",
        &[("name", "CEO"), ("label", "Chief")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let (_, roles) = api.get("/services/admin/v1/roles").await;
    let ceo = roles["roles"][0]["id"].as_str().unwrap().to_string();
    let p = submit(
        &mut b,
        "/setup/roles",
        "/setup/roles",
        &[
            ("name", "VP_Sales"),
            ("label", "VP Sales"),
            ("parent_role_id", &ceo),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let p = submit(
        &mut b,
        "/setup/roles",
        "/setup/roles",
        &[("name", "CEO"), ("label", "Again")],
    )
    .await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("id=\"r-name-err\""));
    assert!(p.body.contains("value=\"Again\""));
    let p = submit(
        &mut b,
        "/setup/roles",
        "/setup/roles",
        &[("name", "bad name!")],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("value=\"bad name!\""));
    let page = b.get("/setup/roles").await.body;
    let (c, v) = (page.find("Chief").unwrap(), page.find("VP Sales").unwrap());
    assert!(c < v, "the child is listed under its parent");
    assert!(page.contains("depth-1"));
    // Rename; deleting a role with a child is refused next to it.
    let p = submit(
        &mut b,
        "/setup/roles",
        &format!("/setup/roles/{ceo}"),
        &[("label", "Chief Executive")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let (_, r) = api.get(&format!("/services/admin/v1/roles/{ceo}")).await;
    assert_eq!(r["label"], "Chief Executive");
    let p = submit(
        &mut b,
        "/setup/roles",
        &format!("/setup/roles/{ceo}"),
        &[("label", "")],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains(&format!("id=\"role-{ceo}-err\"")));
    let p = submit(
        &mut b,
        "/setup/roles",
        &format!("/setup/roles/{ceo}/delete"),
        &[],
    )
    .await;
    assert!(p.status.is_client_error(), "{}", p.status);
    assert!(p.body.contains(&format!("id=\"role-{ceo}-err\"")));

    // Public groups: create, members (a user and a role), delete.
    let p = submit(&mut b, "/setup/groups", "/setup/groups", &[("name", "")]).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("id=\"g-name-err\""));
    let p = submit(
        &mut b,
        "/setup/groups",
        "/setup/groups",
        &[("name", "Sales_Team"), ("label", "Sales team")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let gpage = p.location.unwrap().split('?').next().unwrap().to_string();
    let p = submit(
        &mut b,
        &gpage,
        &gpage,
        &[("label", "Sales team"), ("user", &uid), ("role", &ceo)],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let (_, groups) = api.get("/services/admin/v1/groups").await;
    assert_eq!(groups["groups"][0]["members"].as_array().unwrap().len(), 2);
    let p = submit(
        &mut b,
        &gpage,
        &gpage,
        &[("label", "Sales team"), ("user", "005NOSUCHUSER000000")],
    )
    .await;
    assert!(p.status.is_client_error(), "{}", p.status);
    assert!(p.body.contains("id=\"group-err\""));

    // Permission sets: the object grid and field-level security.
    let p = submit(
        &mut b,
        "/setup/permission-sets",
        "/setup/permission-sets",
        &[("name", "has space")],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("id=\"p-name-err\""));
    assert!(p.body.contains("value=\"has space\""));
    let p = submit(
        &mut b,
        "/setup/permission-sets",
        "/setup/permission-sets",
        &[("name", "Deal_Readers"), ("label", "Deal readers")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let spage = p.location.unwrap().split('?').next().unwrap().to_string();
    let grid = b.get(&spage).await.body;
    assert!(grid.contains("name=\"o.Deal__c.view_all\""));
    assert!(grid.contains("name=\"f.Deal__c.Amount__c.edit\""));
    let p = submit(
        &mut b,
        &spage,
        &spage,
        &[
            ("label", "Deal readers"),
            ("o.Deal__c.read", "1"),
            ("f.Deal__c.Amount__c.read", "1"),
            ("customize_application", "1"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let id = spage.rsplit('/').next().unwrap();
    let (_, set) = api
        .get(&format!("/services/admin/v1/permission-sets/{id}"))
        .await;
    assert_eq!(set["customize_application"], true);
    let deal = set["object_permissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object"] == "Deal__c")
        .unwrap()
        .clone();
    assert_eq!(deal["read"], true);
    assert_eq!(deal["edit"], false);
    assert_eq!(set["field_permissions"].as_array().unwrap().len(), 1);
    // A label too long: refused, the grid kept as ticked.
    let long = "L".repeat(300);
    let p = submit(
        &mut b,
        &spage,
        &spage,
        &[("label", &long), ("o.Deal__c.edit", "1")],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.status);
    assert!(p
        .body
        .contains("name=\"o.Deal__c.edit\" value=\"1\" aria-label=\"Edit Deal\" checked"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_settings_rules_manual_shares_apps_and_audit() {
    let server = WebServer::start().await;
    let api = server.tenant("secshare").await;
    sales_app(&api).await;
    let (uid, std_name) = api.user("shr", "standard").await;
    let ps = api
        .post(
            "/services/admin/v1/permission-sets",
            json!({"name": "R", "object_permissions": [{"object": "Deal__c", "read": true}, {"object": "Account__c", "read": true}]}),
        )
        .await;
    api.post(
        &format!(
            "/services/admin/v1/permission-sets/{}/assignments",
            ps["id"].as_str().unwrap()
        ),
        json!({"user_id": uid}),
    )
    .await;
    let deal = api
        .record("Deal__c", json!({"Name": "Shared deal", "Amount__c": 10}))
        .await;
    let mut b = admin_browser(&server, &api).await;

    // Organisation-wide defaults, with the version they were read at.
    let page = b.get("/setup/sharing").await.body;
    let version = between(&page, "name=\"version.Account__c\" value=\"", "\"").to_string();
    let p = submit(
        &mut b,
        "/setup/sharing",
        "/setup/sharing/defaults",
        &[
            ("model.Account__c", "private"),
            ("version.Account__c", &version),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let (_, acc) = api.get(&format!("{META}/objects/Account__c")).await;
    assert_eq!(acc["sharing_model"], "private");
    // A stale version: "changed by someone else", never overwritten.
    let p = submit(
        &mut b,
        "/setup/sharing",
        "/setup/sharing/defaults",
        &[
            ("model.Account__c", "public_read"),
            ("version.Account__c", &version),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("Changed by someone else"));
    let (_, acc) = api.get(&format!("{META}/objects/Account__c")).await;
    assert_eq!(acc["sharing_model"], "private");

    // Sharing rules: an owner-based rule needs whom to share with.
    let role = api
        .post("/services/admin/v1/roles", json!({"name": "Sales"}))
        .await;
    let rid = role["id"].as_str().unwrap();
    let p = submit(
        &mut b,
        "/setup/sharing",
        "/setup/sharing/rules",
        &[
            ("object", "Deal__c"),
            ("name", "Sales_Deals"),
            ("rule_type", "owner_based"),
            ("from", rid),
            ("access_level", "read"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"sr-to-err\""), "{}", p.body);
    assert!(p.body.contains("value=\"Sales_Deals\""));
    let to = format!("role_id:{rid}");
    let p = submit(
        &mut b,
        "/setup/sharing",
        "/setup/sharing/rules",
        &[
            ("object", "Deal__c"),
            ("name", "Sales_Deals"),
            ("rule_type", "owner_based"),
            ("from", rid),
            ("to", &to),
            ("access_level", "read"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let p = submit(
        &mut b,
        "/setup/sharing",
        "/setup/sharing/rules",
        &[
            ("object", "Deal__c"),
            ("name", "Won_Deals"),
            ("rule_type", "criteria_based"),
            ("criteria_field", "NoSuch__c"),
            ("criteria_operator", "equals"),
            ("criteria_value", "Won"),
            ("to", &to),
            ("access_level", "read"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"sr-cf-err\""), "{}", p.body);
    assert!(p.body.contains("value=\"NoSuch__c\""));
    let (_, rules) = api.get("/services/admin/v1/sharing-rules").await;
    assert_eq!(rules["sharing_rules"].as_array().unwrap().len(), 1);
    assert!(b.get("/setup/sharing").await.body.contains("Sales_Deals"));

    // Manual shares from the record page: the admin sees "Sharing"; the
    // standard user (not the owner) neither sees it nor opens the page.
    let rec = b.get(&format!("/r/Deal__c/{deal}")).await.body;
    let shares = format!("/setup/shares/Deal__c/{deal}");
    assert!(rec.contains(&format!("href=\"{shares}\"")), "{rec}");
    let mut std = Browser::new(&server.base);
    std.login(&std_name, PASSWORD).await;
    assert_eq!(
        std.get(&format!("/r/Deal__c/{deal}")).await.status,
        StatusCode::NOT_FOUND
    );
    let p = submit(
        &mut b,
        &shares,
        &shares,
        &[("to", ""), ("access_level", "read")],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("id=\"sh-err\""));
    let who = format!("user_id:{uid}");
    let p = submit(
        &mut b,
        &shares,
        &shares,
        &[("to", &who), ("access_level", "read")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let rec = std.get(&format!("/r/Deal__c/{deal}")).await;
    assert_eq!(rec.status, StatusCode::OK);
    assert!(!rec.body.contains(&format!("href=\"{shares}\"")));
    assert!(std.get(&shares).await.status.is_client_error());
    let page = b.get(&shares).await.body;
    assert!(page.contains(&std_name));
    let share_id = between(&page, &format!("action=\"{shares}/"), "/delete").to_string();
    let p = submit(&mut b, &shares, &format!("{shares}/{share_id}/delete"), &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(
        std.get(&format!("/r/Deal__c/{deal}")).await.status,
        StatusCode::NOT_FOUND
    );

    // Connected apps: the secret on the creation answer only.
    let p = submit(
        &mut b,
        "/setup/connected-apps",
        "/setup/connected-apps",
        &[("name", "Sync"), ("run_as_user_id", "")],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("value=\"Sync\""));
    let p = submit(
        &mut b,
        "/setup/connected-apps",
        "/setup/connected-apps",
        &[("name", "Sync"), ("run_as_user_id", &uid)],
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let secret = between(&p.body, "id=\"client-secret\">", "<").to_string();
    assert!(secret.len() >= 20);
    let list = b.get("/setup/connected-apps").await.body;
    assert!(list.contains("Sync") && !list.contains(&secret));

    // The audit log: filters, bad dates next to their input, paging.
    let p = b.get("/setup/audit-log?action=sharing_rule.create").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("sharing_rule.create"));
    assert!(!p.body.contains("share.grant"));
    let p = b.get("/setup/audit-log?action=share.grant").await;
    assert!(p.body.contains("share.grant"), "{}", p.body);
    let p = b.get("/setup/audit-log?from=31-01-2026").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("id=\"al-from-err\""));
    assert!(p.body.contains("value=\"31-01-2026\""));
    let p = b
        .get("/setup/audit-log?from=2030-01-02&to=2030-01-01")
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    let p = b.get(&format!("/setup/audit-log?actor={uid}")).await;
    assert!(
        p.body.contains("No entries match."),
        "the standard user changed nothing"
    );
    let p = b.get("/setup/audit-log?to=2000-01-01").await;
    assert!(p.body.contains("No entries match."));
    for i in 0..55 {
        api.post("/services/admin/v1/roles", json!({"name": format!("R{i}")}))
            .await;
    }
    let p = b.get("/setup/audit-log?action=role.create").await;
    let next = between(&p.body, "rel=\"next\" href=\"", "\"")
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let p2 = b.get(&next).await;
    assert_eq!(p2.status, StatusCode::OK, "{next}");
    assert_eq!(p.body.matches("<th scope=\"row\">role.create").count(), 50);
    assert_eq!(
        p2.body.matches("<th scope=\"row\">role.create").count(),
        6,
        "{next}"
    );
    server.stop().await;
}

const OPERATOR_TOKEN: &str = "op-secret-token-for-tests-0123456789";

async fn operator_login_form(b: &mut Browser) -> String {
    let p = b.get("/operator/login").await;
    assert_eq!(p.status, StatusCode::OK);
    p.csrf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_view_is_for_operators_only() {
    // Without an operator token configured, there is no operator view.
    let plain = WebServer::start().await;
    for path in ["/operator", "/operator/login", "/operator/shards"] {
        assert_eq!(
            Browser::new(&plain.base).get(path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    plain.stop().await;

    let server = WebServer::start_with_operator_token(OPERATOR_TOKEN).await;
    let api = server.tenant("oper").await;
    let (_, org) = api.get("/services/admin/v1/organization").await;
    let tenant_id = org["id"].as_str().unwrap().to_string();
    // A tenant's administrator, signed in, opens nothing.
    let mut admin = admin_browser(&server, &api).await;
    let csrf = admin.get("/").await.csrf();
    for path in [
        "/operator".to_string(),
        "/operator/shards".into(),
        "/operator/caches".into(),
        format!("/operator/tenants/{tenant_id}"),
    ] {
        let p = admin.get(&path).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
        assert!(!p.body.contains("Maintenance"), "{path}");
    }
    for path in [
        "/operator/maintenance".to_string(),
        "/operator/logout".into(),
        format!("/operator/tenants/{tenant_id}/rate-limits"),
        format!("/operator/tenants/{tenant_id}/move"),
        format!("/operator/tenants/{tenant_id}/move/rollback"),
    ] {
        let p = admin
            .post(&path, &[("_csrf", &csrf), ("enabled", "1")])
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "POST {path}");
    }
    assert!(!server.platform.maintenance().enabled);
    // Nor does their session token pass as the operator token.
    let sid = admin
        .cookies
        .get(mosaic_web::SESSION_COOKIE)
        .unwrap()
        .clone();
    let form = operator_login_form(&mut admin).await;
    let p = admin
        .post("/operator/login", &[("_csrf", &form), ("token", &sid)])
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(!p.set_cookies.iter().any(|c| c.starts_with("mosaic_op=")));

    // A forged session cookie is refused.
    let mut forged = Browser::new(&server.base);
    forged.cookies.insert(
        "mosaic_op".into(),
        format!("v1.9999999999.00.{}", "ab".repeat(32)),
    );
    assert_eq!(forged.get("/operator").await.status, StatusCode::FORBIDDEN);

    // The operator signs in: a strict, HttpOnly cookie without the token.
    let mut op = Browser::new(&server.base);
    let form = operator_login_form(&mut op).await;
    let p = op
        .post(
            "/operator/login",
            &[("_csrf", "wrong"), ("token", OPERATOR_TOKEN)],
        )
        .await;
    assert_eq!(
        p.status,
        StatusCode::FORBIDDEN,
        "the form's CSRF token is checked"
    );
    let form2 = operator_login_form(&mut op).await;
    assert_ne!(form, form2);
    let p = op
        .post(
            "/operator/login",
            &[("_csrf", &form2), ("token", OPERATOR_TOKEN)],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let cookie = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("mosaic_op="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/operator")
    );
    assert!(!cookie.contains(OPERATOR_TOKEN));
    let home = op.get("/operator").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Degradation level"));
    assert!(home.body.contains("record_store"), "{}", home.body);
    let ocsrf = home.csrf();
    for path in [
        "/operator/shards".to_string(),
        "/operator/caches".into(),
        format!("/operator/tenants/{tenant_id}"),
    ] {
        let p = op.get(&path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
    }
    assert!(op.get("/operator/shards").await.body.contains(&tenant_id));

    // Maintenance on: tenants are refused, the operator view still works.
    let p = op
        .post(
            "/operator/maintenance",
            &[("_csrf", "nope"), ("enabled", "1")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let long = "m".repeat(600);
    let p = op
        .post(
            "/operator/maintenance",
            &[("_csrf", &ocsrf), ("enabled", "1"), ("message", &long)],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("id=\"message-err\""));
    assert!(!server.platform.maintenance().enabled);
    let p = op
        .post(
            "/operator/maintenance",
            &[
                ("_csrf", &ocsrf),
                ("enabled", "1"),
                ("message", "Upgrading, back at 10:00"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(server.platform.maintenance().enabled);
    let (st, _) = api.get(&format!("{DATA}/sobjects")).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    let home = op.get("/operator?done=maintenance-on").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Turn maintenance off"));
    let p = op
        .post(
            "/operator/maintenance",
            &[("_csrf", &ocsrf), ("enabled", "0")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(!server.platform.maintenance().enabled);
    let (st, _) = api.get(&format!("{DATA}/sobjects")).await;
    assert_eq!(st, StatusCode::OK);
    let log = server.platform.operators.audit_log(50, None).await.unwrap();
    assert!(
        log.iter()
            .filter(|r| r.action == "operator.maintenance.switch")
            .count()
            >= 2
    );
    assert!(log.iter().any(|r| r.action == "operator.login"));

    // Rate limits: bad input next to its class, kept; then saved.
    let tpage = format!("/operator/tenants/{tenant_id}");
    let p = op
        .post(
            &format!("{tpage}/rate-limits"),
            &[("_csrf", &ocsrf), ("query.per_second", "lots")],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"query-err\""));
    assert!(p.body.contains("value=\"lots\""));
    let p = op
        .post(
            &format!("{tpage}/rate-limits"),
            &[
                ("_csrf", &ocsrf),
                ("query.per_second", "7"),
                ("query.burst", "9"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let o = server.platform.rate_overrides(&tenant_id).await.unwrap();
    assert_eq!(o.0.len(), 1);
    // A move to a shard that does not exist: refused next to the input.
    let p = op
        .post(&format!("{tpage}/move"), &[("_csrf", &ocsrf), ("to", "")])
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("id=\"to-err\""));
    assert_eq!(
        op.get("/operator/tenants/not-an-id").await.status,
        StatusCode::NOT_FOUND
    );

    // Signing out ends the view for this browser.
    let p = op.post("/operator/logout", &[("_csrf", &ocsrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(op.get("/operator").await.status, StatusCode::FORBIDDEN);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_operator_tokens_are_rate_limited() {
    let server = WebServer::start_with_operator_token(OPERATOR_TOKEN).await;
    let mut b = Browser::new(&server.base);
    let limit = mosaic_access::operators::OPERATOR_LOGIN_FAILURES;
    for i in 0..limit {
        let form = operator_login_form(&mut b).await;
        let p = b
            .post(
                "/operator/login",
                &[("_csrf", &form), ("token", &format!("guess-{i}"))],
            )
            .await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(p.body.contains("not the operator token"));
    }
    let form = operator_login_form(&mut b).await;
    let p = b
        .post(
            "/operator/login",
            &[("_csrf", &form), ("token", OPERATOR_TOKEN)],
        )
        .await;
    assert_eq!(
        p.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right token waits"
    );
    assert!(p.body.contains("Too many failed sign-ins"));
    assert!(!p.set_cookies.iter().any(|c| c.starts_with("mosaic_op=")));
    server.stop().await;
}
