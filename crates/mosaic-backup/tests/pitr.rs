//! Snapshots, continuous shipping and point-in-time restore of a data
//! directory written through the store's group-commit writer, to a
//! directory target and to a local S3 server (moto).

use chrono::Utc;
use mosaic_backup::{RestoreOptions, RestorePoint, Shipper, ShipperConfig, Target};
use mosaic_store::sqlite::SqliteDb;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const META_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);";
const RECORDS_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, pair INTEGER NOT NULL, body TEXT NOT NULL);";

struct Data {
    dir: tempfile::TempDir,
    meta: Arc<SqliteDb>,
    records: Arc<SqliteDb>,
}

fn data_dir() -> Data {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteDb::open(&dir.path().join("metadata.sqlite"), META_SCHEMA).unwrap();
    let records = SqliteDb::open(&dir.path().join("records.sqlite"), RECORDS_SCHEMA).unwrap();
    Data { dir, meta, records }
}

/// One transaction writing two rows of the same pair (and a metadata row).
async fn write_pair(d: &Data, pair: i64) {
    d.records
        .write(move |c| {
            for half in 0..2 {
                c.execute(
                    "INSERT INTO items (id, pair, body) VALUES (?1, ?2, ?3)",
                    rusqlite::params![format!("{pair}-{half}"), pair, "x".repeat(300)],
                )
                .unwrap();
            }
            Ok(())
        })
        .await
        .unwrap();
    d.meta
        .write(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO kv (k, v) VALUES ('last', ?1)",
                [pair.to_string()],
            )
            .unwrap();
            Ok(())
        })
        .await
        .unwrap();
}

fn pairs_in(dir: &Path) -> Vec<(i64, i64)> {
    let c = rusqlite::Connection::open(dir.join("records.sqlite")).unwrap();
    let mut st = c
        .prepare("SELECT pair, count(*) FROM items GROUP BY pair ORDER BY pair")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn ids(pairs: &[(i64, i64)]) -> Vec<i64> {
    pairs.iter().map(|p| p.0).collect()
}

async fn restore_to(target: &Target, point: RestorePoint) -> (tempfile::TempDir, PathBuf) {
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("restored");
    let s = mosaic_backup::restore(
        target,
        &RestoreOptions {
            into: into.clone(),
            point,
        },
    )
    .await
    .unwrap();
    assert!(
        s.check.ok(),
        "restored data passes the check: {:?}",
        s.check.findings
    );
    (out, into)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_while_writing_holds_whole_transactions() {
    let d = data_dir();
    let writer = {
        let d = Data {
            dir: tempfile::tempdir().unwrap(),
            meta: d.meta.clone(),
            records: d.records.clone(),
        };
        tokio::spawn(async move {
            for pair in 0..400 {
                write_pair(&d, pair).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut restored = Vec::new();
    for _ in 0..3 {
        let t = tempfile::tempdir().unwrap();
        let target = Target::parse(t.path().to_str().unwrap()).unwrap();
        let before = pairs_in(d.dir.path()).len();
        let s = mosaic_backup::backup_now(d.dir.path(), &target)
            .await
            .unwrap();
        assert_eq!(s.manifest.databases.len(), 2);
        let (_keep, into) = restore_to(&target, RestorePoint::Latest).await;
        let pairs = pairs_in(&into);
        assert!(
            pairs.len() >= before,
            "the snapshot is not older than its start"
        );
        assert!(
            pairs.iter().all(|(_, n)| *n == 2),
            "no transaction is cut in half: {pairs:?}"
        );
        restored.push((pairs.len(), _keep, t));
    }
    writer.await.unwrap();
    assert!(restored.iter().any(|r| r.0 > 0), "writes were captured");
}

async fn shipped_scenario(target: Target) {
    let d = data_dir();
    write_pair(&d, 0).await;
    let handle = Shipper::start(d.dir.path(), target.clone(), ShipperConfig::default())
        .await
        .unwrap();
    let after_first_backup = Utc::now();
    tokio::time::sleep(Duration::from_millis(10)).await;
    write_pair(&d, 1).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let between = Utc::now();
    tokio::time::sleep(Duration::from_millis(10)).await;
    write_pair(&d, 2).await;
    // Shipped by the rounds (not only by the final one).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        handle
            .stats
            .commits
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 4
    );
    write_pair(&d, 3).await;
    d.records.close();
    d.meta.close();
    handle.finish().await.unwrap();

    let (_a, into) = restore_to(&target, RestorePoint::At(between)).await;
    assert_eq!(
        ids(&pairs_in(&into)),
        vec![0, 1],
        "exactly the writes before the time"
    );
    let (_b, into) = restore_to(&target, RestorePoint::At(after_first_backup)).await;
    assert_eq!(ids(&pairs_in(&into)), vec![0]);
    let (_c, into) = restore_to(&target, RestorePoint::Latest).await;
    assert_eq!(
        ids(&pairs_in(&into)),
        vec![0, 1, 2, 3],
        "a graceful stop ships every committed frame"
    );
    let meta = rusqlite::Connection::open(into.join("metadata.sqlite")).unwrap();
    let last: String = meta
        .query_row("SELECT v FROM kv WHERE k = 'last'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(last, "3", "every database is restored");

    // Refusals: a time before the first backup, a non-empty directory.
    let out = tempfile::tempdir().unwrap();
    let early = RestorePoint::At(after_first_backup - chrono::Duration::hours(1));
    let err = mosaic_backup::restore(
        &target,
        &RestoreOptions {
            into: out.path().join("x"),
            point: early,
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("before the first backup"), "{err}");
    std::fs::write(out.path().join("keep.txt"), "mine").unwrap();
    let err = mosaic_backup::restore(
        &target,
        &RestoreOptions {
            into: out.path().to_path_buf(),
            point: RestorePoint::Latest,
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.path().join("keep.txt")).unwrap(),
        "mine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_to_a_time_between_two_writes_from_a_directory() {
    let t = tempfile::tempdir().unwrap();
    shipped_scenario(Target::parse(t.path().to_str().unwrap()).unwrap()).await;
}

/// `moto_server` on a free port, stopped on drop.
struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(port: u16, request: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    Some(out)
}

fn start_moto() -> Moto {
    let program = std::env::var("MOSAIC_MOTO_SERVER").expect(
        "MOSAIC_MOTO_SERVER: the moto_server program (run `scripts/s3-tools` and export what it prints)",
    );
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
    let moto = Moto { child, port };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ping = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    while http(port, &ping).is_none_or(|r| !r.starts_with("HTTP/1.1 200")) {
        assert!(
            std::time::Instant::now() < deadline,
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_from_an_s3_target() {
    let moto = start_moto();
    let port = moto.port;
    let created = http(
        port,
        &format!("PUT /mosaic-backups HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    )
    .unwrap();
    assert!(
        created.starts_with("HTTP/1.1 200"),
        "bucket created: {created}"
    );
    // The usual AWS variables; this test binary's only S3 user.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
        std::env::set_var("AWS_ALLOW_HTTP", "true");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_DEFAULT_REGION", "us-east-1");
    }
    let target = Target::parse("s3://mosaic-backups/site-a/prod").unwrap();
    shipped_scenario(target.clone()).await;
    let objects = target.list("generations/").await.unwrap();
    assert!(objects.iter().any(|o| o.key.ends_with("manifest.json")));
    assert!(objects.iter().any(|o| o.key.ends_with(".seg")));
}
