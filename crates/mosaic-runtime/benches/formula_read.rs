//! Reading 100 records with 3 formula fields, one of which crosses a
//! lookup: the batched evaluation path (one `get_many` for the page, one
//! per relationship hop), on the embedded backend.

mod common;
use common::body;
use criterion::{criterion_group, criterion_main, Criterion};
use mosaic_meta::validate::ObjectInput;
use mosaic_runtime::formula_eval::row_values;
use mosaic_runtime::Caller;
use serde_json::{json, Value};

fn input(v: Value) -> ObjectInput {
    serde_json::from_value(v).expect("object input")
}

fn bench(c: &mut Criterion) {
    let common::Bench { rt, p, admin, .. } = common::setup();
    let t = admin.clone();
    let (caller, ids, opp) = rt.block_on(async {

        let caller = Caller { tenant_id: t.tenant_id.clone(), user_id: t.user_id.clone(), username: "bench@example.test".into(), perms: std::sync::Arc::new(mosaic_access::PermissionSnapshot::system_administrator(&t.tenant_id, &t.user_id)), zone: chrono_tz::Tz::UTC };
        p.meta
            .create_object(&t.tenant_id, input(json!({"api_name": "Account__c", "fields": [
                {"api_name": "Discount__c", "data_type": "percent"}]})))
            .await
            .expect("account");
        p.meta
            .create_object(&t.tenant_id, input(json!({"api_name": "Opp__c", "fields": [
                {"api_name": "Amount__c", "data_type": "currency"},
                {"api_name": "Account__c", "data_type": "lookup", "lookup_object": "Account__c"},
                {"api_name": "Commission__c", "data_type": "formula", "formula_return_type": "currency",
                 "formula_expression": "IF(Amount__c > 1000, Amount__c * 0.1, 0)"},
                {"api_name": "Label__c", "data_type": "formula", "formula_return_type": "text",
                 "formula_expression": "UPPER(Name) & \"-\" & TEXT(Amount__c)"},
                {"api_name": "Net__c", "data_type": "formula", "formula_return_type": "currency",
                 "formula_expression": "Amount__c * (1 - Account__r.Discount__c / 100)"}]})))
            .await
            .expect("opp");
        let mut accounts = Vec::new();
        for i in 0..10 {
            accounts.push(p.create(&caller, "Account__c", &body(json!({"Name": format!("A{i}"), "Discount__c": i}))).await.expect("account rec"));
        }
        let mut ids = Vec::new();
        for i in 0..100 {
            ids.push(
                p.create(&caller, "Opp__c", &body(json!({"Name": format!("o{i}"), "Amount__c": 500 + i * 17, "Account__c": accounts[i % 10]})))
                    .await
                    .expect("opp rec"),
            );
        }
        let opp = p.meta.object(&t.tenant_id, "Opp__c").await.expect("meta");
        (caller, ids, opp)
    });
    let wanted: Vec<String> = ["Commission__c", "Label__c", "Net__c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    c.bench_function(
        "read 100 records with 3 formula fields (1 cross-object)",
        |b| {
            b.iter(|| {
                rt.block_on(async {
                    let rows = p
                        .records
                        .get_many(&caller.tenant_id, opp.id(), &ids, &opp.slots())
                        .await
                        .expect("rows");
                    let mut values: Vec<_> = rows.iter().map(|r| row_values(&p, &opp, r)).collect();
                    p.compute_formulas(&caller, &opp, &mut values, &wanted, 0)
                        .await
                        .expect("formulas");
                    assert_eq!(values.len(), 100);
                    values
                })
            })
        },
    );
    p.close();
}

criterion_group!(benches, bench);
criterion_main!(benches);
