//! The web app over HTTP (no browser): sessions and cookies, CSRF, return
//! paths, stale saves, errors next to fields, field-level security and
//! sharing on every page, stored XSS, lists with keyset paging, lookups,
//! assets. Runs on SQLite, and on PostgreSQL with `MOSAIC_TEST_BACKEND=postgres`.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// Deals of the admin; a standard user who may read/create/edit deals but
/// not see `Secret__c`; returns (admin api, std username, admin deal id).
async fn setup(server: &WebServer, tag: &str) -> (Api, String, String) {
    let api = server.tenant(tag).await;
    sales_app(&api).await;
    let acc = api
        .record(
            "Account__c",
            json!({"Name": "Globex", "Industry__c": "Energy"}),
        )
        .await;
    let deal = api
        .record(
            "Deal__c",
            json!({"Name": "Alpha deal", "Account__c": acc, "Amount__c": 5000, "Probability__c": 50,
                   "Close__c": "2025-03-15", "Secret__c": "top-secret-value", "Card__c": "4111111111111111"}),
        )
        .await;
    let (uid, username) = api.user("std", "standard").await;
    let ps = api
        .post(
            "/services/admin/v1/permission-sets",
            json!({"name": "Sales",
                   "object_permissions": [
                       {"object": "Deal__c", "read": true, "create": true, "edit": true},
                       {"object": "Account__c", "read": true},
                       {"object": "Line__c", "read": true}],
                   "field_permissions": [
                       {"object": "Deal__c", "field": "Account__c", "read": true, "edit": true},
                       {"object": "Deal__c", "field": "Amount__c", "read": true, "edit": true},
                       {"object": "Deal__c", "field": "Stage__c", "read": true, "edit": true},
                       {"object": "Deal__c", "field": "Close__c", "read": true, "edit": true},
                       {"object": "Deal__c", "field": "Notes__c", "read": true},
                       {"object": "Line__c", "field": "Deal__c", "read": true},
                       {"object": "Line__c", "field": "Qty__c", "read": true}]}),
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
    (api, username, deal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_cookies_return_paths_and_lockout() {
    let server = WebServer::start().await;
    let (api, std_user, deal) = setup(&server, "sess").await;
    let mut b = Browser::new(&server.base);

    // Signed out: any page sends to the login page with a local return path.
    let p = b.get(&format!("/r/Deal__c/{deal}")).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(
        p.location.as_deref(),
        Some(format!("/login?next=%2Fr%2FDeal__c%2F{deal}").as_str())
    );
    let login = b.get("/login?next=%2Fo%2FDeal__c").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login.body.contains("value=\"/o/Deal__c\""),
        "the return path is kept"
    );
    // A foreign return path is never followed.
    let evil = b.get("/login?next=https%3A%2F%2Fevil.example%2F").await;
    assert!(!evil.body.contains("evil.example"));
    let csrf = evil.csrf();
    let p = b
        .post(
            "/login",
            &[
                ("username", &api.username),
                ("password", PASSWORD),
                ("next", "//evil.example/x"),
                ("_csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(
        p.location.as_deref(),
        Some("/"),
        "a foreign return path becomes /"
    );
    let cookie = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("mosaic_sid="))
        .expect("session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag");
    let home = b.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.body.contains("Deals") && home.body.contains("Accounts"),
        "object tabs"
    );

    // Logout revokes the session: the same cookie no longer works anywhere.
    let sid = b.cookies.get("mosaic_sid").cloned().unwrap();
    let csrf = home.csrf();
    let p = b.post("/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    b.cookies.insert("mosaic_sid".into(), sid.clone());
    let p = b.get("/").await;
    assert_eq!(
        p.status,
        StatusCode::SEE_OTHER,
        "a revoked session is signed out"
    );
    let (s, _) = api
        .clone()
        .send(reqwest::Method::GET, "/services/data/v60.0/sobjects", None)
        .await;
    assert_eq!(s, StatusCode::OK, "other sessions are untouched");

    // Over TLS (a trusted TLS-terminating proxy says so) the cookie is Secure.
    let mut tls = Browser::new(&server.base);
    let form = tls.get("/login").await;
    let csrf = form.csrf();
    let p = tls
        .post_with(
            "/login",
            &[
                ("username", &api.username),
                ("password", PASSWORD),
                ("next", "/"),
                ("_csrf", &csrf),
            ],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert!(p
        .set_cookies
        .iter()
        .any(|c| c.starts_with("mosaic_sid=") && c.contains("Secure")));

    // A login form without its CSRF cookie is refused.
    let mut fresh = Browser::new(&server.base);
    let p = fresh
        .post(
            "/login",
            &[
                ("username", &api.username),
                ("password", PASSWORD),
                ("_csrf", "x"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);

    // The same lockout as the OAuth password grant: after the failures it
    // tolerates, the form refuses, and so does the token endpoint.
    let mut bad = Browser::new(&server.base);
    let mut last = StatusCode::OK;
    for _ in 0..=mosaic_access::grants::LOGIN_FAILURES_PER_USER {
        let f = bad.get("/login").await;
        let csrf = f.csrf();
        last = bad
            .post(
                "/login",
                &[
                    ("username", &std_user),
                    ("password", "wrong-password-1"),
                    ("_csrf", &csrf),
                ],
            )
            .await
            .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", server.base))
        .form(&[
            ("grant_type", "password"),
            ("username", std_user.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "one lockout for both doors"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_the_sessions_csrf_token() {
    let server = WebServer::start().await;
    let (api, _, deal) = setup(&server, "csrf").await;
    let mut b = Browser::new(&server.base);
    assert_eq!(
        b.login(&api.username, PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let form = b.get(&format!("/r/Deal__c/{deal}/edit")).await;
    let version = form.hidden("_version");
    for token in [None, Some("forged0000000000000000000000000"), Some("")] {
        let mut fields = vec![
            ("Name", "Hacked"),
            ("Amount__c", "1"),
            ("_version", version.as_str()),
        ];
        if let Some(t) = token {
            fields.push(("_csrf", t));
        }
        let p = b.post(&format!("/r/Deal__c/{deal}/edit"), &fields).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{token:?}");
        assert!(p.body.contains("Nothing was changed"));
        let p = b.post(&format!("/r/Deal__c/{deal}/delete"), &fields).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        let p = b.post("/o/Deal__c/new", &fields).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
    }
    // Another session's token is no better.
    let mut other = Browser::new(&server.base);
    other.login(&api.username, PASSWORD).await;
    let theirs = other.get("/").await.csrf();
    let p = b
        .post(
            &format!("/r/Deal__c/{deal}/delete"),
            &[("_csrf", theirs.as_str())],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let (_, v) = api.get(&format!("{DATA}/sobjects/Deal__c/{deal}")).await;
    assert_eq!(v["Name"], "Alpha deal", "nothing changed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_show_errors_in_place_and_refuse_stale_overwrites() {
    let server = WebServer::start().await;
    let (api, _, deal) = setup(&server, "save").await;
    let mut b = Browser::new(&server.base);
    b.login(&api.username, PASSWORD).await;
    let form = b.get(&format!("/r/Deal__c/{deal}/edit")).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains("type=\"date\"")
            && form.body.contains("<select")
            && form.body.contains("type=\"checkbox\"")
    );
    assert!(
        form.body.contains("data-lookup="),
        "lookups get a type-ahead control"
    );
    assert!(
        !form.body.contains("4111111111111111"),
        "encrypted values never reach a form"
    );
    let csrf = form.csrf();
    let version = form.hidden("_version");
    let path = format!("/r/Deal__c/{deal}/edit");
    // A validation rule's error: next to its field, with the input kept.
    let p = b
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("_version", &version),
                ("Name", "Alpha deal"),
                ("Amount__c", "2,000,000"),
                ("Stage__c", "Open"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        p.body.contains("Amount is too large for a single deal"),
        "{}",
        p.body
    );
    assert!(
        p.body.contains("id=\"f-Amount__c-err\""),
        "the error sits under the field"
    );
    assert!(p.body.contains("value=\"2,000,000\""), "the input is kept");
    assert!(
        p.body.contains("autofocus"),
        "the first error takes the focus"
    );
    // A required field left blank.
    let p = b
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("_version", &version),
                ("Name", ""),
                ("Amount__c", "10"),
            ],
        )
        .await;
    assert!(p.body.contains("id=\"f-Name-err\""), "{}", p.body);

    // Someone saves meanwhile: the form says so and overwrites nothing.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (s, _) = api
        .patch(
            &format!("{DATA}/sobjects/Deal__c/{deal}"),
            json!({"Amount__c": 7777}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let p = b
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("_version", &version),
                ("Name", "Alpha deal"),
                ("Amount__c", "6000"),
                ("Stage__c", "Won"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::CONFLICT);
    assert!(p.body.contains("Keep mine") && p.body.contains("Take theirs"));
    assert!(
        p.body
            .contains("Saved meanwhile: <strong>$7,777.00</strong>"),
        "{}",
        p.body
    );
    let (_, v) = api.get(&format!("{DATA}/sobjects/Deal__c/{deal}")).await;
    assert_eq!(v["Amount__c"].to_string(), "7777.00", "no silent overwrite");
    // Keep mine: the form now carries the newer version and saves.
    let newer = p.hidden("_version");
    let p = b
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("_version", &newer),
                ("Name", "Alpha deal"),
                ("Amount__c", "6000"),
                ("Stage__c", "Won"),
                ("_keep_mine", "1"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let (_, v) = api.get(&format!("{DATA}/sobjects/Deal__c/{deal}")).await;
    assert_eq!(v["Amount__c"].to_string(), "6000.00");
    assert_eq!(v["Stage__c"], "Won");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_fields_and_unshared_records_never_show() {
    let server = WebServer::start().await;
    let (api, std_user, deal) = setup(&server, "fls").await;
    let mut admin = Browser::new(&server.base);
    admin.login(&api.username, PASSWORD).await;
    let page = admin.get(&format!("/r/Deal__c/{deal}")).await;
    assert!(
        page.body.contains("top-secret-value"),
        "the admin sees the field"
    );
    assert!(
        !page.body.contains("4111111111111111"),
        "encrypted text is masked"
    );
    assert!(page.body.contains("••••1111"));
    assert!(
        page.body.contains("$5,000.00")
            && page.body.contains("3/15/2025")
            && page.body.contains("$2,500.00"),
        "formatted, formula computed"
    );

    let mut u = Browser::new(&server.base);
    assert_eq!(
        u.login(&std_user, PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let own = u.get("/o/Deal__c/new").await;
    assert!(!own.body.contains("Secret"), "no hidden field in forms");
    assert!(
        own.body.contains("id=\"f-Notes__c\"") && own.body.contains("class=\"readonly\""),
        "a read-only field is not editable"
    );
    let csrf = own.csrf();
    let p = u
        .post(
            "/o/Deal__c/new",
            &[
                ("_csrf", &csrf),
                ("Name", "Std deal"),
                ("Amount__c", "42"),
                ("Stage__c", "Open"),
                ("Secret__c", "smuggled"),
                ("Notes__c", "smuggled"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let mine = p.location.unwrap();
    let page = u.get(mine.split('?').next().unwrap()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page.body.contains("Secret") && !page.body.contains("smuggled"),
        "{}",
        page.body
    );
    let list = u.get("/o/Deal__c").await;
    assert!(list.body.contains("Std deal"));
    assert!(
        !list.body.contains("Alpha deal"),
        "a private record of another owner is not listed"
    );
    let p = u.get(&format!("/r/Deal__c/{deal}")).await;
    assert_eq!(
        p.status,
        StatusCode::NOT_FOUND,
        "an unshared record is a 404 page"
    );
    assert!(p.body.contains("Not found"));
    assert!(!p.body.contains("Alpha"));
    let p = u.get(&format!("/r/Deal__c/{deal}/edit")).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    let p = u.get("/search?q=Alpha").await;
    assert!(!p.body.contains("Alpha deal"), "search respects sharing");
    for path in [
        "/o/Nope__c",
        "/r/Deal__c/not-an-id",
        "/r/Nope__c/x",
        "/o/Nope__c/new",
    ] {
        let p = u.get(path).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{path}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_typed_reaches_html_unescaped() {
    let server = WebServer::start().await;
    let api = server.tenant("xss").await;
    let payloads = [
        "<script>alert('x')</script>",
        "\"><img src=x onerror=alert(1)>",
        "' onmouseover='alert(1)",
    ];
    let p0 = payloads[0];
    api.post(&format!("{META}/objects"), json!({
        "api_name": "Note__c", "label": format!("Note {p0}"), "plural_label": format!("Notes {}", payloads[1]),
        "fields": [
            {"api_name": "Text__c", "label": format!("Text {}", payloads[1]), "data_type": "text", "length": 200},
            {"api_name": "Area__c", "data_type": "textarea", "length": 255},
            {"api_name": "Long__c", "data_type": "long_text", "length": 2000},
            {"api_name": "Rich__c", "data_type": "rich_text", "length": 2000},
            {"api_name": "Mail__c", "data_type": "email"},
            {"api_name": "Phone__c", "data_type": "phone"},
            {"api_name": "Link__c", "data_type": "url"},
            {"api_name": "Safe__c", "data_type": "url"},
            {"api_name": "Pick__c", "data_type": "picklist", "picklist_values": [
                {"value": "p1", "label": payloads[0]}, {"value": payloads[1]}]},
            {"api_name": "Multi__c", "data_type": "multi_picklist", "picklist_values": [{"value": "m1", "label": payloads[2]}]},
            {"api_name": "Enc__c", "data_type": "encrypted_text", "length": 100}
        ]})).await;
    api.post(&format!("{META}/objects/Note__c/layouts"), json!({
        "name": format!("Layout {p0}"),
        "sections": [{"label": format!("Section {}", payloads[1]), "items": ["Name", "Text__c", "Area__c", "Long__c", "Rich__c", "Mail__c", "Phone__c", "Link__c", "Safe__c", "Pick__c", "Multi__c", "Enc__c"]}]})).await;
    api.post(&format!("{META}/objects/Note__c/listviews"), json!({
        "name": "Evil", "label": format!("View {p0}"), "columns": ["Name", "Text__c", "Link__c", "Pick__c"]})).await;
    let id = api
        .record(
            "Note__c",
            json!({"Name": payloads[1], "Text__c": payloads[0], "Area__c": payloads[2], "Long__c": payloads[0],
                   "Rich__c": payloads[1], "Phone__c": "+1 555 0100", "Link__c": "https://example.test/path",
                   "Safe__c": "https://example.test/?q=\"><b>", "Pick__c": "p1", "Multi__c": "m1", "Enc__c": payloads[0]}),
        )
        .await;
    // A javascript: URL is refused at save (and never a link on a page:
    // see the display unit tests).
    let (s, _) = api
        .send(
            reqwest::Method::PATCH,
            &format!("{DATA}/sobjects/Note__c/{id}"),
            Some(json!({"Link__c": "javascript:alert(1)"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let mut b = Browser::new(&server.base);
    b.login(&api.username, PASSWORD).await;
    let pages = [
        "/".to_string(),
        "/o/Note__c".to_string(),
        "/o/Note__c?view=Evil".to_string(),
        format!("/r/Note__c/{id}"),
        format!("/r/Note__c/{id}/edit"),
        format!("/r/Note__c/{id}/delete"),
        "/o/Note__c/new".to_string(),
        "/search?q=alert".to_string(),
        format!("/search?q={}", "%3Cscript%3Ealert"),
        format!("/o/Note__c?q={}", "%22%3E%3Cimg%20src%3Dx%3E"),
    ];
    for path in &pages {
        let p = b.get(path).await;
        assert!(p.status.is_success(), "{path}: {}", p.status);
        for raw in [
            "<script>alert",
            "<img src=x",
            "' onmouseover='",
            "href=\"javascript:",
            "<b>",
        ] {
            assert!(!p.body.contains(raw), "{path} contains {raw:?} unescaped");
        }
        assert!(!p.body.contains("javascript:alert(1)\""), "{path}");
    }
    let rec = b.get(&format!("/r/Note__c/{id}")).await;
    assert!(
        rec.body.contains("&#60;script&#62;") || rec.body.contains("&lt;script&gt;"),
        "shown as text"
    );
    assert!(
        rec.body
            .contains("href=\"https://example.test/?q=&#34;&#62;&#60;b&#62;\""),
        "an https URL is a link, escaped"
    );
    assert!(
        !rec.body.contains("href=\"javascript"),
        "a javascript: URL is never a link"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_by_keyset_and_lookups_type_ahead() {
    let server = WebServer::start().await;
    let api = server.tenant("list").await;
    sales_app(&api).await;
    let acc = api.record("Account__c", json!({"Name": "Globex"})).await;
    api.record("Account__c", json!({"Name": "Initech"})).await;
    let mut records = Vec::new();
    for i in 0..60 {
        // Mixed case and equal amounts: the order needs the id tiebreaker.
        let name = if i % 2 == 0 {
            format!("deal {i:02}")
        } else {
            format!("Deal {i:02}")
        };
        records.push(json!({"attributes": {"type": "Deal__c"}, "Name": name, "Amount__c": (i % 7) * 100, "Account__c": acc}));
    }
    api.post(
        &format!("{DATA}/composite/sobjects"),
        json!({"allOrNone": true, "records": records}),
    )
    .await;
    let mut b = Browser::new(&server.base);
    b.login(&api.username, PASSWORD).await;
    for sort in [
        "",
        "&sort=Amount__c&dir=desc",
        "&sort=Amount__c&dir=asc",
        "&sort=Name&dir=desc",
    ] {
        let mut seen: Vec<String> = Vec::new();
        let mut path = format!("/o/Deal__c?view=all{sort}");
        let mut pages = 0;
        loop {
            let p = b.get(&path).await;
            assert_eq!(p.status, StatusCode::OK);
            let names: Vec<String> = p
                .body
                .match_indices("<th scope=\"row\"><a href=\"/r/Deal__c/")
                .map(|(i, _)| {
                    p.body[i..]
                        .split('>')
                        .nth(2)
                        .unwrap()
                        .split('<')
                        .next()
                        .unwrap()
                        .to_string()
                })
                .collect();
            assert!(names.len() <= 25);
            seen.extend(names);
            pages += 1;
            let Some(at) = p.body.find("rel=\"next\"") else {
                break;
            };
            let href_start = p.body[..at].rfind("href=\"").unwrap() + 6;
            path = p.body[href_start..]
                .split('"')
                .next()
                .unwrap()
                .replace("&#38;", "&");
            assert!(pages < 10);
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(seen.len(), 60, "every record once ({sort}): {seen:?}");
        assert_eq!(unique.len(), 60, "no record twice ({sort})");
        assert_eq!(pages, 3);
    }
    // The count comes separately.
    let res = b
        .http
        .get(format!(
            "{}/o/Deal__c/count?view=all&q=deal%201",
            server.base
        ))
        .header("cookie", format!("mosaic_sid={}", b.cookies["mosaic_sid"]))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["count"], 10);
    // Type-ahead candidates for a lookup.
    let res = b
        .http
        .get(format!("{}/lookup/Account__c?q=glo", server.base))
        .header("cookie", format!("mosaic_sid={}", b.cookies["mosaic_sid"]))
        .send()
        .await
        .unwrap();
    let hits: serde_json::Value = res.json().await.unwrap();
    assert_eq!(hits, json!([{"id": acc, "name": "Globex"}]));
    let res = reqwest::get(format!("{}/lookup/Account__c?q=glo", server.base))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "signed-in users only"
    );
    // A tampered cursor is a clear error, not a query.
    let p = b.get("/o/Deal__c?view=all&after=bm90LWEtY3Vyc29y").await;
    assert!(p.body.contains("page cursor is not valid"), "{}", p.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_fingerprinted_and_cached_forever() {
    let server = WebServer::start().await;
    let mut b = Browser::new(&server.base);
    let login = b.get("/login").await;
    let css = mosaic_web::asset_path("app", "css");
    assert!(login.body.contains(&css));
    let res = reqwest::get(format!("{}{css}", server.base)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let res = reqwest::get(format!("{}/static/app.00000000.css", server.base))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn related_lists_create_children_and_recent_records_follow_views() {
    let server = WebServer::start().await;
    let (api, _, deal) = setup(&server, "rel").await;
    let mut b = Browser::new(&server.base);
    b.login(&api.username, PASSWORD).await;
    let page = b.get(&format!("/r/Deal__c/{deal}")).await;
    let new_href = format!("/o/Line__c/new?Deal__c={deal}&amp;_back=%2Fr%2FDeal__c%2F{deal}");
    assert!(
        page.body.contains(&new_href.replace("&amp;", "&#38;")),
        "{}",
        page.body
    );
    let form = b
        .get(&format!(
            "/o/Line__c/new?Deal__c={deal}&_back=%2Fr%2FDeal__c%2F{deal}"
        ))
        .await;
    assert!(
        form.body.contains("value=\"Alpha deal\""),
        "the parent is prefilled by name"
    );
    let csrf = form.csrf();
    for i in 0..4 {
        let name = format!("Line {i}");
        let qty = format!("{i}");
        let p = b
            .post(
                "/o/Line__c/new",
                &[
                    ("_csrf", &csrf),
                    ("Name", &name),
                    ("Qty__c", &qty),
                    ("Deal__c", &deal),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    }
    let page = b.get(&format!("/r/Deal__c/{deal}")).await;
    assert_eq!(
        page.body.matches("/r/Line__c/").count(),
        3,
        "the related list shows its page size"
    );
    assert!(page.body.contains("View all"));
    let all = b
        .get(&format!("/r/Deal__c/{deal}/related/Line__c/Deal__c"))
        .await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body.matches("<th scope=\"row\">").count(), 4);
    // History of the edit made through the API.
    api.patch(
        &format!("{DATA}/sobjects/Deal__c/{deal}"),
        json!({"Stage__c": "Won"}),
    )
    .await;
    let page = b.get(&format!("/r/Deal__c/{deal}")).await;
    assert!(page.body.contains("History") && page.body.contains("Won"));
    // Recent records on the home page.
    for _ in 0..50 {
        let home = b.get("/").await;
        if home.body.contains("Alpha deal") {
            return server.stop().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the viewed record never showed in recent records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_password_is_changed_at_the_sign_in() {
    let server = WebServer::start().await;
    let api = server.tenant("reset").await;
    let (uid, username) = api.user("reset", "standard").await;
    let temporary = "temporary passphrase 9";
    let (s, v) = api
        .send(
            reqwest::Method::POST,
            &format!("/services/admin/v1/users/{uid}/password"),
            Some(json!({"password": temporary})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    // The right temporary password shows the change form, not a session.
    let mut b = Browser::new(&server.base);
    let p = b.login(&username, temporary).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(
        p.body.contains("action=\"/password/expired\""),
        "{}",
        p.body
    );
    assert!(!b.cookies.contains_key("mosaic_sid"));
    let csrf = p.csrf();
    // A new password against the policy: the form again, with the reason.
    let p = b
        .post(
            "/password/expired",
            &[
                ("username", &username),
                ("current_password", temporary),
                ("new_password", "qwerty123456"),
                ("next", "/"),
                ("_csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("common"), "{}", p.body);
    let csrf = p.csrf();
    let p = b
        .post(
            "/password/expired",
            &[
                ("username", &username),
                ("current_password", temporary),
                ("new_password", "my very own passphrase"),
                ("next", "/"),
                ("_csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(b.cookies.contains_key("mosaic_sid"), "signed in");
    assert_eq!(b.get("/").await.status, StatusCode::OK);
    // The temporary password is gone.
    let mut other = Browser::new(&server.base);
    assert_eq!(
        other.login(&username, temporary).await.status,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_refusals_are_pages_on_the_web_app_and_json_on_the_api() {
    let server = WebServer::start().await;
    let api = server.tenant("gate").await;
    server
        .platform
        .set_maintenance(true, Some("Disks <b>swapped</b>".into()), "test")
        .await
        .expect("maintenance on");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/login", "/", "/o/Deal__c"] {
        let res = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(res.headers().get("retry-after").is_some(), "{path}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
        let body = res.text().await.unwrap();
        assert!(body.contains("Temporarily unavailable"), "{body}");
        assert!(
            body.contains("Disks &#60;b&#62;swapped&#60;/b&#62;"),
            "the operator's message, escaped: {body}"
        );
    }
    // The API keeps its JSON refusal.
    let (s, v) = api.get("/services/data/v60.0/sobjects").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v[0]["errorCode"], "SERVICE_UNAVAILABLE", "{v}");
    server
        .platform
        .set_maintenance(false, None, "test")
        .await
        .expect("maintenance off");
    let res = http
        .get(format!("{}/login", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
