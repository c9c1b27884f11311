//! Resolving an object definition at each layer of the cache tier: an L1
//! hit (in process), an L2 hit (Redis at `MOSAIC_TEST_REDIS_URL`, default
//! 127.0.0.1:6379, as `scripts/services` starts it), and uncached (the
//! embedded metadata database). Then hit rates per layer of two instances
//! sharing Redis under a mixed workload (lookups with 1 % changes).

mod common;
use criterion::{criterion_group, criterion_main, Criterion};
use mosaic_cache::{CacheConfig, CacheTier, L1Sizing};
use mosaic_meta::validate::ObjectInput;
use mosaic_meta::MetadataService;
use rand::Rng;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn redis_url() -> String {
    std::env::var("MOSAIC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

fn tier(redis: bool, l1_capacity: u64, prefix: &str) -> Arc<CacheTier> {
    let mut cfg = CacheConfig {
        key_prefix: prefix.to_string(),
        ..CacheConfig::default()
    };
    if redis {
        cfg.redis_url = Some(redis_url());
    }
    cfg.metadata = L1Sizing {
        capacity: l1_capacity,
        ..cfg.metadata
    };
    CacheTier::new(cfg).expect("tier")
}

fn bench(c: &mut Criterion) {
    let common::Bench { rt, p, admin, .. } = common::setup();
    let _ = common::body; // shared with the other benches
    let tenant = admin.tenant_id.clone();
    let prefix = format!("bench-{}:", mosaic_types::new_id());
    const OBJECTS: usize = 50;
    rt.block_on(async {
        for i in 0..OBJECTS {
            let input: ObjectInput =
                serde_json::from_value(json!({"api_name": format!("Obj{i}__c"), "fields": [
                {"api_name": "Amount__c", "data_type": "currency"},
                {"api_name": "Status__c", "data_type": "text", "length": 40},
                {"api_name": "Due__c", "data_type": "date"}]}))
                .expect("input");
            p.meta.create_object(&tenant, input).await.expect("object");
        }
    });
    let service = |t: Arc<CacheTier>| {
        Arc::new(MetadataService::with_tier(
            p.meta_store.clone(),
            p.records.clone(),
            t,
        ))
    };
    let mut g = c.benchmark_group("metadata resolution");
    rt.block_on(p.meta.object(&tenant, "Obj1__c"))
        .expect("warm");
    // Many lookups per runtime entry: a request never pays `block_on`.
    g.bench_function("L1 hit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = std::time::Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(p.meta.object(&tenant, "Obj1__c").await.expect("hit"));
                }
                started.elapsed()
            })
        })
    });
    g.bench_function("L1 hit (one block_on per lookup)", |b| {
        b.iter(|| rt.block_on(p.meta.object(&tenant, "Obj1__c")).expect("hit"))
    });
    // No L1 (capacity 0): every lookup goes below it.
    let l2 = service(tier(true, 0, &prefix));
    let redis_up = rt.block_on(async {
        let _ = l2.object(&tenant, "Obj1__c").await;
        l2.tier().l2_metadata.figures().loads > 0
    });
    if redis_up {
        g.bench_function("L2 hit (Redis)", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = std::time::Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(l2.object(&tenant, "Obj1__c").await.expect("l2"));
                    }
                    started.elapsed()
                })
            })
        });
    } else {
        eprintln!("Redis not reachable at {}: no L2 figure", redis_url());
    }
    let cold = service(tier(false, 0, &prefix));
    g.bench_function("uncached (metadata database)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = std::time::Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(cold.object(&tenant, "Obj1__c").await.expect("db"));
                }
                started.elapsed()
            })
        })
    });
    g.finish();

    // Two instances over one Redis, a skewed mixed workload: 20,000
    // lookups (80 % on 10 hot objects), 1 % of operations change a
    // definition through instance A.
    if redis_up {
        let (a, b) = (
            service(tier(true, 50_000, &prefix)),
            service(tier(true, 50_000, &prefix)),
        );
        rt.block_on(async {
            let mut rng = rand::rng();
            for n in 0..20_000 {
                let i = if rng.random_bool(0.8) {
                    rng.random_range(0..10)
                } else {
                    rng.random_range(0..OBJECTS)
                };
                let name = format!("Obj{i}__c");
                if n % 100 == 99 {
                    let input: ObjectInput =
                        serde_json::from_value(json!({"label": format!("Changed {n}")}))
                            .expect("input");
                    a.update_object(&tenant, &name, input)
                        .await
                        .expect("change");
                    // What the subscriber does on B when the message arrives.
                    b.apply(&mosaic_cache::Invalidation::Object {
                        tenant: tenant.clone(),
                        id: a.object(&tenant, &name).await.expect("id").def.id.clone(),
                        names: vec![name.to_lowercase()],
                        version: 0,
                    })
                    .await;
                    continue;
                }
                let s = if n % 2 == 0 { &a } else { &b };
                s.object(&tenant, &name).await.expect("lookup");
            }
        });
        for (name, s) in [("A", &a), ("B", &b)] {
            let l1 = s.l1.figures();
            let l2 = s.tier().l2_metadata.figures();
            println!(
                "mixed workload, instance {name}: L1 hit rate {:.1} % ({} hits, {} misses); L2 hit rate {:.1} % ({} hits, {} misses); database loads {}",
                l1.hit_rate().unwrap_or(0.0) * 100.0,
                l1.hits,
                l1.misses,
                l2.hit_rate().unwrap_or(0.0) * 100.0,
                l2.hits,
                l2.misses,
                s.database_loads()
            );
        }
        rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let t = tier(true, 1, &prefix);
                let pattern = format!("{prefix}*");
                if let Some(r) = t.redis() {
                    if let Ok(keys) = r
                        .call(|mut c| async move {
                            redis::cmd("KEYS")
                                .arg(&pattern)
                                .query_async::<Vec<String>>(&mut c)
                                .await
                        })
                        .await
                    {
                        let _ = t.delete(&keys).await;
                    }
                }
            })
            .await;
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
