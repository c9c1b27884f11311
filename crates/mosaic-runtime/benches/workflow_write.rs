//! A record update on the embedded backend with 3 active workflow rules
//! (a field update that fires, an outbound message queued in the write's
//! transaction, a rule whose criteria do not hold) against the same update
//! of an object without rules.

mod common;
use common::body;
use criterion::{criterion_group, criterion_main, Criterion};
use mosaic_meta::validate::ObjectInput;
use mosaic_meta::workflow::WorkflowInput;
use mosaic_runtime::Caller;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

fn bench(c: &mut Criterion) {
    let common::Bench { rt, p, admin, .. } = common::setup();
    let t = admin.clone();
    let (caller, plain, auto) = rt.block_on(async {

        let caller = Caller::system(&t.tenant_id, &t.user_id);
        for name in ["Plain__c", "Auto__c"] {
            let input: ObjectInput = serde_json::from_value(json!({"api_name": name, "fields": [
                {"api_name": "Amount__c", "data_type": "currency"},
                {"api_name": "Stage__c", "data_type": "text", "length": 40},
                {"api_name": "Tier__c", "data_type": "text", "length": 40}]}))
            .expect("object input");
            p.meta.create_object(&t.tenant_id, input).await.expect("object");
        }
        let rules = [
            json!({"name": "Big", "trigger_type": "created_or_updated", "re_evaluation": "every_time",
                   "filter_criteria": {"conditions": [{"field": "Amount__c", "operator": "greater_than", "value": 100}]},
                   "actions": [{"action_type": "field_update", "action_config": {"field_api_name": "Tier__c", "value_type": "literal", "value": "Big"}}]}),
            json!({"name": "Notify", "trigger_type": "updated", "re_evaluation": "every_time",
                   "actions": [{"action_type": "outbound_message", "action_config": {"endpoint_url": "http://hooks.example.test:9/hook", "fields": ["Name", "Amount__c"], "secret": "s"}}]}),
            json!({"name": "Closed", "trigger_type": "updated",
                   "filter_criteria": {"conditions": [{"field": "Stage__c", "operator": "changed_to", "value": "Closed"}]},
                   "actions": [{"action_type": "field_update", "action_config": {"field_api_name": "Tier__c", "value_type": "null"}}]}),
        ];
        for r in rules {
            let input: WorkflowInput = serde_json::from_value(r).expect("rule input");
            p.meta.add_workflow(&t.tenant_id, "Auto__c", input).await.expect("rule");
        }
        let plain = p.create(&caller, "Plain__c", &body(json!({"Name": "p", "Amount__c": 1}))).await.expect("plain");
        let auto = p.create(&caller, "Auto__c", &body(json!({"Name": "a", "Amount__c": 1}))).await.expect("auto");
        (caller, plain, auto)
    });
    let n = AtomicU64::new(0);
    let mut g = c.benchmark_group("record update, embedded");
    g.bench_function("no workflow rules", |b| {
        b.iter(|| {
            let amount = 50 + n.fetch_add(1, Ordering::Relaxed) % 200;
            rt.block_on(p.update(
                &caller,
                "Plain__c",
                &plain,
                &body(json!({"Amount__c": amount})),
            ))
            .expect("update");
        })
    });
    g.bench_function(
        "3 active workflow rules (field update + outbound message)",
        |b| {
            b.iter(|| {
                let amount = 50 + n.fetch_add(1, Ordering::Relaxed) % 200;
                rt.block_on(p.update(
                    &caller,
                    "Auto__c",
                    &auto,
                    &body(json!({"Amount__c": amount})),
                ))
                .expect("update");
            })
        },
    );
    g.finish();
    p.close();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(200).measurement_time(std::time::Duration::from_secs(8));
    targets = bench
}
criterion_main!(benches);
