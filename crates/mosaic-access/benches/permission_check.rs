//! The hot path of every Data API request: the caller's permission snapshot
//! looked up in the cache (generation checked) and an object + field check.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use mosaic_access::permissions::{PermissionSnapshot, SnapshotCache};
use mosaic_store::access_store::{FieldPermissionRow, ObjectFlags, ObjectPermissionRow};
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    let cache = SnapshotCache::default();
    // A warm cache with many tenants and users, as in a busy process.
    for t in 0..100 {
        let tenant = format!("0190a3d2-0000-7000-8000-{t:012}");
        for u in 0..100 {
            let user = format!("0190a3d2-0001-7000-8000-{u:012}");
            let objects: Vec<ObjectPermissionRow> = (0..20)
                .map(|o| ObjectPermissionRow {
                    object_id: format!("object-{o}"),
                    flags: ObjectFlags {
                        read: true,
                        edit: o % 2 == 0,
                        ..Default::default()
                    },
                })
                .collect();
            let fields: Vec<FieldPermissionRow> = (0..200)
                .map(|f| FieldPermissionRow {
                    object_id: format!("object-{}", f % 20),
                    field_id: format!("field-{f}"),
                    read: true,
                    edit: f % 3 == 0,
                })
                .collect();
            let g = cache.generations.current(&tenant);
            cache.insert(Arc::new(
                PermissionSnapshot::from_grants(&tenant, &user, &objects, &fields)
                    .with_generation(g),
            ));
        }
    }
    let tenant = "0190a3d2-0000-7000-8000-000000000042";
    let user = "0190a3d2-0001-7000-8000-000000000007";
    assert!(cache.get(tenant, user).is_some(), "the entry is cached");
    c.bench_function(
        "cached permission check (snapshot lookup + object + field)",
        |b| {
            b.iter(|| {
                let s = cache
                    .get(black_box(tenant), black_box(user))
                    .expect("cached");
                let o = s.object(black_box("object-7"));
                let f = s.field(black_box("field-147"));
                black_box(o.read && f.read && !f.edit)
            })
        },
    );
    let snap = cache.get(tenant, user).expect("cached");
    c.bench_function(
        "permission check on a held snapshot (object + field)",
        |b| {
            b.iter(|| {
                let o = snap.object(black_box("object-7"));
                let f = snap.field(black_box("field-147"));
                black_box(o.read && f.read)
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
