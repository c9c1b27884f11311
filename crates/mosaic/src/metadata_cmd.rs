//! `mosaic metadata import DIR`: brings an SFDX project's objects, fields
//! and validation rules into a tenant through the metadata API of a running
//! server (`--url`, or the URL recorded in `--data-dir`), authenticated with
//! an administrator's access token. Re-running it updates what changed and
//! skips what is already there.

use crate::sfdx::{self, FieldSpec, ObjectSpec, Problem};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum MetadataCommand {
    /// Import the objects, fields and validation rules of an SFDX project
    /// (source format: objects/X/X.object-meta.xml, objects/X/fields/,
    /// objects/X/validationRules/) into a tenant; prints a summary per
    /// object and one line per element not imported. Exit status 1 when an
    /// item was skipped or refused.
    Import(ImportArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// The SFDX project (or its force-app/main/default, or an objects
    /// directory).
    pub dir: PathBuf,
    /// The server's URL (e.g. http://127.0.0.1:8080).
    #[arg(long, env = "MOSAIC_URL", conflicts_with = "data_dir")]
    pub url: Option<String>,
    /// Reach the server running on this data directory (its recorded URL).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// An access token of an administrator of the tenant.
    #[arg(long, env = "MOSAIC_TOKEN")]
    pub token: Option<String>,
    /// The tenant's subdomain; the import refuses a token of another tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Report what would be created or updated without changing anything
    /// (without a server: only read and map the project).
    #[arg(long)]
    pub dry_run: bool,
}

const META: &str = "/services/metadata/v1";

struct Remote {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// An answer of the server that is not a success: its status and message.
struct Refused(String);

impl Remote {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }

    async fn get(&self, path: &str) -> Result<Option<Value>, String> {
        match self.call(reqwest::Method::GET, path, None).await? {
            (200, v) => Ok(Some(v)),
            (404, _) => Ok(None),
            (s, v) => Err(format!("GET {path}: {s} {}", message(&v))),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Result<Value, Refused>, String> {
        let (s, v) = self.call(method, path, Some(body)).await?;
        if (200..300).contains(&s) {
            Ok(Ok(v))
        } else if (400..500).contains(&s) {
            Ok(Err(Refused(format!("{s} {}", message(&v)))))
        } else {
            Err(format!("{path}: {s} {}", message(&v)))
        }
    }
}

/// The message of an error answer (`[{"errorCode", "message", "fields"}]`).
fn message(v: &Value) -> String {
    match v.get(0) {
        Some(e) => {
            let fields = e["fields"]
                .as_array()
                .filter(|f| !f.is_empty())
                .map(|f| {
                    format!(
                        " (fields: {})",
                        f.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .unwrap_or_default();
            format!(
                "{}: {}{fields}",
                e["errorCode"].as_str().unwrap_or("ERROR"),
                e["message"].as_str().unwrap_or("")
            )
        }
        None => v.to_string().chars().take(300).collect(),
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    object: &'static str,
    created: usize,
    updated: usize,
    unchanged: usize,
    failed: usize,
    rules_created: usize,
    rules_updated: usize,
    rules_unchanged: usize,
    rules_failed: usize,
}

impl Tally {
    fn line(&self, name: &str, dry: bool) -> String {
        let would = if dry { "would be " } else { "" };
        format!(
            "{name}: object {}{}; fields: {} {would}created, {} {would}updated, {} unchanged, {} failed; validation rules: {} {would}created, {} {would}updated, {} unchanged, {} failed",
            if self.object == "unchanged" || self.object == "missing" { "" } else { would },
            self.object,
            self.created,
            self.updated,
            self.unchanged,
            self.failed,
            self.rules_created,
            self.rules_updated,
            self.rules_unchanged,
            self.rules_failed
        )
    }
}

/// Whether the wanted value equals the stored one, for the keys the import
/// sets (case-insensitive names; picklist values by their own keys).
fn same(key: &str, want: &Value, have: &Value) -> bool {
    match (key, want, have) {
        (
            "lookup_object" | "data_type" | "formula_return_type",
            Value::String(a),
            Value::String(b),
        ) => a.eq_ignore_ascii_case(b),
        ("picklist_values", Value::Array(a), Value::Array(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    x.as_object().is_some_and(|m| {
                        m.iter()
                            .all(|(k, v)| k == "sort_order" || same(k, v, &y[k.as_str()]))
                    })
                })
        }
        ("name_field", Value::Object(a), _) => a.iter().all(|(k, v)| same(k, v, &have[k.as_str()])),
        (_, Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (_, Value::Bool(false), Value::Null) => true,
        _ => want == have,
    }
}

/// The keys of `want` whose values differ from `have`'s.
fn changes(want: &Value, have: &Value, except: &[&str]) -> Map<String, Value> {
    want.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !except.contains(&k.as_str()))
                .filter(|(k, v)| !same(k, v, &have[k.as_str()]))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn find_named<'a>(list: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|f| {
        f[key]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

fn report(problems: &[Problem]) {
    for p in problems {
        let kind = if p.skipped { "error" } else { "warning" };
        let at = if p.element.is_empty() {
            String::new()
        } else {
            format!(" {}", p.element)
        };
        println!("{kind}: {}:{at}: {}", p.file, p.message);
    }
}

pub async fn run(cmd: MetadataCommand) -> Result<(), String> {
    let MetadataCommand::Import(args) = cmd;
    let project = sfdx::read_project(&args.dir)?;
    let base = match (&args.url, &args.data_dir) {
        (Some(u), _) => Some(u.trim_end_matches('/').to_string()),
        (None, Some(d)) => Some(crate::recorded_url(d).ok_or_else(|| {
            format!(
                "no running server recorded in {} (start `mosaic serve --data-dir {}` or pass --url)",
                d.display(),
                d.display()
            )
        })?),
        (None, None) => None,
    };
    let Some(base) = base else {
        if !args.dry_run {
            return Err(
                "--url or --data-dir is required (or --dry-run to only read the project)".into(),
            );
        }
        return offline(&project);
    };
    let token = args
        .token
        .clone()
        .ok_or("--token (or MOSAIC_TOKEN) is required to reach the server")?;
    let remote = Remote {
        http: reqwest::Client::new(),
        base,
        token,
    };
    let tenant = args
        .tenant
        .as_deref()
        .ok_or("--tenant SUBDOMAIN is required")?;
    let org = remote
        .get("/services/admin/v1/organization")
        .await?
        .ok_or("the server has no organization endpoint")?;
    if !org["subdomain"]
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case(tenant))
    {
        return Err(format!(
            "the token belongs to tenant '{}', not '{tenant}'",
            org["subdomain"].as_str().unwrap_or("?")
        ));
    }
    let mut problems = project.problems.clone();
    let failed = apply(&remote, &project.objects, args.dry_run, &mut problems).await?;
    report(&problems);
    if failed || problems.iter().any(|p| p.skipped) {
        return Err("some items were not imported (see above)".into());
    }
    Ok(())
}

fn offline(project: &sfdx::Project) -> Result<(), String> {
    for o in &project.objects {
        println!(
            "{}: object {}; fields: {} mapped; validation rules: {} mapped",
            o.api_name,
            if o.body.is_some() {
                "mapped"
            } else {
                "not defined (must exist)"
            },
            o.fields.len(),
            o.rules.len()
        );
    }
    report(&project.problems);
    if project.problems.iter().any(|p| p.skipped) {
        return Err("some items cannot be imported (see above)".into());
    }
    Ok(())
}

async fn apply(
    remote: &Remote,
    objects: &[ObjectSpec],
    dry: bool,
    problems: &mut Vec<Problem>,
) -> Result<bool, String> {
    use reqwest::Method;
    let mut tallies: HashMap<String, Tally> = HashMap::new();
    let mut current: HashMap<String, Value> = HashMap::new();
    let mut any_failed = false;
    // Objects first, lookup targets before the objects pointing at them.
    for o in objects {
        let path = format!("{META}/objects/{}", enc(&o.api_name));
        let t = tallies.entry(o.api_name.clone()).or_default();
        let have = remote.get(&path).await?;
        let file = o
            .file
            .clone()
            .unwrap_or_else(|| format!("objects/{}", o.api_name));
        match (have, &o.body) {
            (None, None) => {
                t.object = "missing";
                any_failed = true;
                problems.push(Problem {
                    file,
                    element: String::new(),
                    message: format!(
                        "no {0}.object-meta.xml and no object {0} in the tenant; its fields are skipped",
                        o.api_name
                    ),
                    skipped: true,
                });
                continue;
            }
            (Some(have), None) => {
                t.object = "unchanged";
                current.insert(o.api_name.clone(), have);
            }
            (None, Some(body)) => {
                t.object = "created";
                if dry {
                    current.insert(o.api_name.clone(), json!({"fields": [], "dry": true}));
                    continue;
                }
                match remote
                    .send(Method::POST, &format!("{META}/objects"), body)
                    .await?
                {
                    Ok(v) => {
                        current.insert(o.api_name.clone(), v);
                    }
                    Err(Refused(m)) => {
                        t.object = "refused";
                        any_failed = true;
                        problems.push(Problem {
                            file,
                            element: String::new(),
                            message: format!("object refused: {m}; its fields are skipped"),
                            skipped: true,
                        });
                    }
                }
            }
            (Some(have), Some(body)) => {
                let diff = changes(body, &have, &["api_name"]);
                if diff.is_empty() {
                    t.object = "unchanged";
                    current.insert(o.api_name.clone(), have);
                    continue;
                }
                t.object = "updated";
                if dry {
                    current.insert(o.api_name.clone(), have);
                    continue;
                }
                match remote
                    .send(Method::PATCH, &path, &Value::Object(diff))
                    .await?
                {
                    Ok(v) => {
                        current.insert(o.api_name.clone(), v);
                    }
                    Err(Refused(m)) => {
                        t.object = "not updated";
                        any_failed = true;
                        problems.push(Problem {
                            file,
                            element: String::new(),
                            message: format!("object update refused: {m}"),
                            skipped: true,
                        });
                        current.insert(o.api_name.clone(), have);
                    }
                }
            }
        }
    }
    // Fields: plain ones first, then formulas; a refused field is tried
    // again while others succeed (a formula may use a field created later).
    let mut pending: Vec<(&ObjectSpec, &FieldSpec)> = objects
        .iter()
        .filter(|o| current.contains_key(&o.api_name))
        .flat_map(|o| {
            o.fields
                .iter()
                .filter(|f| !f.is_formula)
                .map(move |f| (o, f))
        })
        .collect();
    pending.extend(
        objects
            .iter()
            .filter(|o| current.contains_key(&o.api_name))
            .flat_map(|o| {
                o.fields
                    .iter()
                    .filter(|f| f.is_formula)
                    .map(move |f| (o, f))
            }),
    );
    loop {
        let mut refused: Vec<(&ObjectSpec, &FieldSpec, String)> = Vec::new();
        let before = pending.len();
        for (o, f) in std::mem::take(&mut pending) {
            let t = tallies.entry(o.api_name.clone()).or_default();
            let have =
                find_named(&current[&o.api_name]["fields"], "api_name", &f.api_name).cloned();
            let fields = format!("{META}/objects/{}/fields", enc(&o.api_name));
            let outcome = match have {
                None if dry => {
                    t.created += 1;
                    continue;
                }
                None => remote
                    .send(Method::POST, &fields, &f.body)
                    .await?
                    .map(|_| &mut t.created),
                Some(have) => {
                    let diff = changes(&f.body, &have, &["api_name"]);
                    if diff.is_empty() {
                        t.unchanged += 1;
                        continue;
                    }
                    if dry {
                        t.updated += 1;
                        continue;
                    }
                    remote
                        .send(
                            Method::PATCH,
                            &format!("{fields}/{}", enc(&f.api_name)),
                            &Value::Object(diff),
                        )
                        .await?
                        .map(|_| &mut t.updated)
                }
            };
            match outcome {
                Ok(n) => *n += 1,
                Err(Refused(m)) => refused.push((o, f, m)),
            }
        }
        if refused.is_empty() {
            break;
        }
        if refused.len() == before {
            for (o, f, m) in refused {
                tallies.entry(o.api_name.clone()).or_default().failed += 1;
                any_failed = true;
                problems.push(Problem {
                    file: f.file.clone(),
                    element: String::new(),
                    message: format!("field {}.{} refused: {m}", o.api_name, f.api_name),
                    skipped: true,
                });
            }
            break;
        }
        pending = refused.into_iter().map(|(o, f, _)| (o, f)).collect();
    }
    // Validation rules, after every field they may use.
    for o in objects.iter().filter(|o| current.contains_key(&o.api_name)) {
        if o.rules.is_empty() {
            continue;
        }
        let path = format!("{META}/objects/{}/validations", enc(&o.api_name));
        let have = if current[&o.api_name].get("dry").is_some() {
            json!([])
        } else {
            let v = remote.get(&path).await?.unwrap_or(json!([]));
            v.get("validations").cloned().unwrap_or(v)
        };
        let t = tallies.entry(o.api_name.clone()).or_default();
        for r in &o.rules {
            let result = match find_named(&have, "name", &r.name) {
                None if dry => {
                    t.rules_created += 1;
                    continue;
                }
                None => remote
                    .send(Method::POST, &path, &r.body)
                    .await?
                    .map(|_| &mut t.rules_created),
                Some(h) => {
                    let diff = changes(&r.body, h, &["name"]);
                    if diff.is_empty() {
                        t.rules_unchanged += 1;
                        continue;
                    }
                    if dry {
                        t.rules_updated += 1;
                        continue;
                    }
                    remote
                        .send(
                            Method::PATCH,
                            &format!("{path}/{}", enc(&r.name)),
                            &Value::Object(diff),
                        )
                        .await?
                        .map(|_| &mut t.rules_updated)
                }
            };
            match result {
                Ok(n) => *n += 1,
                Err(Refused(m)) => {
                    t.rules_failed += 1;
                    any_failed = true;
                    problems.push(Problem {
                        file: r.file.clone(),
                        element: String::new(),
                        message: format!("validation rule {} refused: {m}", r.name),
                        skipped: true,
                    });
                }
            }
        }
    }
    for o in objects {
        if let Some(t) = tallies.get(&o.api_name) {
            println!("{}", t.line(&o.api_name, dry));
        }
    }
    Ok(any_failed)
}
