//! Record sharing at 100,000 records of a private object: the same
//! 100-row queries as a system administrator and as a manager whose view
//! is the role hierarchy, an owner-based rule, a criteria-based rule and
//! manual shares; a cached single-record decision; and the recalculation
//! of a criteria-based rule over every record.

mod common;
use common::body;
use criterion::{criterion_group, criterion_main, Criterion};
use mosaic_access::admin::{
    MemberInput, NewGroupInput, NewPermissionSetInput, NewRoleInput, NewUserInput,
};
use mosaic_meta::sharing::SharingRuleInput;
use mosaic_meta::validate::ObjectInput;
use mosaic_runtime::query::QueryOptions;
use mosaic_runtime::{Caller, Platform};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Instant;

const RECORDS: usize = 100_000;
const TEAMS: usize = 10;
const REPS_PER_TEAM: usize = 5;

fn bench(c: &mut Criterion) {
    let common::Bench { rt, p, admin, .. } = common::setup();
    let t = admin.clone();
    let (admin, manager, hot) = rt.block_on(async {

        let admin = Caller::system(&t.tenant_id, &t.user_id);
        let actor = Platform::actor(&admin);
        let input: ObjectInput = serde_json::from_value(json!({"api_name": "Opp__c", "sharing_model": "private", "fields": [
            {"api_name": "Amount__c", "data_type": "number", "precision": 12, "scale": 0},
            {"api_name": "Region__c", "data_type": "text", "length": 20}]}))
        .expect("object input");
        p.meta.create_object(&t.tenant_id, input).await.expect("object");
        let set: NewPermissionSetInput = serde_json::from_value(json!({"name": "Sales", "object_permissions": [
            {"object": "Opp__c", "create": true, "read": true, "edit": true, "delete": true}],
            "field_permissions": [{"object": "Opp__c", "field": "Amount__c", "read": true, "edit": true},
                                  {"object": "Opp__c", "field": "Region__c", "read": true, "edit": true}]}))
        .expect("set input");
        let set = p.create_permission_set(&admin, set).await.expect("set");
        let role = |name: String, parent: Option<String>| {
            let actor = actor.clone();
            let p = &p;
            async move {
                p.access
                    .create_role(&actor, NewRoleInput { name: name.clone(), label: Some(name), parent_role_id: parent })
                    .await
                    .expect("role")
                    .id
            }
        };
        let user = |name: String, role: String| {
            let actor = actor.clone();
            let p = &p;
            let set = set.id.clone();
            async move {
                let u = p
                    .access
                    .create_user(&actor, NewUserInput {
                        username: format!("{name}@example.test"),
                        password: "bench-password".into(),
                        email: None,
                        profile: Some("standard".into()),
                        role_id: Some(role),
                    })
                    .await
                    .expect("user");
                p.access.assign(&actor, &set, mosaic_access::admin::AssignmentInput { user_id: u.id.clone() }).await.expect("assign");
                u.id
            }
        };
        let ceo = role("ceo".into(), None).await;
        let mut managers = Vec::new();
        let mut reps = Vec::new();
        for t in 0..TEAMS {
            let m = role(format!("mgr{t}"), Some(ceo.clone())).await;
            let r = role(format!("rep{t}"), Some(m.clone())).await;
            managers.push((m.clone(), user(format!("manager{t}"), m.clone()).await));
            for k in 0..REPS_PER_TEAM {
                reps.push((t, r.clone(), user(format!("rep{t}-{k}"), r.clone()).await));
            }
        }
        // 100,000 records owned round-robin by the reps.
        let regions = ["East", "West", "North", "South"];
        let started = Instant::now();
        let mut n = 0;
        while n < RECORDS {
            let batch: Vec<Map<String, Value>> = (n..(n + 200).min(RECORDS))
                .map(|i| {
                    body(json!({"attributes": {"type": "Opp__c"}, "Name": format!("Opp {i}"), "Amount__c": (i * 7919) % 100_000,
                                "Region__c": regions[i % 4], "OwnerId": reps[i % reps.len()].2}))
                })
                .collect();
            for r in p.create_batch(&admin, &batch, true).await.expect("batch") {
                r.expect("record");
            }
            n += batch.len();
        }
        eprintln!("seeded {RECORDS} records in {:.1} s", started.elapsed().as_secs_f64());
        // manager0: their team by the hierarchy, team 1 by an owner-based
        // rule, North deals by a criteria-based rule to a group, 100
        // manual shares.
        let (m0_role, m0_user) = managers[0].clone();
        let group = p
            .access
            .create_group(&actor, NewGroupInput {
                name: "north".into(),
                label: None,
                members: vec![MemberInput { user_id: None, role_id: Some(m0_role.clone()), role_and_subordinates_id: None }],
            })
            .await
            .expect("group");
        let rule: SharingRuleInput = serde_json::from_value(json!({"object": "Opp__c", "name": "Team1", "rule_type": "owner_based",
            "share_from_role_id": reps.iter().find(|r| r.0 == 1).unwrap().1, "share_to": {"role_id": m0_role}, "access_level": "read"}))
        .expect("rule");
        p.add_sharing_rule(&admin, rule).await.expect("owner rule");
        let rule: SharingRuleInput = serde_json::from_value(json!({"object": "Opp__c", "name": "North", "rule_type": "criteria_based",
            "criteria": {"conditions": [{"field": "Region__c", "operator": "equals", "value": "North"}]},
            "share_to": {"group_id": group.id}, "access_level": "read"}))
        .expect("rule");
        let started = Instant::now();
        p.add_sharing_rule(&admin, rule).await.expect("criteria rule");
        eprintln!(
            "criteria-based rule over {RECORDS} records recalculated in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        let outsider = reps.iter().find(|r| r.0 == 5).unwrap().2.clone();
        let rep5 = Caller {
            tenant_id: t.tenant_id.clone(),
            user_id: outsider.clone(),
            username: "rep5".into(),
            perms: p.access.snapshot(&t.tenant_id, &outsider).await.expect("snapshot"),
            zone: chrono_tz::Tz::UTC,
        };
        // rep5 shares 100 of their records with manager0 by hand.
        let theirs = p
            .query(
                &admin,
                &format!("SELECT Id FROM Opp__c WHERE OwnerId = '{outsider}' AND Region__c != 'North' LIMIT 100"),
                QueryOptions::default(),
            )
            .await
            .expect("ids");
        let mut hot = String::new();
        for r in &theirs.records {
            let id = r.id.clone().expect("id");
            p.grant_share(&rep5, "Opp__c", &id, &body(json!({"user_id": m0_user, "access_level": "read"})))
                .await
                .expect("share");
            hot = id;
        }
        assert!(!hot.is_empty());
        let manager = Caller {
            tenant_id: t.tenant_id.clone(),
            user_id: m0_user.clone(),
            username: "manager0".into(),
            perms: p.access.snapshot(&t.tenant_id, &m0_user).await.expect("snapshot"),
            zone: chrono_tz::Tz::UTC,
        };
        let seen = p
            .query(&manager, "SELECT COUNT() FROM Opp__c", QueryOptions::default())
            .await
            .expect("count");
        eprintln!("manager0 sees {} of {RECORDS} records", seen.total_size);
        (admin, manager, hot)
    });
    let mut g = c.benchmark_group("100-row query at 100k records");
    g.sample_size(10);
    for (label, soql) in [
        ("ORDER BY an unindexed field", "SELECT Id, Name, Amount__c FROM Opp__c ORDER BY Amount__c DESC LIMIT 100"),
        ("first rows", "SELECT Id, Name, Amount__c FROM Opp__c LIMIT 100"),
        ("filtered", "SELECT Id, Name, Amount__c FROM Opp__c WHERE Region__c = 'East' ORDER BY Name LIMIT 100"),
    ] {
        for (who, caller) in [("admin", &admin), ("manager with sharing", &manager)] {
            g.bench_function(format!("{label} / {who}"), |b| {
                b.iter(|| {
                    let r = rt
                        .block_on(p.query(caller, soql, QueryOptions::default()))
                        .expect("query");
                    assert_eq!(r.records.len(), 100);
                })
            });
        }
    }
    g.finish();
    let obj = rt
        .block_on(p.meta.object(&manager.tenant_id, "Opp__c"))
        .expect("object");
    let row = rt
        .block_on(p.records.get(&manager.tenant_id, obj.id(), &hot, &[]))
        .expect("get")
        .expect("row");
    let generation = p.sharing_generation(&manager.tenant_id);
    let level = rt
        .block_on(p.record_level(&manager, &obj, &row, generation))
        .expect("level");
    assert_ne!(level, mosaic_access::sharing::RecordLevel::None);
    let manager = Arc::new(manager);
    c.bench_function("record decision, cached", |b| {
        b.iter(|| {
            rt.block_on(p.record_level(&manager, &obj, &row, generation))
                .expect("level")
        })
    });
    p.close();
}

criterion_group!(benches, bench);
criterion_main!(benches);
