//! Files over HTTP on both blob stores — the data directory and an
//! S3-compatible server (moto, `MOSAIC_MOTO_SERVER`): multipart and base64
//! uploads, linking, byte-identical downloads for a user who can see the
//! linked record and 404 for one who cannot, `Range` and `ETag`, new
//! versions and SOQL over them, quota and size limits (413), the safe
//! serving headers, and the orphan collector.

mod common;
use base64::Engine as _;
use common::*;
use mosaic_runtime::PlatformConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ADMIN: &str = "/services/admin/v1";
const PASSWORD: &str = "correct-horse-battery";

async fn login(admin: &Client, username: &str, id: &str) -> Client {
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", admin.base))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    let mut c = admin.with_token(t["access_token"].as_str().unwrap());
    c.user_id = id.to_string();
    c
}

/// A standard user who may read (and create) `Case__c` records.
async fn reader(admin: &Client, name: &str, set: &str) -> Client {
    let username = format!("{name}-{}@example.test", admin.tenant_id);
    let (s, v) = admin
        .post(
            &format!("{ADMIN}/users"),
            json!({"username": username, "password": PASSWORD, "email": "u@example.test", "profile": "standard"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (s, v) = admin
        .post(
            &format!("{ADMIN}/permission-sets/{set}/assignments"),
            json!({"user_id": id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    login(admin, &username, &id).await
}

fn multipart(entity: &Value, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "mosaic-test-boundary-7f3a";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"entity_content\"\r\nContent-Type: application/json\r\n\r\n{entity}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"VersionData\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(c: &Client, entity: Value, file: &[u8]) -> (StatusCode, Value) {
    let (ct, body) = multipart(&entity, file);
    let res = c
        .http
        .post(format!("{}{DATA}/sobjects/ContentVersion", c.base))
        .bearer_auth(c.token.as_deref().unwrap())
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn download(
    c: &Client,
    version: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut rb = c
        .http
        .get(format!(
            "{}{DATA}/sobjects/ContentVersion/{version}/VersionData",
            c.base
        ))
        .bearer_auth(c.token.as_deref().unwrap());
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let res = rb.send().await.unwrap();
    let (status, h) = (res.status(), res.headers().clone());
    (status, h, res.bytes().await.unwrap().to_vec())
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

async fn query(c: &Client, soql: &str) -> Value {
    let (s, v) = c.get(&format!("{DATA}/query?q={}", enc(soql))).await;
    assert_eq!(s, StatusCode::OK, "{soql}: {v}");
    v
}

/// The whole behaviour on one server.
async fn files_behave(server: &TestServer) {
    let admin = server.tenant().await;
    admin
        .create_object(json!({"api_name": "Case__c", "sharing_model": "private"}))
        .await;
    let (s, v) = admin
        .post(
            &format!("{ADMIN}/permission-sets"),
            json!({"name": "Cases", "label": "Cases", "object_permissions": [
                {"object": "Case__c", "create": true, "read": true, "edit": true}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let set = v["id"].as_str().unwrap().to_string();
    let alice = reader(&admin, "alice", &set).await;
    let bob = reader(&admin, "bob", &set).await;
    // Alice owns the case; Bob (private sharing, no role) cannot see it.
    let case = alice
        .create_record("Case__c", json!({"Name": "Broken pump"}))
        .await;

    // 1. Multipart upload linked to the case, 300 KB of binary.
    let file: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (s, v) = upload(
        &alice,
        json!({"PathOnClient": "pump-photo.bin", "Title": "Pump", "FirstPublishLocationId": case}),
        &file,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let v1 = v["id"].as_str().unwrap().to_string();

    let (s, h, body) = download(&alice, &v1, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sha(&body), sha(&file), "byte-identical download");
    assert_eq!(h["etag"], format!("\"{}\"", sha(&file)).as_str());
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"pump-photo.bin\""));
    // The admin sees every file; Bob sees none of the case's.
    assert_eq!(download(&admin, &v1, &[]).await.0, StatusCode::OK);
    assert_eq!(download(&bob, &v1, &[]).await.0, StatusCode::NOT_FOUND);
    let anon = admin.with_token("mos_not-a-token");
    assert_eq!(download(&anon, &v1, &[]).await.0, StatusCode::UNAUTHORIZED);

    // 2. Range and ETag.
    let (s, h, body) = download(&alice, &v1, &[("range", "bytes=1000-1999")]).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, file[1000..2000]);
    assert_eq!(h["content-range"], "bytes 1000-1999/300000");
    let (s, _, body) = download(&alice, &v1, &[("range", "bytes=-10")]).await;
    assert_eq!(
        (s, body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &file[299_990..])
    );
    let (s, h, _) = download(&alice, &v1, &[("range", "bytes=300000-")]).await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(h["content-range"], "bytes */300000");
    let etag = format!("\"{}\"", sha(&file));
    let (s, _, body) = download(&alice, &v1, &[("if-none-match", &etag)]).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());

    // 3. Linking the file to a second case shows it to that case's readers.
    let case2 = bob
        .create_record("Case__c", json!({"Name": "Bob's case"}))
        .await;
    let (s, v) = admin
        .get(&format!(
            "{DATA}/sobjects/ContentVersion/{v1}?fields=ContentDocumentId"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let doc = v["ContentDocumentId"].as_str().unwrap().to_string();
    // Bob cannot link a file he cannot see.
    let (s, v) = bob
        .post(
            &format!("{DATA}/sobjects/ContentDocumentLink"),
            json!({"ContentDocumentId": doc, "LinkedEntityId": case2}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = admin
        .post(
            &format!("{DATA}/sobjects/ContentDocumentLink"),
            json!({"ContentDocumentId": doc, "LinkedEntityId": case2, "ShareType": "V"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let link = v["id"].as_str().unwrap().to_string();
    let (s, _, body) = download(&bob, &v1, &[]).await;
    assert_eq!((s, sha(&body)), (StatusCode::OK, sha(&file)));
    let (s, v) = admin
        .delete(&format!("{DATA}/sobjects/ContentDocumentLink/{link}"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(download(&bob, &v1, &[]).await.0, StatusCode::NOT_FOUND);

    // 4. A new version by JSON with base64; SOQL over the versions.
    let html = b"<html><script>alert(document.cookie)</script></html>";
    let (s, v) = alice
        .post(
            &format!("{DATA}/sobjects/ContentVersion"),
            json!({"ContentDocumentId": doc, "PathOnClient": "pump.html", "ReasonForChange": "typo",
                   "VersionData": base64::engine::general_purpose::STANDARD.encode(html)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let v2 = v["id"].as_str().unwrap().to_string();
    let (s, h, body) = download(&alice, &v2, &[]).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, &html[..]));
    // Uploaded HTML is never served as HTML.
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    let r = query(
        &admin,
        &format!("SELECT Title, FileExtension, ContentSize, IsLatest FROM ContentVersion WHERE ContentDocumentId = '{doc}' ORDER BY ContentSize"),
    )
    .await;
    assert_eq!(r["totalSize"], 2, "{r}");
    assert_eq!(r["records"][0]["FileExtension"], "html");
    assert_eq!(r["records"][0]["IsLatest"], true);
    assert_eq!(r["records"][1]["ContentSize"], 300000);
    assert_eq!(r["records"][1]["IsLatest"], false);
    let r = query(
        &admin,
        &format!("SELECT LinkedEntityId FROM ContentDocumentLink WHERE LinkedEntityId = '{case}'"),
    )
    .await;
    assert_eq!(r["totalSize"], 1, "{r}");

    // 5. Bad input: 4xx naming the problem.
    let (s, v) = upload(&alice, json!({"Title": "no path"}), b"x").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("PathOnClient"), "{v}");
    let (s, v) = alice
        .post(
            &format!("{DATA}/sobjects/ContentVersion"),
            json!({"PathOnClient": "a.txt", "VersionData": "%%%not base64"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = upload(
        &bob,
        json!({"PathOnClient": "a.txt", "FirstPublishLocationId": case}),
        b"x",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = alice
        .patch(
            &format!("{DATA}/sobjects/ContentVersion/{v1}"),
            json!({"Checksum": sha(b"other")}),
        )
        .await;
    assert!(s.is_client_error(), "{s} {v}");

    // 6. Usage in /limits, then delete the document: versions and links go.
    let (s, v) = admin.get(&format!("{DATA}/limits")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["FileStorageMB"]["Max"].as_u64().unwrap() > 0, "{v}");
    let (s, v) = bob
        .delete(&format!("{DATA}/sobjects/ContentDocument/{doc}"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = alice
        .delete(&format!("{DATA}/sobjects/ContentDocument/{doc}"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(download(&alice, &v1, &[]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(download(&admin, &v2, &[]).await.0, StatusCode::NOT_FOUND);

    // 7. The collector keeps referenced blobs and removes unreferenced ones.
    let (s, v) = upload(&alice, json!({"PathOnClient": "kept.txt"}), b"kept content").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let kept = v["id"].as_str().unwrap().to_string();
    let orphan = b"bytes whose row never committed".to_vec();
    let body = futures_util::stream::once(async move { Ok(bytes::Bytes::from(orphan)) });
    server
        .platform
        .blobs
        .put(&admin.tenant_id, Box::pin(body), 1 << 20)
        .await
        .unwrap();
    server
        .platform
        .collect_orphan_blobs(chrono::Utc::now() + chrono::Duration::seconds(5))
        .await
        .unwrap();
    let left: Vec<String> = server
        .platform
        .blobs
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.tenant_id == admin.tenant_id)
        .map(|b| b.sha256)
        .collect();
    assert!(left.contains(&sha(b"kept content")), "referenced blob kept");
    // The deleted document's versions wait in the recycle bin: kept.
    assert!(left.contains(&sha(&file)), "binned version's blob kept");
    assert!(
        !left.contains(&sha(b"bytes whose row never committed")),
        "orphan collected"
    );
    let (s, _, body) = download(&alice, &kept, &[]).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, &b"kept content"[..]));
}

/// Size and quota limits answer 413 and keep nothing.
async fn limits_behave(server: &TestServer) {
    let admin = server.tenant().await;
    let (s, v) = upload(&admin, json!({"PathOnClient": "big.bin"}), &vec![1u8; 4097]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v.to_string().contains("4096"), "{v}");
    let (s, v) = upload(&admin, json!({"PathOnClient": "a.bin"}), &vec![2u8; 4000]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = upload(&admin, json!({"PathOnClient": "b.bin"}), &vec![3u8; 4000]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // 8,000 of 10,000 bytes used: a 3,000-byte file does not fit.
    let (s, v) = upload(&admin, json!({"PathOnClient": "c.bin"}), &vec![4u8; 3000]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v.to_string().contains("file storage is full"), "{v}");
    let (s, v) = admin
        .post(
            &format!("{DATA}/sobjects/ContentVersion"),
            json!({"PathOnClient": "d.bin", "VersionData": base64::engine::general_purpose::STANDARD.encode(vec![5u8; 3000])}),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let stored: Vec<_> = server
        .platform
        .blobs
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.tenant_id == admin.tenant_id)
        .collect();
    assert_eq!(stored.len(), 2, "refused uploads keep nothing");
}

fn small_limits(cfg: &mut PlatformConfig) {
    cfg.files.max_file_bytes = 4096;
    cfg.files.tenant_quota_bytes = 10_000;
}

#[tokio::test]
async fn files_in_the_data_directory() {
    let server = TestServer::start().await;
    files_behave(&server).await;
    server.stop().await;
    let server = TestServer::start_with(small_limits).await;
    limits_behave(&server).await;
    server.stop().await;
}

/// A moto S3 server of this test's own, stopped when dropped.
struct Moto {
    child: std::process::Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    let program = std::env::var("MOSAIC_MOTO_SERVER").unwrap_or_else(|_| {
        panic!("MOSAIC_MOTO_SERVER is not set: run scripts/s3-tools and export what it prints")
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    // Ready when it answers; then the bucket.
    for _ in 0..200 {
        if http.get(&endpoint).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let res = http
        .put(format!("{endpoint}/mosaic-files"))
        .send()
        .await
        .expect("create bucket");
    assert!(res.status().is_success(), "create bucket: {}", res.status());
    Moto {
        child,
        url: format!("s3://mosaic-files/test?endpoint={endpoint}&region=us-east-1&allow_http=true"),
    }
}

#[tokio::test]
async fn files_in_an_s3_compatible_store() {
    // moto accepts any credentials; the store reads the usual variables.
    std::env::set_var("AWS_ACCESS_KEY_ID", "mosaic-test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "mosaic-test");
    let s3 = moto().await;
    let url = s3.url.clone();
    let server = TestServer::start_with(|cfg| cfg.files.blob_url = Some(url)).await;
    assert_eq!(server.platform.blobs.kind(), "s3");
    files_behave(&server).await;
    server.stop().await;
    let url = s3.url.clone();
    let server = TestServer::start_with(move |cfg| {
        small_limits(cfg);
        cfg.files.blob_url = Some(url);
    })
    .await;
    limits_behave(&server).await;
    server.stop().await;
}
