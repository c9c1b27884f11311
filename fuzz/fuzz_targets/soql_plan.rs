//! Fuzzes the SOQL planner: any input either plans or fails with a user
//! error (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE), never panics, and
//! every plan — top level, child subqueries, later pages — builds SQL that
//! SQLite prepares with exactly the parameters bound.
#![no_main]

use chrono::{FixedOffset, NaiveDate, Weekday};
use libfuzzer_sys::fuzz_target;
use mosaic_store::plan::{plan_query, OutputItem, PlanContext, Schema, SchemaField, SchemaObject};
use mosaic_store::query_store::Restrict;
use mosaic_types::{DataType, ErrorCode, FlexSlot, SlotPool};
use std::sync::LazyLock;

fn field(name: &str, t: DataType, pool: SlotPool, i: u16) -> SchemaField {
    SchemaField {
        api_name: name.into(),
        data_type: t,
        slot: FlexSlot::new(pool, i),
        indexed: false,
        unique: false,
        lookup_object_id: None,
        relationship_name: None,
        child_relationship_name: None,
        rollup: None,
    }
}

static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    let mut industry = field("Industry__c", DataType::Picklist, SlotPool::String, 1);
    industry.indexed = true;
    let mut code = field("Code__c", DataType::Text, SlotPool::String, 2);
    code.unique = true;
    code.indexed = true;
    let mut parent = field("Parent__c", DataType::Lookup, SlotPool::String, 5);
    parent.indexed = true;
    parent.lookup_object_id = Some("acc".into());
    parent.relationship_name = Some("Parent__r".into());
    parent.child_relationship_name = Some("Children__r".into());
    let mut account = field("Account__c", DataType::Lookup, SlotPool::String, 1);
    account.indexed = true;
    account.lookup_object_id = Some("acc".into());
    account.relationship_name = Some("Account__r".into());
    account.child_relationship_name = Some("Contacts__r".into());
    let mut formula = field("Full__c", DataType::Formula, SlotPool::String, 1);
    formula.slot = None;
    Schema {
        objects: vec![
            SchemaObject {
                id: "acc".into(),
                api_name: "Account__c".into(),
                fields: vec![
                    industry,
                    code,
                    field("Revenue__c", DataType::Currency, SlotPool::Number, 1),
                    field("Founded__c", DataType::Date, SlotPool::Date, 1),
                    field("Active__c", DataType::Boolean, SlotPool::Boolean, 1),
                    field("Tags__c", DataType::MultiPicklist, SlotPool::String, 3),
                    field("Notes__c", DataType::LongText, SlotPool::Clob, 1),
                    field("Opens__c", DataType::Time, SlotPool::String, 4),
                    parent,
                ],
            },
            SchemaObject {
                id: "con".into(),
                api_name: "Contact__c".into(),
                fields: vec![
                    account,
                    field("Email__c", DataType::Email, SlotPool::String, 2),
                    field("Score__c", DataType::Number, SlotPool::Number, 1),
                    field("Seen__c", DataType::Datetime, SlotPool::Datetime, 1),
                    field("Secret__c", DataType::EncryptedText, SlotPool::String, 3),
                    formula,
                ],
            },
        ],
    }
});

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    for include_deleted in [false, true] {
        let ctx = PlanContext {
            today: NaiveDate::from_ymd_opt(2024, 2, 29).expect("date"),
            zone: FixedOffset::east_opt(-5 * 3600).expect("zone"),
            week_start: Weekday::Sun,
            include_deleted,
            fiscal_start_month: 1,
            user_id: None,
        };
        match plan_query(src, &SCHEMA, &ctx) {
            Ok(p) => {
                mosaic_store::check_statement(&p.plan, &Restrict::None)
                    .unwrap_or_else(|e| panic!("{src:?}: {}", e.message));
                if !p.plan.aggregate {
                    mosaic_store::check_statement(
                        &p.plan,
                        &Restrict::Ids(vec!["a".into(), "b".into()]),
                    )
                    .unwrap_or_else(|e| panic!("{src:?}: {}", e.message));
                }
                for item in &p.items {
                    if let OutputItem::Child(c) = item {
                        let r = Restrict::ColumnIn {
                            column: c.link,
                            values: vec!["a".into()],
                        };
                        mosaic_store::check_statement(&c.plan, &r)
                            .unwrap_or_else(|e| panic!("{src:?}: {}", e.message));
                    }
                }
            }
            Err(e) => assert!(
                matches!(
                    e.code,
                    ErrorCode::MALFORMED_QUERY | ErrorCode::INVALID_FIELD | ErrorCode::INVALID_TYPE
                ),
                "{src:?}: unexpected error {:?}: {}",
                e.code,
                e.message
            ),
        }
    }
});
