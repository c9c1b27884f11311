//! Reading Salesforce's metadata source format (an SFDX project) and mapping
//! objects, fields and validation rules to Mosaic's metadata API bodies.
//!
//! Layout read: `…/objects/X/X.object-meta.xml`,
//! `…/objects/X/fields/*.field-meta.xml` and
//! `…/objects/X/validationRules/*.validationRule-meta.xml`, anywhere under
//! the given directory (a project root, `force-app/main/default`, or an
//! `objects` directory).

use quick_xml::events::Event;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One XML element: its local name, its text, its child elements.
#[derive(Debug, Default)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    fn bool_of(&self, name: &str) -> Option<bool> {
        self.text_of(name).map(|t| t.eq_ignore_ascii_case("true"))
    }

    fn number_of(&self, name: &str) -> Result<Option<u64>, String> {
        match self.text_of(name) {
            None => Ok(None),
            Some(t) => t
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("<{name}>{t}</{name}> is not a whole number")),
        }
    }
}

/// Parses an XML document into its root element.
pub fn parse_xml(text: &str) -> Result<Node, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack = vec![Node::default()];
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(e) => stack.push(Node {
                name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                ..Node::default()
            }),
            Event::Empty(e) => {
                let node = Node {
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    ..Node::default()
                };
                if let Some(top) = stack.last_mut() {
                    top.children.push(node);
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced XML")?;
                stack
                    .last_mut()
                    .ok_or("unbalanced XML")?
                    .children
                    .push(node);
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| {
                    format!("bad XML text at byte {}: {e}", reader.buffer_position())
                })?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c.into_inner()));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err("XML ends inside an element".into());
    }
    stack
        .pop()
        .and_then(|root| root.children.into_iter().next())
        .ok_or_else(|| "no root element".to_string())
}

/// Something in the project that was not (fully) imported.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The file, relative to the imported directory.
    pub file: String,
    /// The element (`<type>Summary</type>`) or the item.
    pub element: String,
    pub message: String,
    /// `true`: the item was skipped; `false`: only the element was ignored.
    pub skipped: bool,
}

#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub file: String,
    pub api_name: String,
    /// The metadata API body.
    pub body: Value,
    pub is_formula: bool,
}

#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub file: String,
    pub name: String,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub api_name: String,
    /// The object file; `None` when the project only adds fields to an
    /// object that must already exist.
    pub file: Option<String>,
    pub body: Option<Value>,
    pub fields: Vec<FieldSpec>,
    pub rules: Vec<RuleSpec>,
}

impl ObjectSpec {
    /// Objects this one's lookups point at.
    pub fn targets(&self) -> Vec<String> {
        self.fields
            .iter()
            .filter_map(|f| f.body.get("lookup_object").and_then(Value::as_str))
            .map(str::to_string)
            .collect()
    }
}

#[derive(Debug, Default)]
pub struct Project {
    /// In dependency order: lookup targets before the objects pointing at
    /// them (cycles keep their name order).
    pub objects: Vec<ObjectSpec>,
    pub problems: Vec<Problem>,
}

/// Object-level elements that have no meaning in Mosaic and are ignored
/// without a report (user-interface and org-feature switches).
const IGNORED_OBJECT: &[&str] = &[
    "fullName",
    "actionOverrides",
    "allowInChatterGroups",
    "compactLayoutAssignment",
    "compactLayouts",
    "deploymentStatus",
    "enableActivities",
    "enableBulkApi",
    "enableDivisions",
    "enableEnhancedLookup",
    "enableFeeds",
    "enableLicensing",
    "enableReports",
    "enableSearch",
    "enableSharing",
    "enableStreamingApi",
    "externalSharingModel",
    "gender",
    "listViews",
    "searchLayouts",
    "startsWith",
    "visibility",
    "recordTypeTrackFeedHistory",
    "recordTypeTrackHistory",
    "trackFeedHistory",
];

/// Field-level elements ignored without a report.
const IGNORED_FIELD: &[&str] = &[
    "fullName",
    "businessOwnerGroup",
    "businessOwnerUser",
    "businessStatus",
    "complianceGroup",
    "encryptionScheme",
    "relationshipLabel",
    "relationshipOrder",
    "reparentableMasterDetail",
    "securityClassification",
    "trackFeedHistory",
    "trackHistory",
    "trackTrending",
    "visibleLines",
    "writeRequiresMasterRead",
    "displayLocationInDecimal",
    "externalDeveloperName",
];

const MAPPED_FIELD: &[&str] = &[
    "label",
    "type",
    "length",
    "precision",
    "scale",
    "required",
    "unique",
    "externalId",
    "description",
    "inlineHelpText",
    "defaultValue",
    "referenceTo",
    "relationshipName",
    "deleteConstraint",
    "formula",
    "formulaTreatBlanksAs",
    "displayFormat",
    "valueSet",
];

/// Reads every object under `dir`.
pub fn read_project(dir: &Path) -> Result<Project, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mut object_dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    find_object_dirs(dir, &mut object_dirs, 0);
    if object_dirs.is_empty() {
        return Err(format!(
            "no objects/X/X.object-meta.xml or objects/X/fields/*.field-meta.xml under {}",
            dir.display()
        ));
    }
    let mut project = Project::default();
    let mut specs = Vec::new();
    for (name, path) in object_dirs {
        specs.push(read_object(dir, &name, &path, &mut project.problems));
    }
    project.objects = dependency_order(specs);
    Ok(project)
}

fn find_object_dirs(dir: &Path, out: &mut BTreeMap<String, PathBuf>, depth: usize) {
    if depth > 8 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    let is_objects = dir.file_name().and_then(|n| n.to_str()) == Some("objects");
    for sub in subdirs {
        let Some(name) = sub.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        if is_objects
            && (sub.join(format!("{name}.object-meta.xml")).is_file()
                || sub.join("fields").is_dir())
        {
            out.entry(name).or_insert(sub);
        } else {
            find_object_dirs(&sub, out, depth + 1);
        }
    }
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(suffix))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn read_doc(root: &Path, path: &Path, expected: &str) -> Result<Node, Problem> {
    let file = rel(root, path);
    let text = std::fs::read_to_string(path).map_err(|e| Problem {
        file: file.clone(),
        element: String::new(),
        message: format!("cannot read: {e}"),
        skipped: true,
    })?;
    let node = parse_xml(&text).map_err(|message| Problem {
        file: file.clone(),
        element: String::new(),
        message,
        skipped: true,
    })?;
    if node.name != expected {
        return Err(Problem {
            file,
            element: format!("<{}>", node.name),
            message: format!("expected a <{expected}> document"),
            skipped: true,
        });
    }
    Ok(node)
}

fn read_object(root: &Path, name: &str, dir: &Path, problems: &mut Vec<Problem>) -> ObjectSpec {
    let mut spec = ObjectSpec {
        api_name: name.to_string(),
        file: None,
        body: None,
        fields: vec![],
        rules: vec![],
    };
    let object_file = dir.join(format!("{name}.object-meta.xml"));
    if object_file.is_file() {
        let file = rel(root, &object_file);
        spec.file = Some(file.clone());
        match read_doc(root, &object_file, "CustomObject") {
            Ok(node) => match map_object(name, &node, &file, problems) {
                Ok(body) => spec.body = Some(body),
                Err(p) => problems.push(p),
            },
            Err(p) => problems.push(p),
        }
    }
    for path in files_with_suffix(&dir.join("fields"), ".field-meta.xml") {
        let file = rel(root, &path);
        let stem = file_stem(&path, ".field-meta.xml");
        match read_doc(root, &path, "CustomField")
            .and_then(|node| map_field(&stem, &node, &file, problems))
        {
            Ok(f) => spec.fields.push(f),
            Err(p) => problems.push(p),
        }
    }
    for path in files_with_suffix(&dir.join("validationRules"), ".validationRule-meta.xml") {
        let file = rel(root, &path);
        let stem = file_stem(&path, ".validationRule-meta.xml");
        match read_doc(root, &path, "ValidationRule").and_then(|node| map_rule(&stem, &node, &file))
        {
            Ok(r) => spec.rules.push(r),
            Err(p) => problems.push(p),
        }
    }
    spec
}

fn file_stem(path: &Path, suffix: &str) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(suffix))
        .unwrap_or_default()
        .to_string()
}

fn problem(
    file: &str,
    element: impl Into<String>,
    message: impl Into<String>,
    skipped: bool,
) -> Problem {
    Problem {
        file: file.to_string(),
        element: element.into(),
        message: message.into(),
        skipped,
    }
}

fn map_object(
    name: &str,
    node: &Node,
    file: &str,
    problems: &mut Vec<Problem>,
) -> Result<Value, Problem> {
    let mut body = Map::new();
    body.insert("api_name".into(), json!(name));
    for c in &node.children {
        let t = c.text.trim();
        match c.name.as_str() {
            "label" => {
                body.insert("label".into(), json!(t));
            }
            "pluralLabel" => {
                body.insert("plural_label".into(), json!(t));
            }
            "description" => {
                body.insert("description".into(), json!(t));
            }
            "enableHistory" => {
                body.insert("enable_history".into(), json!(t.eq_ignore_ascii_case("true")));
            }
            "sharingModel" => {
                let m = match t {
                    "Private" => "private",
                    "Read" => "public_read",
                    "ReadWrite" => "public_read_write",
                    "ControlledByParent" => "controlled_by_parent",
                    other => {
                        problems.push(problem(
                            file,
                            format!("<sharingModel>{other}</sharingModel>"),
                            "this sharing model has no Mosaic equivalent (Private, Read, ReadWrite, ControlledByParent); the default (ReadWrite) is used",
                            false,
                        ));
                        continue;
                    }
                };
                body.insert("sharing_model".into(), json!(m));
            }
            "nameField" => {
                body.insert("name_field".into(), map_name_field(c, file)?);
            }
            "fields" | "validationRules" | "recordTypes" | "businessProcesses" | "fieldSets"
            | "webLinks" | "indexes" | "sharingReasons" => problems.push(problem(
                file,
                format!("<{}>", c.name),
                "inline elements of the object file are not imported (use the source format's fields/ and validationRules/ files)",
                false,
            )),
            n if IGNORED_OBJECT.contains(&n) => {}
            n => problems.push(problem(
                file,
                format!("<{n}>"),
                "not supported; ignored",
                false,
            )),
        }
    }
    Ok(Value::Object(body))
}

fn map_name_field(node: &Node, file: &str) -> Result<Value, Problem> {
    let mut nf = Map::new();
    if let Some(l) = node.text_of("label") {
        nf.insert("label".into(), json!(l));
    }
    match node.text_of("type").unwrap_or("Text") {
        "Text" => {
            nf.insert("data_type".into(), json!("text"));
        }
        "AutoNumber" => {
            nf.insert("data_type".into(), json!("auto_number"));
            if let Some(f) = node.text_of("displayFormat") {
                nf.insert("auto_number_format".into(), json!(f));
            }
            if let Some(n) = node
                .number_of("startingNumber")
                .map_err(|m| problem(file, "<nameField><startingNumber>", m, true))?
            {
                nf.insert("auto_number_start".into(), json!(n));
            }
        }
        other => {
            return Err(problem(
                file,
                format!("<nameField><type>{other}</type>"),
                "the name field is Text or AutoNumber",
                true,
            ))
        }
    }
    Ok(Value::Object(nf))
}

/// Salesforce field type → Mosaic `data_type` (for formulas: the return type).
fn mosaic_type(sf: &str) -> Option<&'static str> {
    Some(match sf {
        "Text" => "text",
        "TextArea" => "textarea",
        "LongTextArea" => "long_text",
        "Html" => "rich_text",
        "EncryptedText" => "encrypted_text",
        "Number" => "number",
        "Currency" => "currency",
        "Percent" => "percent",
        "Checkbox" => "boolean",
        "Date" => "date",
        "DateTime" => "datetime",
        "Time" => "time",
        "Email" => "email",
        "Phone" => "phone",
        "Url" => "url",
        "Picklist" => "picklist",
        "MultiselectPicklist" => "multi_picklist",
        "Lookup" => "lookup",
        "MasterDetail" => "master_detail",
        "AutoNumber" => "auto_number",
        "Location" => "geolocation",
        _ => return None,
    })
}

fn map_field(
    stem: &str,
    node: &Node,
    file: &str,
    problems: &mut Vec<Problem>,
) -> Result<FieldSpec, Problem> {
    let api_name = node.text_of("fullName").unwrap_or(stem).to_string();
    let sf_type = node
        .text_of("type")
        .ok_or_else(|| problem(file, "<type>", "the field has no <type>", true))?;
    let type_el = format!("<type>{sf_type}</type>");
    let formula = node.text_of("formula");
    let mut body = Map::new();
    body.insert("api_name".into(), json!(api_name));
    let mapped = match sf_type {
        "Summary" => return Err(problem(
            file,
            type_el,
            "roll-up summary fields are not supported by the metadata import yet; field skipped",
            true,
        )),
        t => mosaic_type(t).ok_or_else(|| {
            problem(
                file,
                type_el.clone(),
                "this field type has no Mosaic equivalent; field skipped",
                true,
            )
        })?,
    };
    if let Some(expr) = formula {
        if !matches!(
            mapped,
            "text" | "number" | "currency" | "percent" | "boolean" | "date" | "datetime" | "time"
        ) {
            return Err(problem(
                file,
                type_el,
                "a formula returns Text, Number, Currency, Percent, Checkbox, Date, DateTime or Time; field skipped",
                true,
            ));
        }
        body.insert("data_type".into(), json!("formula"));
        body.insert("formula_return_type".into(), json!(mapped));
        body.insert("formula_expression".into(), json!(expr));
        if node.text_of("formulaTreatBlanksAs") == Some("BlankAsZero") {
            body.insert("formula_blank_as_zero".into(), json!(true));
        }
    } else {
        body.insert("data_type".into(), json!(mapped));
    }
    let numeric = matches!(mapped, "number" | "currency" | "percent");
    for c in &node.children {
        let t = c.text.trim();
        let el = || format!("<{}>{}</{}>", c.name, t, c.name);
        match c.name.as_str() {
            "label" => {
                body.insert("label".into(), json!(t));
            }
            "description" => {
                body.insert("description".into(), json!(t));
            }
            "inlineHelpText" => {
                body.insert("help_text".into(), json!(t));
            }
            "required" if t == "true" && formula.is_none() => {
                body.insert("is_required".into(), json!(true));
            }
            "unique" if t == "true" => {
                body.insert("is_unique".into(), json!(true));
            }
            "externalId" if t == "true" => {
                body.insert("is_external_id".into(), json!(true));
            }
            "length" if formula.is_none() && !matches!(mapped, "textarea") => {
                let n = node
                    .number_of("length")
                    .map_err(|m| problem(file, el(), m, true))?;
                body.insert("length".into(), json!(n));
            }
            "precision" if numeric => {
                let n = node
                    .number_of("precision")
                    .map_err(|m| problem(file, el(), m, true))?;
                body.insert("precision".into(), json!(n));
            }
            "scale" if numeric => {
                let n = node
                    .number_of("scale")
                    .map_err(|m| problem(file, el(), m, true))?;
                body.insert("scale".into(), json!(n));
            }
            "defaultValue" if formula.is_none() && !t.is_empty() => {
                if mapped == "boolean" {
                    body.insert(
                        "default_value".into(),
                        json!(t.eq_ignore_ascii_case("true")),
                    );
                } else {
                    body.insert("default_value_formula".into(), json!(t));
                }
            }
            "referenceTo" => {
                body.insert("lookup_object".into(), json!(t));
            }
            "relationshipName" => {
                let name = if t.ends_with("__r") {
                    t.to_string()
                } else {
                    format!("{t}__r")
                };
                body.insert("relationship_name".into(), json!(name));
            }
            "deleteConstraint" if mapped == "lookup" && t != "SetNull" => problems.push(problem(
                file,
                el(),
                "Mosaic clears a lookup when its parent is deleted (SetNull); ignored",
                false,
            )),
            "displayFormat" if mapped == "auto_number" => {
                body.insert("auto_number_format".into(), json!(t));
            }
            "valueSet" => map_value_set(c, file, &mut body, problems)?,
            "caseSensitive" if t == "true" => problems.push(problem(
                file,
                el(),
                "unique text is case-insensitive in Mosaic; ignored",
                false,
            )),
            "scale" | "precision" | "length" | "required" | "unique" | "externalId"
            | "defaultValue" | "deleteConstraint" | "displayFormat" | "caseSensitive" => {}
            n if MAPPED_FIELD.contains(&n) || IGNORED_FIELD.contains(&n) => {}
            n => problems.push(problem(
                file,
                format!("<{n}>"),
                "not supported; ignored",
                false,
            )),
        }
    }
    Ok(FieldSpec {
        file: file.to_string(),
        api_name,
        body: Value::Object(body),
        is_formula: formula.is_some(),
    })
}

fn map_value_set(
    node: &Node,
    file: &str,
    body: &mut Map<String, Value>,
    problems: &mut Vec<Problem>,
) -> Result<(), Problem> {
    if let Some(global) = node.text_of("valueSetName") {
        return Err(problem(
            file,
            format!("<valueSet><valueSetName>{global}</valueSetName>"),
            "global value sets are not supported; field skipped",
            true,
        ));
    }
    if node.bool_of("restricted") == Some(true) {
        body.insert("is_restricted".into(), json!(true));
    }
    if node.child("controllingField").is_some() || node.child("valueSettings").is_some() {
        problems.push(problem(
            file,
            "<valueSet><controllingField>",
            "dependent picklists are not supported; the values are imported without the dependency",
            false,
        ));
    }
    let Some(def) = node.child("valueSetDefinition") else {
        return Ok(());
    };
    let values: Vec<Value> = def
        .children
        .iter()
        .filter(|v| v.name == "value")
        .enumerate()
        .map(|(i, v)| {
            let value = v.text_of("fullName").unwrap_or_default();
            let mut p = json!({
                "value": value,
                "label": v.text_of("label").unwrap_or(value),
                "is_default": v.bool_of("default").unwrap_or(false),
                "sort_order": i,
            });
            if v.bool_of("isActive") == Some(false) {
                p["is_active"] = json!(false);
            }
            if let Some(c) = v.text_of("color") {
                p["color"] = json!(c);
            }
            p
        })
        .collect();
    body.insert("picklist_values".into(), Value::Array(values));
    Ok(())
}

fn map_rule(stem: &str, node: &Node, file: &str) -> Result<RuleSpec, Problem> {
    let name = node.text_of("fullName").unwrap_or(stem).to_string();
    let formula = node.text_of("errorConditionFormula").ok_or_else(|| {
        problem(
            file,
            "<errorConditionFormula>",
            "the validation rule has no formula; rule skipped",
            true,
        )
    })?;
    let mut body = json!({
        "name": name,
        "formula_expression": formula,
        "error_message": node.text_of("errorMessage").unwrap_or(""),
        "active": node.bool_of("active").unwrap_or(true),
    });
    if let Some(f) = node.text_of("errorDisplayField") {
        body["error_display_field"] = json!(f);
    }
    if let Some(d) = node.text_of("description") {
        body["description"] = json!(d);
    }
    Ok(RuleSpec {
        file: file.to_string(),
        name,
        body,
    })
}

/// Orders objects so that lookup targets in the project come first.
fn dependency_order(mut specs: Vec<ObjectSpec>) -> Vec<ObjectSpec> {
    let mut out: Vec<ObjectSpec> = Vec::with_capacity(specs.len());
    while !specs.is_empty() {
        let names: Vec<String> = specs.iter().map(|s| s.api_name.to_lowercase()).collect();
        let ready = specs.iter().position(|s| {
            s.targets().iter().all(|t| {
                let t = t.to_lowercase();
                t == s.api_name.to_lowercase() || !names.contains(&t)
            })
        });
        // A cycle: take the first in name order.
        out.push(specs.remove(ready.unwrap_or(0)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_elements_entities_and_cdata() {
        let n = parse_xml(
            r#"<?xml version="1.0"?><CustomField xmlns="http://soap.sforce.com/2006/04/metadata">
            <formula>A__c &lt; 3 &amp;&amp; B__c</formula><x><![CDATA[<raw>]]></x><e/></CustomField>"#,
        )
        .unwrap();
        assert_eq!(n.name, "CustomField");
        assert_eq!(n.text_of("formula"), Some("A__c < 3 && B__c"));
        assert_eq!(n.text_of("x"), Some("<raw>"));
        assert!(n.child("e").is_some());
        assert!(parse_xml("<a><b></a>").is_err());
    }

    #[test]
    fn maps_a_formula_and_refuses_a_summary() {
        let mut problems = vec![];
        let n = parse_xml("<CustomField><fullName>T__c</fullName><type>Currency</type><formula>A__c * 2</formula><precision>18</precision><scale>2</scale><formulaTreatBlanksAs>BlankAsZero</formulaTreatBlanksAs><trackTrending>false</trackTrending><bogus>1</bogus></CustomField>").unwrap();
        let f = map_field("T__c", &n, "f.xml", &mut problems).unwrap();
        assert_eq!(
            f.body,
            json!({"api_name": "T__c", "data_type": "formula", "formula_return_type": "currency",
                "formula_expression": "A__c * 2", "formula_blank_as_zero": true, "precision": 18, "scale": 2})
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].element, "<bogus>");
        let n = parse_xml("<CustomField><type>Summary</type></CustomField>").unwrap();
        let e = map_field("S__c", &n, "s.xml", &mut problems).unwrap_err();
        assert!(e.skipped && e.element == "<type>Summary</type>", "{e:?}");
    }
}
