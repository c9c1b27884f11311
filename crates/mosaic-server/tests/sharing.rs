//! Record-level sharing over HTTP: a generated tenant (a four-level role
//! hierarchy, public groups, owner- and criteria-based sharing rules,
//! manual shares, a controlled-by-parent detail object) where, for every
//! user, record and operation, the single-record answer (GET / PATCH /
//! DELETE status) and the query answer (SOQL, parent fields, child
//! subqueries, SOSL) agree with each other and with a reference model
//! written here from the rules' definitions; revocations denied on the
//! very next request; tenant isolation of the sharing endpoints.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const ADMIN: &str = "/services/admin/v1";
const PASSWORD: &str = "correct-horse-battery";

async fn login(admin: &Client, username: &str, id: &str) -> Client {
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", admin.base))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    let mut c = admin.with_token(t["access_token"].as_str().unwrap());
    c.user_id = id.to_string();
    c.username = username.to_string();
    c
}

async fn new_user(admin: &Client, name: &str, role: Option<&str>) -> Client {
    let username = format!("{name}-{}@example.test", admin.tenant_id);
    let mut body = json!({"username": username, "password": PASSWORD, "email": "u@example.test", "profile": "standard"});
    if let Some(r) = role {
        body["role_id"] = json!(r);
    }
    let (s, v) = admin.post(&format!("{ADMIN}/users"), body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    login(admin, &username, &id).await
}

async fn new_role(admin: &Client, name: &str, parent: Option<&str>) -> String {
    let mut body = json!({"name": name, "label": name});
    if let Some(p) = parent {
        body["parent_role_id"] = json!(p);
    }
    let (s, v) = admin.post(&format!("{ADMIN}/roles"), body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_string()
}

async fn created_id(r: (StatusCode, Value)) -> String {
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    r.1["id"].as_str().unwrap().to_string()
}

fn ids_of(v: &Value) -> BTreeSet<String> {
    v["records"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect()
}

async fn query(c: &Client, soql: &str) -> Value {
    let (s, v) = c
        .get(&format!("/services/data/v1/query?q={}", urlencode(soql)))
        .await;
    assert_eq!(s, StatusCode::OK, "{soql}: {v}");
    v
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ------------------------------------------------------------ reference

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Lvl {
    None,
    Read,
    Edit,
    Full,
}

#[derive(Clone, Debug)]
enum Who {
    User(String),
    Role(String),
    RoleSubs(String),
    Group(String),
}

#[derive(Default)]
struct Model {
    /// role -> parent
    parent: HashMap<String, Option<String>>,
    /// user -> role
    user_role: HashMap<String, Option<String>>,
    groups: HashMap<String, Vec<Who>>,
    /// (from, to, edit): owner-based rules
    owner_rules: Vec<(Who, Who, bool)>,
    /// (min amount exclusive, region, to, edit): criteria rules — a record
    /// matches when its region equals `region` (if Some) or amount > min (if Some)
    criteria_rules: Vec<(Option<i64>, Option<String>, Who, bool)>,
    /// record -> (owner, region, amount)
    deals: BTreeMap<String, (String, String, i64)>,
    /// record -> [(who, edit)]
    manual: HashMap<String, Vec<(Who, bool)>>,
    view_all: BTreeSet<String>,
}

impl Model {
    /// Roles from `r` up to the root, `r` first.
    fn chain(&self, r: &str) -> Vec<String> {
        let mut out = vec![r.to_string()];
        let mut cur = r.to_string();
        while let Some(Some(p)) = self.parent.get(&cur) {
            out.push(p.clone());
            cur = p.clone();
        }
        out
    }

    /// Role `a` is strictly above role `b`.
    fn above(&self, a: &str, b: &str) -> bool {
        a != b && self.chain(b).iter().any(|x| x == a)
    }

    fn role_of(&self, u: &str) -> Option<String> {
        self.user_role.get(u).cloned().flatten()
    }

    /// `u` is in role `x` or above it.
    fn at_or_above(&self, u: &str, x: &str) -> bool {
        self.role_of(u).is_some_and(|r| r == x || self.above(&r, x))
    }

    fn reaches(&self, u: &str, w: &Who) -> bool {
        match w {
            Who::User(v) => {
                u == v
                    || match (self.role_of(u), self.role_of(v)) {
                        (Some(ru), Some(rv)) => self.above(&ru, &rv),
                        _ => false,
                    }
            }
            Who::Role(x) => self.at_or_above(u, x),
            Who::RoleSubs(x) => {
                self.at_or_above(u, x)
                    || self
                        .role_of(u)
                        .is_some_and(|r| self.chain(&r).iter().any(|c| c == x))
            }
            Who::Group(g) => self.groups[g].iter().any(|m| self.reaches(u, m)),
        }
    }

    fn owns_from(&self, owner: &str, from: &Who) -> bool {
        match from {
            Who::Role(x) => self.role_of(owner).as_deref() == Some(x.as_str()),
            Who::RoleSubs(x) => self
                .role_of(owner)
                .is_some_and(|r| self.chain(&r).iter().any(|c| c == x)),
            _ => false,
        }
    }

    fn level(&self, u: &str, deal: &str) -> Lvl {
        let (owner, region, amount) = &self.deals[deal];
        if u == owner {
            return Lvl::Full;
        }
        if let (Some(ru), Some(ro)) = (self.role_of(u), self.role_of(owner)) {
            if self.above(&ru, &ro) {
                return Lvl::Full;
            }
        }
        let mut l = if self.view_all.contains(u) {
            Lvl::Read
        } else {
            Lvl::None
        };
        let give = |l: &mut Lvl, edit: bool| {
            *l = (*l).max(if edit { Lvl::Edit } else { Lvl::Read });
        };
        for (from, to, edit) in &self.owner_rules {
            if self.owns_from(owner, from) && self.reaches(u, to) {
                give(&mut l, *edit);
            }
        }
        for (min, reg, to, edit) in &self.criteria_rules {
            let m = min.is_some_and(|m| *amount > m) || reg.as_deref() == Some(region.as_str());
            if m && self.reaches(u, to) {
                give(&mut l, *edit);
            }
        }
        for (w, edit) in self.manual.get(deal).into_iter().flatten() {
            if self.reaches(u, w) {
                give(&mut l, *edit);
            }
        }
        l
    }
}

// ------------------------------------------------------------ the matrix

fn client_of<'a>(users: &'a [(String, Client)], user_id: &str) -> &'a Client {
    &users.iter().find(|(_, c)| c.user_id == user_id).unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_record_checks_queries_and_the_reference_agree() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    let mut m = Model::default();

    // Objects: a public parent, the private Deal__c, its controlled-by-parent
    // lines, and public notes looking up deals.
    admin
        .create_object(json!({"api_name": "Acct__c", "sharing_model": "public_read_write"}))
        .await;
    admin
        .create_object(json!({"api_name": "Deal__c", "sharing_model": "private", "fields": [
            {"api_name": "Region__c", "data_type": "text", "length": 20},
            {"api_name": "Amount__c", "data_type": "number", "precision": 12, "scale": 0},
            {"api_name": "Note__c", "data_type": "text", "length": 80},
            {"api_name": "Acct__c", "data_type": "lookup", "lookup_object": "Acct__c", "child_relationship_name": "Deals__r"},
        ]}))
        .await;
    admin
        .create_object(json!({"api_name": "Line__c", "fields": [
            {"api_name": "Deal__c", "data_type": "master_detail", "lookup_object": "Deal__c", "child_relationship_name": "Lines__r"},
        ]}))
        .await;
    let (s, v) = admin
        .patch(
            "/services/metadata/v1/objects/Line__c",
            json!({"sharing_model": "controlled_by_parent"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    admin
        .create_object(json!({"api_name": "Memo__c", "fields": [
            {"api_name": "Deal__c", "data_type": "lookup", "lookup_object": "Deal__c"},
        ]}))
        .await;

    // Four levels: ceo > (vps, vpo) > (east, west | ops) > (rep_e, rep_w | rep_o)
    let ceo = new_role(&admin, "ceo", None).await;
    let vps = new_role(&admin, "vp_sales", Some(&ceo)).await;
    let vpo = new_role(&admin, "vp_ops", Some(&ceo)).await;
    let east = new_role(&admin, "mgr_east", Some(&vps)).await;
    let west = new_role(&admin, "mgr_west", Some(&vps)).await;
    let ops = new_role(&admin, "mgr_ops", Some(&vpo)).await;
    let rep_e = new_role(&admin, "rep_east", Some(&east)).await;
    let rep_w = new_role(&admin, "rep_west", Some(&west)).await;
    let rep_o = new_role(&admin, "rep_ops", Some(&ops)).await;
    for (r, p) in [
        (&ceo, None),
        (&vps, Some(&ceo)),
        (&vpo, Some(&ceo)),
        (&east, Some(&vps)),
        (&west, Some(&vps)),
        (&ops, Some(&vpo)),
        (&rep_e, Some(&east)),
        (&rep_w, Some(&west)),
        (&rep_o, Some(&ops)),
    ] {
        m.parent.insert(r.clone(), p.cloned());
    }

    let all_objects = ["Acct__c", "Deal__c", "Line__c", "Memo__c"];
    let full: Vec<Value> = all_objects
        .iter()
        .map(|o| json!({"object": o, "create": true, "read": true, "edit": true, "delete": true}))
        .collect();
    let set = created_id(
        admin
            .post(
                &format!("{ADMIN}/permission-sets"),
                json!({"name": "Sales", "label": "Sales", "object_permissions": full,
                       "field_permissions": [
                           {"object": "Deal__c", "field": "Region__c", "read": true, "edit": true},
                           {"object": "Deal__c", "field": "Amount__c", "read": true, "edit": true},
                           {"object": "Deal__c", "field": "Note__c", "read": true, "edit": true},
                           {"object": "Deal__c", "field": "Acct__c", "read": true, "edit": true},
                           {"object": "Line__c", "field": "Deal__c", "read": true, "edit": true},
                           {"object": "Memo__c", "field": "Deal__c", "read": true, "edit": true}]}),
            )
            .await,
    )
    .await;
    let auditor_set = created_id(
        admin
            .post(
                &format!("{ADMIN}/permission-sets"),
                json!({"name": "Auditor", "label": "Auditor", "object_permissions": [
                    {"object": "Deal__c", "read": true, "view_all": true}]}),
            )
            .await,
    )
    .await;

    let specs: Vec<(&str, Option<&String>)> = vec![
        ("ceo", Some(&ceo)),
        ("vps", Some(&vps)),
        ("vpo", Some(&vpo)),
        ("east", Some(&east)),
        ("west", Some(&west)),
        ("ops", Some(&ops)),
        ("rep_e1", Some(&rep_e)),
        ("rep_e2", Some(&rep_e)),
        ("rep_w", Some(&rep_w)),
        ("rep_o", Some(&rep_o)),
        ("loner", None),
        ("auditor", Some(&rep_o)),
    ];
    let mut users: Vec<(String, Client)> = Vec::new();
    for (name, role) in &specs {
        let c = new_user(&admin, name, role.map(String::as_str)).await;
        let (s, v) = admin
            .post(
                &format!("{ADMIN}/permission-sets/{set}/assignments"),
                json!({"user_id": c.user_id}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        m.user_role.insert(c.user_id.clone(), role.cloned());
        users.push((name.to_string(), c));
    }
    let uid = |n: &str| -> String {
        users
            .iter()
            .find(|(x, _)| x == n)
            .map(|(_, c)| c.user_id.clone())
            .unwrap()
    };
    let (s, v) = admin
        .post(
            &format!("{ADMIN}/permission-sets/{auditor_set}/assignments"),
            json!({"user_id": uid("auditor")}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    m.view_all.insert(uid("auditor"));

    // Groups: g1 = {rep_o (user), mgr_west (role)}; g2 = {vp_ops and below}.
    let g1 = created_id(
        admin
            .post(
                &format!("{ADMIN}/groups"),
                json!({"name": "g1", "members": [{"user_id": uid("rep_o")}, {"role_id": west}]}),
            )
            .await,
    )
    .await;
    let g2 = created_id(
        admin
            .post(
                &format!("{ADMIN}/groups"),
                json!({"name": "g2", "members": [{"role_and_subordinates_id": vpo}]}),
            )
            .await,
    )
    .await;
    m.groups.insert(
        g1.clone(),
        vec![Who::User(uid("rep_o")), Who::Role(west.clone())],
    );
    m.groups
        .insert(g2.clone(), vec![Who::RoleSubs(vpo.clone())]);

    // Records: every user but the auditor owns three deals.
    let acct = admin.create_record("Acct__c", json!({"Name": "A"})).await;
    let regions = ["East", "West", "North"];
    let mut seed: u64 = 7;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as i64
    };
    let mut lines: BTreeMap<String, String> = BTreeMap::new();
    let mut memos: BTreeMap<String, String> = BTreeMap::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for (name, c) in users.iter().filter(|(n, _)| n != "auditor") {
        for k in 0..3 {
            let region = regions[(next() % 3) as usize].to_string();
            let amount = next() % 2000;
            let id = c
                .create_record(
                    "Deal__c",
                    json!({"Name": format!("{name}-{k}"), "Region__c": region, "Amount__c": amount, "Acct__c": acct}),
                )
                .await;
            let line = c
                .create_record("Line__c", json!({"Name": "L", "Deal__c": id}))
                .await;
            let memo = admin
                .create_record("Memo__c", json!({"Name": "M", "Deal__c": id}))
                .await;
            lines.insert(line, id.clone());
            names.insert(id.clone(), format!("{name}-{k}"));
            memos.insert(memo, id.clone());
            m.deals.insert(id, (c.user_id.clone(), region, amount));
        }
    }

    // Sharing rules (two of each kind, every principal kind).
    let rule = |body: Value| {
        let admin = &admin;
        async move { created_id(admin.post(&format!("{ADMIN}/sharing-rules"), body).await).await }
    };
    rule(
        json!({"object": "Deal__c", "name": "EastToOps", "rule_type": "owner_based",
                "share_from_role_id": rep_e, "share_to": {"role_id": ops}, "access_level": "read"}),
    )
    .await;
    m.owner_rules
        .push((Who::Role(rep_e.clone()), Who::Role(ops.clone()), false));
    rule(json!({"object": "Deal__c", "name": "OpsToG1", "rule_type": "owner_based",
                "share_from_role_and_subordinates_id": vpo, "share_to": {"group_id": g1}, "access_level": "read_write"}))
        .await;
    m.owner_rules
        .push((Who::RoleSubs(vpo.clone()), Who::Group(g1.clone()), true));
    rule(json!({"object": "Deal__c", "name": "WestDeals", "rule_type": "criteria_based",
                "criteria": {"logic": "AND", "conditions": [{"field": "Region__c", "operator": "equals", "value": "West"}]},
                "share_to": {"group_id": g2}, "access_level": "read_write"}))
        .await;
    m.criteria_rules
        .push((None, Some("West".into()), Who::Group(g2.clone()), true));
    rule(json!({"object": "Deal__c", "name": "BigDeals", "rule_type": "criteria_based",
                "criteria": {"logic": "AND", "conditions": [{"field": "Amount__c", "operator": "greater_than", "value": 1500}]},
                "share_to": {"role_and_subordinates_id": west}, "access_level": "read"}))
        .await;
    m.criteria_rules
        .push((Some(1500), None, Who::RoleSubs(west.clone()), false));

    // Manual shares by owners: to a user, a role, a role and subordinates, a group.
    let deal_ids: Vec<String> = m.deals.keys().cloned().collect();
    let manual: Vec<(usize, Value, Who, bool)> = vec![
        (
            1,
            json!({"user_id": uid("loner"), "access_level": "read"}),
            Who::User(uid("loner")),
            false,
        ),
        (
            5,
            json!({"role_id": rep_w, "access_level": "read_write"}),
            Who::Role(rep_w.clone()),
            true,
        ),
        (
            9,
            json!({"group_id": g1, "access_level": "read"}),
            Who::Group(g1.clone()),
            false,
        ),
        (
            13,
            json!({"role_and_subordinates_id": east, "access_level": "read"}),
            Who::RoleSubs(east.clone()),
            false,
        ),
        (
            28,
            json!({"user_id": uid("rep_e2"), "access_level": "read_write"}),
            Who::User(uid("rep_e2")),
            true,
        ),
    ];
    for (i, body, who, edit) in manual {
        let d = &deal_ids[i];
        let c = client_of(&users, &m.deals[d].0);
        let (s, v) = c
            .post(
                &format!("/services/data/v1/sobjects/Deal__c/{d}/shares"),
                body,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        m.manual.entry(d.clone()).or_default().push((who, edit));
    }

    // An ownership transfer by the owner's manager, and a criteria change
    // by the owner (shares follow the record).
    let d0 = deal_ids[0].clone();
    let d0_owner = m.deals[&d0].0.clone();
    let d0_manager = users
        .iter()
        .find(|(_, c)| {
            m.role_of(&c.user_id)
                .zip(m.role_of(&d0_owner))
                .is_some_and(|(a, b)| m.above(&a, &b))
        })
        .map(|(_, c)| c.clone());
    if let Some(mgr) = d0_manager {
        let (s, v) = mgr
            .patch(
                &format!("/services/data/v1/sobjects/Deal__c/{d0}"),
                json!({"OwnerId": uid("rep_w")}),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        m.deals.get_mut(&d0).unwrap().0 = uid("rep_w");
    }
    let d2 = deal_ids[2].clone();
    let d2_owner = m.deals[&d2].0.clone();
    let (s, v) = client_of(&users, &d2_owner)
        .patch(
            &format!("/services/data/v1/sobjects/Deal__c/{d2}"),
            json!({"Region__c": "West"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    m.deals.get_mut(&d2).unwrap().1 = "West".into();

    // ---- read: GET, SOQL, parent fields, child subqueries, details, SOSL
    let mut checked = 0;
    let mut visible_pairs = 0;
    for (name, c) in &users {
        let u = c.user_id.clone();
        let by_query = ids_of(&query(c, "SELECT Id FROM Deal__c").await);
        let expected: BTreeSet<String> = m
            .deals
            .keys()
            .filter(|d| m.level(&u, d) >= Lvl::Read)
            .cloned()
            .collect();
        assert_eq!(by_query, expected, "{name}: query vs reference");
        let count = query(c, "SELECT COUNT() FROM Deal__c").await;
        assert_eq!(count["totalSize"], json!(expected.len()), "{name}: COUNT()");
        for d in m.deals.keys() {
            let (s, _) = c
                .get(&format!("/services/data/v1/sobjects/Deal__c/{d}"))
                .await;
            let want = if expected.contains(d) {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(s, want, "{name} GET {d}: level {:?}", m.level(&u, d));
            checked += 1;
            visible_pairs += usize::from(expected.contains(d));
        }
        // Details follow their master.
        let line_ids = ids_of(&query(c, "SELECT Id FROM Line__c").await);
        let want_lines: BTreeSet<String> = lines
            .iter()
            .filter(|(_, d)| expected.contains(*d))
            .map(|(l, _)| l.clone())
            .collect();
        assert_eq!(line_ids, want_lines, "{name}: lines");
        for (l, d) in lines.iter().take(8) {
            let (s, _) = c
                .get(&format!("/services/data/v1/sobjects/Line__c/{l}"))
                .await;
            assert_eq!(
                s == StatusCode::OK,
                expected.contains(d),
                "{name} GET line of {d}"
            );
        }
        // A parent the user cannot see is null.
        let memos_q = query(c, "SELECT Id, Deal__r.Name FROM Memo__c").await;
        for r in memos_q["records"].as_array().unwrap() {
            let memo = r["Id"].as_str().unwrap();
            let d = &memos[memo];
            assert_eq!(
                r["Deal__r"].is_null(),
                !expected.contains(d),
                "{name}: memo's parent deal {d}"
            );
        }
        // Child subqueries hold only visible children.
        let sub = query(c, "SELECT Id, (SELECT Id FROM Deals__r) FROM Acct__c").await;
        let children: BTreeSet<String> = sub["records"][0]["Deals__r"]["records"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["Id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(children, expected, "{name}: child subquery");
        // Semi-joins see only visible rows too.
        let semi = query(
            c,
            "SELECT Id FROM Acct__c WHERE Id IN (SELECT Acct__c FROM Deal__c)",
        )
        .await;
        assert_eq!(
            semi["totalSize"],
            json!(usize::from(!expected.is_empty())),
            "{name}: semi-join"
        );
        // Search hits only visible records.
        let (s, found) = c
            .get(&format!(
                "/services/data/v1/search?q={}",
                urlencode("FIND {rep*} RETURNING Deal__c(Id)")
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{found}");
        let hits: BTreeSet<String> = found["searchRecords"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_string())
            .collect();
        let want_hits: BTreeSet<String> = expected
            .iter()
            .filter(|d| names[*d].starts_with("rep"))
            .cloned()
            .collect();
        assert_eq!(hits, want_hits, "{name}: search");
    }
    assert_eq!(checked, users.len() * m.deals.len());
    assert!(visible_pairs > 0 && visible_pairs < checked, "a real mix");

    // ---- edit: PATCH a field no rule reads
    for (name, c) in &users {
        let u = c.user_id.clone();
        for d in m.deals.keys() {
            let (s, v) = c
                .patch(
                    &format!("/services/data/v1/sobjects/Deal__c/{d}"),
                    json!({"Note__c": format!("by {name}")}),
                )
                .await;
            let want = match m.level(&u, d) {
                Lvl::None => StatusCode::NOT_FOUND,
                Lvl::Read => StatusCode::FORBIDDEN,
                _ => StatusCode::NO_CONTENT,
            };
            assert_eq!(s, want, "{name} PATCH {d}: {v}");
            if s == StatusCode::FORBIDDEN {
                assert_eq!(codes(&v), ["INSUFFICIENT_ACCESS"]);
            }
        }
    }

    // ---- delete: per record, users by rising level; the first with full
    // access deletes it.
    for d in m.deals.keys() {
        let mut order: Vec<&(String, Client)> = users.iter().collect();
        order.sort_by_key(|(_, c)| m.level(&c.user_id, d));
        for (name, c) in order {
            let l = m.level(&c.user_id, d);
            let (s, v) = c
                .delete(&format!("/services/data/v1/sobjects/Deal__c/{d}"))
                .await;
            let want = match l {
                Lvl::None => StatusCode::NOT_FOUND,
                Lvl::Read | Lvl::Edit => StatusCode::FORBIDDEN,
                Lvl::Full => StatusCode::NO_CONTENT,
            };
            assert_eq!(s, want, "{name} DELETE {d} at {l:?}: {v}");
            if l == Lvl::Full {
                break;
            }
        }
    }
    server.stop().await;
}

// ------------------------------------------------------------ revocation

/// For each kind of revoke: a request that succeeds (and warms every
/// cache), the revoke, and the very next request denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_revoke_denies_the_very_next_request() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    admin
        .create_object(
            json!({"api_name": "Doc__c", "sharing_model": "private", "fields": [
            {"api_name": "Tag__c", "data_type": "text", "length": 20}]}),
        )
        .await;
    let set = created_id(
        admin
            .post(
                &format!("{ADMIN}/permission-sets"),
                json!({"name": "Docs", "label": "Docs", "object_permissions": [
                    {"object": "Doc__c", "create": true, "read": true, "edit": true, "delete": true}],
                    "field_permissions": [{"object": "Doc__c", "field": "Tag__c", "read": true, "edit": true}]}),
            )
            .await,
    )
    .await;
    let boss_role = new_role(&admin, "boss", None).await;
    let staff_role = new_role(&admin, "staff", Some(&boss_role)).await;
    let other_role = new_role(&admin, "other", None).await;
    let elsewhere = new_role(&admin, "elsewhere", None).await;
    let owner = new_user(&admin, "owner", Some(&staff_role)).await;
    let reader = new_user(&admin, "reader", Some(&other_role)).await;
    let boss = new_user(&admin, "boss", Some(&boss_role)).await;
    for u in [&owner, &reader, &boss] {
        let (s, v) = admin
            .post(
                &format!("{ADMIN}/permission-sets/{set}/assignments"),
                json!({"user_id": u.user_id}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let doc = |c: &Client, id: &str| {
        let c = c.clone();
        let path = format!("/services/data/v1/sobjects/Doc__c/{id}");
        async move { c.get(&path).await.0 }
    };
    let new_doc = || {
        let owner = owner.clone();
        async move {
            owner
                .create_record("Doc__c", json!({"Name": "d", "Tag__c": "open"}))
                .await
        }
    };

    // 1. A manual share revoked.
    let d = new_doc().await;
    assert_eq!(doc(&reader, &d).await, StatusCode::NOT_FOUND, "private");
    let share = created_id(
        owner
            .post(
                &format!("/services/data/v1/sobjects/Doc__c/{d}/shares"),
                json!({"user_id": reader.user_id, "access_level": "read"}),
            )
            .await,
    )
    .await;
    assert_eq!(doc(&reader, &d).await, StatusCode::OK);
    let (s, v) = owner
        .delete(&format!(
            "/services/data/v1/sobjects/Doc__c/{d}/shares/{share}"
        ))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        doc(&reader, &d).await,
        StatusCode::NOT_FOUND,
        "manual share revoked"
    );

    // 2. A sharing rule deleted.
    let rule = created_id(
        admin
            .post(
                &format!("{ADMIN}/sharing-rules"),
                json!({"object": "Doc__c", "name": "Open", "rule_type": "criteria_based",
                       "criteria": {"logic": "AND", "conditions": [{"field": "Tag__c", "operator": "equals", "value": "open"}]},
                       "share_to": {"role_id": other_role}, "access_level": "read"}),
            )
            .await,
    )
    .await;
    assert_eq!(doc(&reader, &d).await, StatusCode::OK, "rule recalculated");
    let (s, _) = admin.delete(&format!("{ADMIN}/sharing-rules/{rule}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        doc(&reader, &d).await,
        StatusCode::NOT_FOUND,
        "rule deleted"
    );

    // 3. The record stops meeting a rule's criteria.
    let rule = created_id(
        admin
            .post(
                &format!("{ADMIN}/sharing-rules"),
                json!({"object": "Doc__c", "name": "Open2", "rule_type": "criteria_based",
                       "criteria": {"logic": "AND", "conditions": [{"field": "Tag__c", "operator": "equals", "value": "open"}]},
                       "share_to": {"role_id": other_role}, "access_level": "read"}),
            )
            .await,
    )
    .await;
    assert_eq!(doc(&reader, &d).await, StatusCode::OK);
    let (s, _) = owner
        .patch(
            &format!("/services/data/v1/sobjects/Doc__c/{d}"),
            json!({"Tag__c": "closed"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        doc(&reader, &d).await,
        StatusCode::NOT_FOUND,
        "criteria no longer met"
    );
    let (s, _) = admin.delete(&format!("{ADMIN}/sharing-rules/{rule}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // 4. Group membership removed.
    let group = created_id(
        admin
            .post(
                &format!("{ADMIN}/groups"),
                json!({"name": "readers", "members": [{"user_id": reader.user_id}]}),
            )
            .await,
    )
    .await;
    let (s, _) = owner
        .post(
            &format!("/services/data/v1/sobjects/Doc__c/{d}/shares"),
            json!({"group_id": group, "access_level": "read"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(doc(&reader, &d).await, StatusCode::OK);
    let (s, v) = admin
        .patch(&format!("{ADMIN}/groups/{group}"), json!({"members": []}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        doc(&reader, &d).await,
        StatusCode::NOT_FOUND,
        "left the group"
    );

    // 5. The manager moved out of the owner's hierarchy.
    assert_eq!(
        doc(&boss, &d).await,
        StatusCode::OK,
        "manager sees the record"
    );
    let (s, v) = admin
        .patch(
            &format!("{ADMIN}/users/{}", boss.user_id),
            json!({"role_id": other_role}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(doc(&boss, &d).await, StatusCode::NOT_FOUND, "role changed");
    let (s, _) = admin
        .patch(
            &format!("{ADMIN}/users/{}", boss.user_id),
            json!({"role_id": boss_role}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // 6. A role moved: the owner's role leaves the boss's subtree.
    assert_eq!(doc(&boss, &d).await, StatusCode::OK);
    let (s, v) = admin
        .patch(
            &format!("{ADMIN}/roles/{staff_role}"),
            json!({"parent_role_id": elsewhere}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(doc(&boss, &d).await, StatusCode::NOT_FOUND, "role moved");

    // 7. Ownership transferred away.
    let d2 = new_doc().await;
    assert_eq!(doc(&owner, &d2).await, StatusCode::OK);
    let (s, v) = owner
        .patch(
            &format!("/services/data/v1/sobjects/Doc__c/{d2}"),
            json!({"OwnerId": boss.user_id}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        doc(&owner, &d2).await,
        StatusCode::NOT_FOUND,
        "no longer the owner"
    );
    let (s, v) = owner
        .patch(
            &format!("/services/data/v1/sobjects/Doc__c/{d2}"),
            json!({"OwnerId": owner.user_id}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "cannot take it back: {v}");

    // 8. The sharing model tightened.
    let (s, _) = admin
        .patch(
            "/services/metadata/v1/objects/Doc__c",
            json!({"sharing_model": "public_read"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc(&reader, &d).await, StatusCode::OK, "public read");
    let (s, _) = admin
        .patch(
            "/services/metadata/v1/objects/Doc__c",
            json!({"sharing_model": "private"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        doc(&reader, &d).await,
        StatusCode::NOT_FOUND,
        "private again"
    );

    // 9. The permission set unassigned: the object itself is gone.
    assert_eq!(doc(&owner, &d).await, StatusCode::OK);
    let (s, _) = admin
        .delete(&format!(
            "{ADMIN}/permission-sets/{set}/assignments/{}",
            owner.user_id
        ))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(doc(&owner, &d).await, StatusCode::NOT_FOUND, "unassigned");
    server.stop().await;
}

// ------------------------------------------------------------ API shapes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_endpoints_check_their_input_and_keep_tenants_apart() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let b = server.tenant().await;
    for c in [&a, &b] {
        c.create_object(json!({"api_name": "Doc__c", "sharing_model": "private", "fields": [
            {"api_name": "Tag__c", "data_type": "text", "length": 20},
            {"api_name": "Calc__c", "data_type": "formula", "formula_expression": "Tag__c", "formula_return_type": "text"}]}))
            .await;
    }
    let role_b = new_role(&b, "r", None).await;
    let rule_b = created_id(
        b.post(
            &format!("{ADMIN}/sharing-rules"),
            json!({"object": "Doc__c", "name": "R", "rule_type": "criteria_based",
                   "criteria": {"logic": "AND", "conditions": [{"field": "Tag__c", "operator": "equals", "value": "x"}]},
                   "share_to": {"role_id": role_b}, "access_level": "read"}),
        )
        .await,
    )
    .await;
    let doc_b = b.create_record("Doc__c", json!({"Name": "d"})).await;
    let share_b = created_id(
        b.post(
            &format!("/services/data/v1/sobjects/Doc__c/{doc_b}/shares"),
            json!({"role_id": role_b, "access_level": "read"}),
        )
        .await,
    )
    .await;
    // Tenant A's admin on tenant B's ids: 404, never data.
    for (s, v) in [
        a.get(&format!("{ADMIN}/sharing-rules/{rule_b}")).await,
        a.patch(
            &format!("{ADMIN}/sharing-rules/{rule_b}"),
            json!({"access_level": "read_write"}),
        )
        .await,
        a.delete(&format!("{ADMIN}/sharing-rules/{rule_b}")).await,
        a.get(&format!("/services/data/v1/sobjects/Doc__c/{doc_b}/shares"))
            .await,
        a.post(
            &format!("/services/data/v1/sobjects/Doc__c/{doc_b}/shares"),
            json!({"role_id": role_b, "access_level": "read"}),
        )
        .await,
        a.delete(&format!(
            "/services/data/v1/sobjects/Doc__c/{doc_b}/shares/{share_b}"
        ))
        .await,
    ] {
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        assert_eq!(codes(&v), ["NOT_FOUND"], "{v}");
    }
    let (_, list) = a.get(&format!("{ADMIN}/sharing-rules")).await;
    assert_eq!(list["sharing_rules"], json!([]));
    // A's rule naming B's role: the role does not exist for A.
    let (s, v) = a
        .post(
            &format!("{ADMIN}/sharing-rules"),
            json!({"object": "Doc__c", "name": "X", "rule_type": "criteria_based",
                   "criteria": {"logic": "AND", "conditions": [{"field": "Tag__c", "operator": "equals", "value": "x"}]},
                   "share_to": {"role_id": role_b}, "access_level": "read"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v[0]["fields"][0], "share_to.role_id", "{v}");

    // Bad input: 400 naming the field.
    let role_a = new_role(&a, "r", None).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "R", "rule_type": "criteria_based", "share_to": {"role_id": role_a}, "access_level": "read"}),
            "object",
        ),
        (
            json!({"object": "Doc__c", "name": "R", "share_to": {"role_id": role_a}, "access_level": "read"}),
            "rule_type",
        ),
        (
            json!({"object": "Doc__c", "name": "R", "rule_type": "owner_based", "share_to": {"role_id": role_a}, "access_level": "read"}),
            "share_from_role_id",
        ),
        (
            json!({"object": "Doc__c", "name": "R", "rule_type": "criteria_based", "share_to": {"role_id": role_a}, "access_level": "read"}),
            "criteria",
        ),
        (
            json!({"object": "Doc__c", "name": "R", "rule_type": "criteria_based", "share_to": {"role_id": role_a}, "access_level": "all",
                "criteria": {"conditions": [{"field": "Tag__c", "operator": "equals", "value": "x"}]}}),
            "access_level",
        ),
        (
            json!({"object": "Doc__c", "name": "R", "rule_type": "criteria_based", "share_to": {"team_id": "x"}, "access_level": "read",
                "criteria": {"conditions": [{"field": "Tag__c", "operator": "equals", "value": "x"}]}}),
            "share_to.team_id",
        ),
        (
            json!({"object": "Doc__c", "name": "R", "rule_type": "criteria_based", "share_to": {"role_id": role_a}, "access_level": "read",
                "criteria": {"conditions": [{"field": "Calc__c", "operator": "equals", "value": "x"}]}}),
            "criteria.conditions[0].field",
        ),
        (
            json!({"object": "Doc__c", "name": "R", "rule_type": "criteria_based", "share_to": {"role_id": role_a}, "access_level": "read",
                "criteria": {"conditions": [{"field": "Tag__c", "operator": "changed"}]}}),
            "criteria.conditions[0].operator",
        ),
        (
            json!({"object": "Doc__c", "name": "R", "rule_type": "criteria_based", "share_to": {"role_id": role_a}, "access_level": "read",
                "criteria": {"conditions": [{"field": "Nope__c", "operator": "equals", "value": 1}]}}),
            "criteria.conditions[0].field",
        ),
        (
            json!({"object": "Doc__c", "name": "R", "rule_type": "criteria_based", "share_to": {"role_id": role_a}, "access_level": "read",
                "bogus": 1, "criteria": {"conditions": [{"field": "Tag__c", "operator": "equals", "value": "x"}]}}),
            "bogus",
        ),
    ];
    for (i, (body, field)) in cases.into_iter().enumerate() {
        let (s, v) = a.post(&format!("{ADMIN}/sharing-rules"), body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "case {i}: {v}");
        assert_eq!(v[0]["fields"][0], field, "case {i}: {v}");
    }
    let doc_a = a.create_record("Doc__c", json!({"Name": "d"})).await;
    for (body, field) in [
        (json!({"role_id": role_a}), "access_level"),
        (
            json!({"role_id": role_a, "access_level": "owner"}),
            "access_level",
        ),
        (json!({"access_level": "read"}), ""),
        (
            json!({"user_id": "00000000-0000-7000-8000-000000000000", "access_level": "read"}),
            "user_id",
        ),
        (
            json!({"role_id": role_a, "group_id": role_a, "access_level": "read"}),
            "",
        ),
    ] {
        let (s, v) = a
            .post(
                &format!("/services/data/v1/sobjects/Doc__c/{doc_a}/shares"),
                body,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        if !field.is_empty() {
            assert_eq!(v[0]["fields"][0], field, "{v}");
        }
    }
    // Standard users: the sharing-rule API is for administrators.
    let user = new_user(&a, "u", None).await;
    let (s, _) = user.get(&format!("{ADMIN}/sharing-rules")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Rule changes are in the audit log.
    let (s, log) = b.get(&format!("{ADMIN}/audit")).await;
    assert_eq!(s, StatusCode::OK);
    let text = log.to_string();
    assert!(
        text.contains("sharing_rule.create") && text.contains("share.grant"),
        "{text}"
    );
    server.stop().await;
}
