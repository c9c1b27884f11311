//! Request deadlines reach PostgreSQL: a statement whose request went away
//! is cancelled on the server and its connection never serves the next
//! request with the statement still running; every connection carries
//! `statement_timeout`. (A transaction stopped at the request's deadline
//! by `SET LOCAL statement_timeout`: the unit tests of `pool.rs`.)

use mosaic_store_pg::pool::PgPool;
use mosaic_store_pg::scratch::ScratchDatabase;
use std::time::Duration;

/// Longest a test waits for what should happen at once.
const PATIENCE: Duration = Duration::from_secs(10);

/// Statements of the scratch database still running `pg_sleep`.
async fn sleepers(db: &ScratchDatabase) -> i64 {
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND state = 'active'
               AND query LIKE 'SELECT pg_sleep(%' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_activity")
        .get(0)
}

#[tokio::test]
async fn an_abandoned_statement_is_cancelled_and_its_connection_not_reused() {
    let db = ScratchDatabase::create().await.unwrap();
    let pool = PgPool::new(&db.url, 1).unwrap();
    let c = pool.client().await.unwrap();
    let show = c.query_one("SHOW statement_timeout", &[]).await.unwrap();
    assert_eq!(show.get::<_, String>(0), "30s");
    drop(c);
    // The request gives up (its deadline passed) in the middle of a long
    // statement; its future — and the connection — are dropped.
    let gave_up = tokio::time::timeout(Duration::from_millis(200), async {
        let c = pool.client().await.unwrap();
        c.query("SELECT pg_sleep(60)", &[]).await
    })
    .await;
    assert!(gave_up.is_err());
    // The single connection of the pool serves the next request at once.
    let next = tokio::time::timeout(PATIENCE, async {
        let mut c = pool.client().await.unwrap();
        let n: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
        c.settle();
        n
    })
    .await
    .expect("the next request is not queued behind the abandoned statement");
    assert_eq!(next, 1);
    // And the abandoned statement stopped running on the server.
    let stopped = tokio::time::timeout(PATIENCE, async {
        while sleepers(&db).await > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(stopped.is_ok(), "the statement was cancelled on the server");
    pool.close();
}
