//! The fixture every load-test tenant gets: an Account-like and an
//! Opportunity-like object (~20 fields of the common types, two formula
//! fields of which one crosses the lookup, one validation rule, one
//! workflow rule where the server has workflows), the records seeded into
//! them, and the requests each operation sends.

use serde_json::{json, Value};

pub const ACCOUNT: &str = "LtAccount__c";
pub const OPPORTUNITY: &str = "LtOpportunity__c";
/// The Data API version every request uses.
pub const API: &str = "/services/data/v60.0";

/// Opportunities per value of the indexed `Bucket__c`: the simple query's
/// result size.
pub const BUCKET_SIZE: usize = 100;
/// Buckets the complex query spans (`IN` over this many values): about
/// 1,000 records.
pub const COMPLEX_QUERY_BUCKETS: usize = 10;
/// One account per this many opportunities.
pub const OPPORTUNITIES_PER_ACCOUNT: usize = 10;

const STAGES: [&str; 6] = [
    "Prospecting",
    "Qualification",
    "Proposal",
    "Negotiation",
    "Closed Won",
    "Closed Lost",
];
const TIERS: [&str; 3] = ["Gold", "Silver", "Bronze"];
const INDUSTRIES: [&str; 5] = ["Banking", "Energy", "Retail", "Software", "Transport"];
const REGIONS: [&str; 4] = ["EMEA", "AMER", "APAC", "LATAM"];
const TYPES: [&str; 3] = ["New Business", "Renewal", "Upsell"];
const SOURCES: [&str; 4] = ["Web", "Partner", "Event", "Referral"];

fn picklist(values: &[&str]) -> Value {
    Value::Array(values.iter().map(|v| json!({"value": v})).collect())
}

/// Metadata API body of the Account-like object (12 fields). It has no
/// rules, so writing it is the "simple write".
pub fn account_object() -> Value {
    json!({
        "api_name": ACCOUNT, "label": "LT Account",
        "fields": [
            {"api_name": "AccountCode__c", "data_type": "text", "length": 32, "is_external_id": true, "is_unique": true},
            {"api_name": "Industry__c", "data_type": "picklist", "picklist_values": picklist(&INDUSTRIES)},
            {"api_name": "Tier__c", "data_type": "picklist", "is_restricted": true, "picklist_values": picklist(&TIERS)},
            {"api_name": "Region__c", "data_type": "text", "length": 40},
            {"api_name": "Employees__c", "data_type": "number", "precision": 9, "scale": 0},
            {"api_name": "AnnualRevenue__c", "data_type": "currency", "precision": 16, "scale": 2},
            {"api_name": "Discount__c", "data_type": "percent", "precision": 5, "scale": 2},
            {"api_name": "Founded__c", "data_type": "date"},
            {"api_name": "Phone__c", "data_type": "phone"},
            {"api_name": "Website__c", "data_type": "url"},
            {"api_name": "Active__c", "data_type": "boolean"},
            {"api_name": "Ticker__c", "data_type": "text", "length": 8},
            {"api_name": "Rating__c", "data_type": "picklist", "picklist_values": picklist(&TIERS)},
            {"api_name": "Segment__c", "data_type": "text", "length": 40},
            {"api_name": "Country__c", "data_type": "text", "length": 40},
            {"api_name": "City__c", "data_type": "text", "length": 40},
            {"api_name": "Street__c", "data_type": "text", "length": 80},
            {"api_name": "PostalCode__c", "data_type": "text", "length": 12},
            {"api_name": "Sic__c", "data_type": "text", "length": 8},
            {"api_name": "Ownership__c", "data_type": "picklist", "picklist_values": picklist(&["Public", "Private"])},
            {"api_name": "Fax__c", "data_type": "phone"},
            {"api_name": "Sites__c", "data_type": "number", "precision": 6, "scale": 0},
            {"api_name": "LastReview__c", "data_type": "date"},
            {"api_name": "Score__c", "data_type": "number", "precision": 5, "scale": 1}
        ]
    })
}

/// Metadata API body of the Account's page layout: every field of the
/// object and the system fields (30), and three related lists of
/// opportunities (by account, partner and referrer) — the page the
/// page-render operation fetches.
pub fn account_layout() -> Value {
    let custom: Vec<Value> = account_object()["fields"]
        .as_array()
        .map(|f| f.iter().map(|x| x["api_name"].clone()).collect())
        .unwrap_or_default();
    let (first, rest) = custom.split_at(custom.len() / 2);
    let mut main = vec![json!("Name")];
    main.extend(first.iter().cloned());
    let related = |field: &str, label: &str| {
        json!({"object": OPPORTUNITY, "field": field, "label": label,
               "columns": ["Name", "Amount__c", "Stage__c", "CloseDate__c"],
               "sort_field": "CloseDate__c", "sort_direction": "desc", "page_size": 5})
    };
    json!({
        "name": "Account page",
        "sections": [
            {"label": "Account", "columns": 2, "items": main},
            {"label": "Details", "columns": 2, "items": rest},
            {"label": "System", "columns": 2, "items": ["OwnerId", "CreatedById", "CreatedDate", "LastModifiedById", "LastModifiedDate"]}
        ],
        "related_lists": [related("Account__c", "Opportunities"), related("Partner__c", "Partnered"), related("Referrer__c", "Referred")],
        "compact_fields": ["Name", "Tier__c", "AnnualRevenue__c", "Industry__c"]
    })
}

/// Metadata API body of the Opportunity-like object (20 fields including
/// the lookup, the indexed bucket and two formula fields).
pub fn opportunity_object() -> Value {
    json!({
        "api_name": OPPORTUNITY, "label": "LT Opportunity",
        "fields": [
            {"api_name": "Account__c", "data_type": "lookup", "lookup_object": ACCOUNT},
            {"api_name": "Partner__c", "data_type": "lookup", "lookup_object": ACCOUNT, "relationship_name": "Partnered__r"},
            {"api_name": "Referrer__c", "data_type": "lookup", "lookup_object": ACCOUNT, "relationship_name": "Referred__r"},
            {"api_name": "OppCode__c", "data_type": "text", "length": 32, "is_external_id": true, "is_unique": true},
            {"api_name": "Bucket__c", "data_type": "text", "length": 16, "is_indexed": true},
            {"api_name": "Amount__c", "data_type": "currency", "precision": 16, "scale": 2},
            {"api_name": "Quantity__c", "data_type": "number", "precision": 9, "scale": 0},
            {"api_name": "Probability__c", "data_type": "percent", "precision": 5, "scale": 2},
            {"api_name": "CloseDate__c", "data_type": "date"},
            {"api_name": "Stage__c", "data_type": "picklist", "is_restricted": true, "picklist_values": picklist(&STAGES)},
            {"api_name": "Type__c", "data_type": "picklist", "picklist_values": picklist(&TYPES)},
            {"api_name": "LeadSource__c", "data_type": "picklist", "picklist_values": picklist(&SOURCES)},
            {"api_name": "Description__c", "data_type": "text", "length": 255},
            {"api_name": "NextStep__c", "data_type": "text", "length": 120},
            {"api_name": "Priority__c", "data_type": "number", "precision": 3, "scale": 0},
            {"api_name": "Region__c", "data_type": "text", "length": 40},
            {"api_name": "Discounted__c", "data_type": "boolean"},
            {"api_name": "ContactEmail__c", "data_type": "email"},
            {"api_name": "Expected__c", "data_type": "formula", "formula_return_type": "currency", "scale": 2,
             "formula_expression": "Amount__c * Probability__c / 100"},
            {"api_name": "Net__c", "data_type": "formula", "formula_return_type": "currency", "scale": 2,
             "formula_expression": "Amount__c * (1 - BLANKVALUE(Account__r.Discount__c, 0) / 100)"}
        ]
    })
}

/// The Opportunity's validation rule (never fires: amounts are positive).
pub fn validation_rule() -> Value {
    json!({"name": "Amount_Not_Negative", "formula_expression": "Amount__c < 0",
           "error_message": "Amount must not be negative", "error_display_field": "Amount__c"})
}

/// The Opportunity's workflow rule: a before-save field update on large
/// amounts. Sent to `/services/metadata/v1/objects/{O}/workflows`; the
/// write-with-workflows operation runs only if the server accepts it.
pub fn workflow_rule() -> Value {
    json!({
        "name": "Large_Deal_Next_Step", "trigger_type": "created_or_updated",
        "re_evaluation": "every_time", "is_active": true,
        "filter_criteria": {"logic": "AND", "conditions": [{"field": "Amount__c", "operator": "greater_than", "value": 50000}]},
        "actions": [{"action_type": "field_update", "action_config": {
            "field_api_name": "NextStep__c", "value_type": "literal", "value": "Executive review"}}]
    })
}

/// A small deterministic mixer, so seeded data is reproducible.
fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The `i`-th account of tenant `t` (composite/sobjects record).
pub fn account_record(t: usize, i: usize) -> Value {
    let h = mix64(((t as u64) << 32) ^ i as u64);
    json!({
        "attributes": {"type": ACCOUNT},
        "Name": format!("Account {i}"),
        "AccountCode__c": format!("A-{i:08}"),
        "Industry__c": INDUSTRIES[(h % 5) as usize],
        "Tier__c": TIERS[i % TIERS.len()],
        "Region__c": REGIONS[(h >> 8) as usize % REGIONS.len()],
        "Employees__c": 10 + (h >> 16) % 50_000,
        "AnnualRevenue__c": format!("{}.{:02}", (h >> 20) % 100_000_000, h % 100),
        "Discount__c": format!("{}.{:02}", (h >> 24) % 30, (h >> 4) % 100),
        "Founded__c": format!("{}-{:02}-{:02}", 1950 + (h >> 12) % 70, 1 + (h >> 6) % 12, 1 + (h >> 2) % 28),
        "Phone__c": format!("+1 555 {:04}", h % 10_000),
        "Website__c": format!("https://a{i}.example.com"),
        "Active__c": h % 3 < 2,
        "Ticker__c": format!("T{}", h % 10_000),
        "Rating__c": TIERS[(h >> 3) as usize % TIERS.len()],
        "Segment__c": "Mid-market",
        "Country__c": "Freedonia",
        "City__c": format!("City {}", h % 97),
        "Street__c": format!("{} Main Street", 1 + h % 999),
        "PostalCode__c": format!("{:05}", h % 100_000),
        "Sic__c": format!("{:04}", h % 10_000),
        "Ownership__c": if h & 2 == 0 { "Public" } else { "Private" },
        "Fax__c": format!("+1 555 {:04}", (h >> 5) % 10_000),
        "Sites__c": 1 + (h >> 7) % 40,
        "LastReview__c": format!("2024-{:02}-{:02}", 1 + (h >> 9) % 12, 1 + (h >> 11) % 28),
        "Score__c": format!("{}.{}", (h >> 13) % 100, h % 10),
    })
}

/// The bucket (`Bucket__c`) of the `i`-th opportunity.
pub fn bucket(i: usize) -> String {
    format!("B{:05}", i / BUCKET_SIZE)
}

/// The `i`-th opportunity of tenant `t`, pointing at `account`.
pub fn opportunity_record(t: usize, i: usize, account: &str) -> Value {
    let h = mix64(((t as u64) << 32) ^ (i as u64) ^ 0x5eed);
    json!({
        "attributes": {"type": OPPORTUNITY},
        "Name": format!("Deal {i}"),
        "Account__c": account,
        "Partner__c": account,
        "Referrer__c": account,
        "OppCode__c": format!("O-{i:08}"),
        "Bucket__c": bucket(i),
        "Amount__c": format!("{}.{:02}", (h >> 8) % 100_000, h % 100),
        "Quantity__c": 1 + (h >> 16) % 500,
        "Probability__c": (h >> 20) % 101,
        "CloseDate__c": format!("{}-{:02}-{:02}", 2024 + (h >> 12) % 3, 1 + (h >> 6) % 12, 1 + (h >> 2) % 28),
        "Stage__c": STAGES[(h >> 28) as usize % STAGES.len()],
        "Type__c": TYPES[(h >> 32) as usize % TYPES.len()],
        "LeadSource__c": SOURCES[(h >> 36) as usize % SOURCES.len()],
        "Description__c": format!("Opportunity {i} seeded by mosaic loadtest for tenant {t}"),
        "NextStep__c": "Call back",
        "Priority__c": (h >> 40) % 5,
        "Region__c": REGIONS[(h >> 44) as usize % REGIONS.len()],
        "Discounted__c": h & 1 == 0,
        "ContactEmail__c": format!("buyer{i}@example.com"),
    })
}

/// Stored fields the record reads ask for; the formula read adds the two
/// formula fields to exactly these.
pub const READ_FIELDS: &str = "Name,Amount__c,Stage__c,CloseDate__c,Account__c,Probability__c";
pub const READ_FIELDS_WITH_FORMULAS: &str =
    "Name,Amount__c,Stage__c,CloseDate__c,Account__c,Probability__c,Expected__c,Net__c";

/// Indexed equality filter: one bucket, `BUCKET_SIZE` records.
pub fn simple_query(bucket_no: usize) -> String {
    format!(
        "SELECT Id, Name, Amount__c, Stage__c, CloseDate__c FROM {OPPORTUNITY} WHERE Bucket__c = 'B{bucket_no:05}'"
    )
}

/// Parent join + GROUP BY + aggregates over `COMPLEX_QUERY_BUCKETS`
/// consecutive buckets (about 1,000 records).
pub fn complex_query(first_bucket: usize) -> String {
    let buckets: Vec<String> = (first_bucket..first_bucket + COMPLEX_QUERY_BUCKETS)
        .map(|b| format!("'B{b:05}'"))
        .collect();
    format!(
        "SELECT Account__r.Tier__c, Stage__c, COUNT(Id), SUM(Amount__c), AVG(Probability__c) FROM {OPPORTUNITY} \
         WHERE Bucket__c IN ({}) GROUP BY Account__r.Tier__c, Stage__c",
        buckets.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields of the Account record page's layout (with the system fields).
    const PAGE_FIELDS: usize = 30;
    /// Related lists of the Account record page.
    const PAGE_RELATED_LISTS: usize = 3;

    #[test]
    fn the_account_page_has_thirty_fields_and_three_related_lists() {
        let l = account_layout();
        let items: usize = l["sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["items"].as_array().unwrap().len())
            .sum();
        assert_eq!(items, PAGE_FIELDS);
        assert_eq!(
            l["related_lists"].as_array().unwrap().len(),
            PAGE_RELATED_LISTS
        );
    }

    #[test]
    fn buckets_hold_bucket_size_records_and_complex_query_spans_ten() {
        assert_eq!(bucket(0), "B00000");
        assert_eq!(bucket(BUCKET_SIZE - 1), "B00000");
        assert_eq!(bucket(BUCKET_SIZE), "B00001");
        let q = complex_query(3);
        assert!(
            q.contains("'B00003'") && q.contains("'B00012'") && !q.contains("'B00013'"),
            "{q}"
        );
    }

    #[test]
    fn the_opportunity_has_about_twenty_fields_two_of_them_formulas() {
        let o = opportunity_object();
        let fields = o["fields"].as_array().unwrap();
        assert!(
            (18..=24).contains(&(fields.len() + 1)),
            "{} fields with Name",
            fields.len() + 1
        );
        let formulas: Vec<_> = fields
            .iter()
            .filter(|f| f["data_type"] == "formula")
            .collect();
        assert_eq!(formulas.len(), 2);
        assert!(formulas.iter().any(|f| f["formula_expression"]
            .as_str()
            .unwrap()
            .contains("Account__r.")));
    }
}
