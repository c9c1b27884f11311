//! TLS to PostgreSQL: a cluster of the test's own with `ssl=on` and a
//! certificate from a test CA; pools connect with `sslmode=require`,
//! `verify-ca` and `verify-full`, are refused with `verify-full` against
//! another CA, and the metadata store works over TLS.

use mosaic_store_pg::scratch::ScratchCluster;
use mosaic_store_pg::PgPool;
use mosaic_types::ErrorCode;

/// A CA and a server certificate it signed for `names`: (CA PEM, chain PEM, key PEM).
fn issue(names: &[&str]) -> (String, String, String) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Mosaic test CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut leaf =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem())
}

async fn ssl_in_use(pool: &PgPool) -> bool {
    let c = pool.client().await.expect("connection");
    c.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .await
    .expect("pg_stat_ssl")
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmodes_against_a_tls_cluster() {
    let dir = tempfile::tempdir().unwrap();
    // The server's certificate names 127.0.0.1 only; a second one names another host.
    let (ca, chain, key) = issue(&["127.0.0.1"]);
    let (other_ca, _, _) = issue(&["127.0.0.1"]);
    let ca_file = dir.path().join("ca.pem");
    let other_file = dir.path().join("other-ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    std::fs::write(&other_file, &other_ca).unwrap();
    let cluster = ScratchCluster::create_with_tls(&chain, &key).expect("a TLS cluster");
    let base = cluster.url();
    let url = |q: String| format!("{base}?{q}");

    for (q, tls) in [
        ("sslmode=disable".to_string(), false),
        ("sslmode=prefer".to_string(), true),
        ("sslmode=require".to_string(), true),
        (
            format!("sslmode=verify-ca&sslrootcert={}", ca_file.display()),
            true,
        ),
        (
            format!("sslmode=verify-full&sslrootcert={}", ca_file.display()),
            true,
        ),
    ] {
        let pool = PgPool::new(&url(q.clone()), 2).expect("pool");
        assert_eq!(ssl_in_use(&pool).await, tls, "{q}");
    }
    // The default is libpq's: prefer.
    assert!(ssl_in_use(&PgPool::new(&base, 1).unwrap()).await);

    // Another CA: refused by verify-full and verify-ca.
    for mode in ["verify-full", "verify-ca"] {
        let pool = PgPool::new(
            &url(format!(
                "sslmode={mode}&sslrootcert={}",
                other_file.display()
            )),
            1,
        )
        .unwrap();
        let e = pool
            .check()
            .await
            .expect_err("a certificate from another CA");
        assert_eq!(
            e.code,
            ErrorCode::SERVICE_UNAVAILABLE,
            "{mode}: {}",
            e.message
        );
    }
    // The right CA but another host name: verify-ca passes, verify-full refuses.
    let (ca2, chain2, key2) = issue(&["db.example.test"]);
    let ca2_file = dir.path().join("ca2.pem");
    std::fs::write(&ca2_file, &ca2).unwrap();
    let named = ScratchCluster::create_with_tls(&chain2, &key2).expect("a TLS cluster");
    let named_url = |mode: &str| {
        format!(
            "{}?sslmode={mode}&sslrootcert={}",
            named.url(),
            ca2_file.display()
        )
    };
    assert!(ssl_in_use(&PgPool::new(&named_url("verify-ca"), 1).unwrap()).await);
    let e = PgPool::new(&named_url("verify-full"), 1)
        .unwrap()
        .check()
        .await
        .expect_err("the certificate names another host");
    assert_eq!(e.code, ErrorCode::SERVICE_UNAVAILABLE, "{}", e.message);

    // Bad TLS parameters are refused up front, naming the problem.
    let e = PgPool::new(&url("sslmode=verify-full".into()), 1).unwrap_err();
    assert_eq!(e.code, ErrorCode::INVALID_INPUT);
    assert!(e.message.contains("sslrootcert"), "{}", e.message);
    let e = PgPool::new(
        &url("sslmode=verify-ca&sslrootcert=/no/such/ca.pem".into()),
        1,
    )
    .unwrap_err();
    assert!(e.message.contains("/no/such/ca.pem"), "{}", e.message);

    // The metadata database over verify-full: migrations and a store call.
    let meta = mosaic_store_pg::PgMetaStore::connect(
        &url(format!(
            "sslmode=verify-full&sslrootcert={}",
            ca_file.display()
        )),
        2,
    )
    .await
    .expect("metadata store over TLS");
    assert!(ssl_in_use(meta.pool()).await);
    use mosaic_store::MetaStore;
    assert!(meta.tenant("no-such-tenant").await.unwrap().is_none());
}
