//! Logging in as Salesforce's clients do: the partner SOAP API's `login`
//! and `logout`, the identity URL and `userinfo`, and the Data API's
//! versions and resources lists (every advertised resource is routed).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const PASSWORD: &str = "correct-horse-battery";

fn login_envelope(user: &str, pass: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>{user}</n1:username><n1:password>{pass}</n1:password></n1:login></env:Body></env:Envelope>"#
    )
}

async fn soap(base: &str, path: &str, body: &str) -> (StatusCode, String) {
    let res = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("Content-Type", "text/xml; charset=UTF-8")
        .header("SOAPAction", "login")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let s = res.status();
    (s, res.text().await.unwrap())
}

/// The text of the first `<name>` element (as jsforce reads it).
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..start + end].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_login_gives_a_rest_session_and_logout_ends_it() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;

    let (s, xml) = soap(
        &server.base,
        "/services/Soap/u/60.0",
        &login_envelope(&admin.username, PASSWORD),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    assert!(
        xml.contains(r#"xmlns="urn:partner.soap.sforce.com""#),
        "{xml}"
    );
    assert!(xml.contains("<loginResponse><result>"), "{xml}");
    let sid = element(&xml, "sessionId").expect("sessionId");
    let server_url = element(&xml, "serverUrl").unwrap();
    assert_eq!(
        server_url,
        format!("{}/services/Soap/u/60.0/{}", server.base, admin.tenant_id)
    );
    assert_eq!(
        element(&xml, "metadataServerUrl").unwrap(),
        format!("{}/services/Soap/m/60.0/{}", server.base, admin.tenant_id)
    );
    assert_eq!(element(&xml, "userId").unwrap(), admin.user_id);
    assert_eq!(element(&xml, "organizationId").unwrap(), admin.tenant_id);
    assert_eq!(element(&xml, "userName").unwrap(), admin.username);
    assert_eq!(element(&xml, "passwordExpired").unwrap(), "false");
    assert_eq!(element(&xml, "sandbox").unwrap(), "false");
    assert_eq!(element(&xml, "sessionSecondsValid").unwrap(), "7200");
    for name in [
        "organizationName",
        "userFullName",
        "userEmail",
        "userTimeZone",
        "currencySymbol",
        "userLanguage",
        "userLocale",
    ] {
        assert!(xml.contains(&format!("<{name}>")), "{name} in {xml}");
    }

    // The session is a bearer token of the REST API.
    let rest = admin.with_token(&sid);
    let (s, v) = rest.get(&format!("{DATA}/sobjects")).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // The serverUrl form answers too; logout ends the session.
    let logout = format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Header><urn:SessionHeader><urn:sessionId>{sid}</urn:sessionId></urn:SessionHeader></soapenv:Header><soapenv:Body><urn:logout/></soapenv:Body></soapenv:Envelope>"#
    );
    let path = server_url.trim_start_matches(&server.base).to_string();
    let (s, xml) = soap(&server.base, &path, &logout).await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    assert!(xml.contains("<logoutResponse/>"), "{xml}");
    assert_eq!(
        rest.get(&format!("{DATA}/sobjects")).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A second logout with the ended session is a fault.
    let (s, xml) = soap(&server.base, &path, &logout).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        xml.contains("<faultcode>sf:INVALID_SESSION_ID</faultcode>"),
        "{xml}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_logins_and_bad_envelopes_are_soap_faults() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    let url = "/services/Soap/u/60.0";

    for (user, pass) in [
        (admin.username.as_str(), "wrong password"),
        ("nobody@example.test", PASSWORD),
    ] {
        let (s, xml) = soap(&server.base, url, &login_envelope(user, pass)).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{xml}");
        assert_eq!(
            element(&xml, "faultcode").as_deref(),
            Some("sf:INVALID_LOGIN")
        );
        assert_eq!(
            element(&xml, "faultstring").as_deref(),
            Some("INVALID_LOGIN: Invalid username, password, security token; or user locked out.")
        );
        assert!(
            xml.contains("<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>"),
            "{xml}"
        );
        assert!(!xml.contains("sessionId"));
    }

    let malformed: [(&str, &str); 7] = [
        ("<env:Envelope><env:Body>", "malformed XML"),
        ("not xml at all", "outside the Envelope"),
        ("<root/>", "not a SOAP Envelope"),
        ("", "empty"),
        (
            r#"<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><Envelope><Body><login><username>&x;</username></login></Body></Envelope>"#,
            "DOCTYPE",
        ),
        (
            "<Envelope><Body><login><username>a</username></login></Body></Envelope>",
            "username and password",
        ),
        ("<Envelope><Header/></Envelope>", "no operation"),
    ];
    for (body, want) in malformed {
        let (s, xml) = soap(&server.base, url, body).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{body}: {xml}");
        assert_eq!(
            element(&xml, "faultcode").as_deref(),
            Some("soapenv:Client"),
            "{xml}"
        );
        assert!(
            element(&xml, "faultstring").unwrap().contains(want),
            "{body}: {xml}"
        );
    }
    let deep = format!(
        "<Envelope>{}{}</Envelope>",
        "<a>".repeat(100),
        "</a>".repeat(100)
    );
    let (s, xml) = soap(&server.base, url, &deep).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(xml.contains("deeper than"), "{xml}");

    // Not XML at all: 415; an operation the SOAP API lacks: 501.
    let res = reqwest::Client::new()
        .post(format!("{}{url}", server.base))
        .json(&json!({"username": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, xml) = soap(
        &server.base,
        url,
        r#"<Envelope><Body><query><queryString>SELECT Id FROM X</queryString></query></Body></Envelope>"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_IMPLEMENTED, "{xml}");
    assert!(xml.contains("UNSUPPORTED_API_OPERATION"));
    let (s, xml) = soap(
        &server.base,
        "/services/Soap/u/abc",
        &login_envelope("a", "b"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{xml}");
    assert!(xml.contains("UNSUPPORTED_API_VERSION"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_login_follows_the_password_grant_rules() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    let username = format!("std-{}@example.test", admin.tenant_id);
    let (s, v) = admin
        .post(
            "/services/admin/v1/users",
            json!({"username": username, "password": PASSWORD, "profile": "standard"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let uid = v["id"].as_str().unwrap().to_string();

    // An administrator's reset: the temporary password is right, but no
    // session is given before it is changed.
    let temporary = "temporary passphrase 7";
    let (s, v) = admin
        .post(
            &format!("/services/admin/v1/users/{uid}/password"),
            json!({"password": temporary}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, xml) = soap(
        &server.base,
        "/services/Soap/u/60.0",
        &login_envelope(&username, temporary),
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        element(&xml, "faultcode").as_deref(),
        Some("sf:INVALID_OPERATION_WITH_EXPIRED_PASSWORD"),
        "{xml}"
    );

    // Repeated failures lock the username out, SOAP and OAuth alike: after
    // the limit even the right password is refused.
    let mut locked = false;
    for _ in 0..30 {
        let res = reqwest::Client::new()
            .post(format!("{}/services/Soap/u/60.0", server.base))
            .header("Content-Type", "text/xml")
            .body(login_envelope(&admin.username, "wrong password"))
            .send()
            .await
            .unwrap();
        let retry = res.headers().contains_key("retry-after");
        assert!(res.text().await.unwrap().contains("sf:INVALID_LOGIN"));
        if retry {
            locked = true;
            break;
        }
    }
    assert!(locked, "failed SOAP logins lock the username out");
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", server.base))
        .form(&[
            ("grant_type", "password"),
            ("username", admin.username.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the OAuth endpoint shares the lockout"
    );
    let res = reqwest::Client::new()
        .post(format!("{}/services/Soap/u/60.0", server.base))
        .header("Content-Type", "text/xml")
        .body(login_envelope(&admin.username, PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().contains_key("retry-after"));
    assert!(res.text().await.unwrap().contains("sf:INVALID_LOGIN"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_url_and_userinfo() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    let other = server.tenant().await;
    let username = format!("std-{}@example.test", admin.tenant_id);
    let (s, v) = admin
        .post(
            "/services/admin/v1/users",
            json!({"username": username, "password": PASSWORD, "profile": "standard"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", server.base))
        .form(&[
            ("grant_type", "password"),
            ("username", username.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let t: Value = res.json().await.unwrap();
    let std_token = t["access_token"].as_str().unwrap().to_string();
    let standard = admin.with_token(&std_token);
    let std_id = v["id"].as_str().unwrap();
    let id_url = t["id"].as_str().unwrap().to_string();
    assert_eq!(
        id_url,
        format!("{}/id/{}/{std_id}", server.base, admin.tenant_id),
        "the token response's id is the identity URL"
    );
    let path = id_url.trim_start_matches(&server.base).to_string();

    let (s, me) = standard.get(&format!("{path}?format=json")).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["id"], id_url);
    assert_eq!(me["user_id"], std_id);
    assert_eq!(me["organization_id"], admin.tenant_id.as_str());
    assert_eq!(me["username"], username.as_str());
    assert_eq!(me["active"], true);
    assert_eq!(me["user_type"], "STANDARD");
    assert!(me["utcOffset"].is_i64());
    for k in ["display_name", "email", "language", "locale"] {
        assert!(me.get(k).is_some(), "{k}: {me}");
    }
    assert_eq!(
        me["urls"]["rest"],
        format!("{}/services/data/v60.0/", server.base)
    );
    for k in [
        "enterprise",
        "partner",
        "sobjects",
        "search",
        "query",
        "recent",
        "profile",
    ] {
        assert!(me["urls"][k].is_string(), "{k}");
    }

    // ?oauth_token= instead of the header.
    let (s, v) = server
        .anonymous()
        .get(&format!("{path}?oauth_token={}", enc(&std_token)))
        .await;
    assert_eq!((s, v["user_id"].as_str()), (StatusCode::OK, Some(std_id)));
    assert_eq!(
        server.anonymous().get(&path).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        standard.get(&format!("{path}?format=xml")).await.0,
        StatusCode::BAD_REQUEST
    );

    // Someone else's identity: the user gets 403, another tenant 403, the
    // tenant's administrator reads it.
    let admin_path = format!("/id/{}/{}", admin.tenant_id, admin.user_id);
    assert_eq!(standard.get(&admin_path).await.0, StatusCode::FORBIDDEN);
    assert_eq!(other.get(&path).await.0, StatusCode::FORBIDDEN);
    assert_eq!(admin.get(&path).await.0, StatusCode::OK);

    let (s, info) = standard.get("/services/oauth2/userinfo").await;
    assert_eq!(s, StatusCode::OK, "{info}");
    assert_eq!(info["sub"], id_url);
    assert_eq!(info["preferred_username"], username.as_str());
    assert_eq!(info["organization_id"], admin.tenant_id.as_str());
    assert_eq!(info["user_id"], std_id);
    assert!(info["urls"]["rest"].is_string());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_resource_is_routed() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    let (s, versions) = server.anonymous().get("/services/data").await;
    assert_eq!(s, StatusCode::OK);
    let versions = versions.as_array().unwrap().clone();
    assert!(versions.iter().any(|v| v["version"] == "60.0"));
    let mut fetched = 0;
    for v in versions {
        let url = v["url"].as_str().unwrap();
        let (s, resources) = admin.get(url).await;
        assert_eq!(s, StatusCode::OK, "{url}: {resources}");
        let resources = resources.as_object().unwrap().clone();
        for name in [
            "sobjects",
            "query",
            "composite",
            "limits",
            "recent",
            "tooling",
        ] {
            assert!(resources.contains_key(name), "{url} lists {name}");
        }
        for (name, link) in resources {
            let link = link.as_str().unwrap();
            let (s, body) = admin.get(link).await;
            assert_ne!(s, StatusCode::NOT_FOUND, "{name} {link}: {body}");
            assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{name} {link}: {body}");
            assert!(!s.is_server_error(), "{name} {link}: {s} {body}");
            fetched += 1;
        }
        // The composite resource lists its own, each routed.
        let (_, composite) = admin.get(&format!("{url}/composite")).await;
        for (name, link) in composite.as_object().unwrap() {
            // A tree is posted to tree/{object}.
            let link = if name == "tree" {
                json!(format!("{}/Nothing__c", link.as_str().unwrap()))
            } else {
                link.clone()
            };
            let res = reqwest::Client::new()
                .post(format!("{}{}", server.base, link.as_str().unwrap()))
                .bearer_auth(admin.token.as_ref().unwrap())
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body: Value = res.json().await.unwrap();
            // Routed: no answer from the fallback (tree/Nothing__c names
            // an object that does not exist).
            assert_ne!(
                body[0]["message"], "The requested resource does not exist",
                "composite {name}: {status}"
            );
        }
    }
    assert!(fetched >= 16, "{fetched}");
    server.stop().await;
}
