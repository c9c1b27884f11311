//! Type checker: syntax tree plus schema to a typed [`Node`] tree, with every
//! field path resolved and every function's arity and argument types checked.

use crate::ast::{BinaryOp, Expr, ExprKind, UnaryOp};
use crate::error::{ErrorKind, FormulaError};
use crate::functions::Func;
use crate::limits::{MAX_COMPILED_SIZE, MAX_RELATIONSHIP_HOPS};
use crate::node::{Arith, Cmp, Global, Node};
use crate::schema::{FieldKind, FormulaType, Schema};
use crate::value::FValue;
use crate::Options;

/// Checker-internal type: a formula type, or a picklist that only some
/// functions accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Text,
    Number,
    Boolean,
    Date,
    Datetime,
    Time,
    Any,
    Picklist,
    MultiPicklist,
}

impl Ty {
    pub(crate) fn formula_type(self) -> FormulaType {
        match self {
            Ty::Text | Ty::Picklist | Ty::MultiPicklist => FormulaType::Text,
            Ty::Number => FormulaType::Number,
            Ty::Boolean => FormulaType::Boolean,
            Ty::Date => FormulaType::Date,
            Ty::Datetime => FormulaType::Datetime,
            Ty::Time => FormulaType::Time,
            Ty::Any => FormulaType::Any,
        }
    }

    fn from_formula_type(t: FormulaType) -> Ty {
        match t {
            FormulaType::Text => Ty::Text,
            FormulaType::Number => Ty::Number,
            FormulaType::Boolean => Ty::Boolean,
            FormulaType::Date => Ty::Date,
            FormulaType::Datetime => Ty::Datetime,
            FormulaType::Time => Ty::Time,
            FormulaType::Any => Ty::Any,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ty::Picklist => "Picklist",
            Ty::MultiPicklist => "Multi-Select Picklist",
            t => t.formula_type().name(),
        }
    }

    fn is_pick(self) -> bool {
        matches!(self, Ty::Picklist | Ty::MultiPicklist)
    }
}

/// Whether type `t` satisfies signature code `code` (see `functions.rs`).
fn accepts(code: char, t: Ty) -> bool {
    if t == Ty::Any {
        return true;
    }
    match code {
        'T' => t == Ty::Text,
        'N' => t == Ty::Number,
        'B' => t == Ty::Boolean,
        'D' => t == Ty::Date,
        'Z' => t == Ty::Datetime,
        'M' => t == Ty::Time,
        'd' => matches!(t, Ty::Date | Ty::Datetime),
        'u' => matches!(t, Ty::Date | Ty::Datetime | Ty::Time),
        'n' => matches!(t, Ty::Number | Ty::Date | Ty::Datetime | Ty::Time),
        'x' => matches!(t, Ty::Text | Ty::Datetime),
        'y' => matches!(t, Ty::Text | Ty::Date),
        _ => !t.is_pick(),
    }
}

fn code_name(code: char) -> &'static str {
    match code {
        'T' => "Text",
        'N' => "Number",
        'B' => "Boolean",
        'D' => "Date",
        'Z' => "Datetime",
        'M' => "Time",
        'd' => "Date or Datetime",
        'u' => "Date, Datetime or Time",
        'n' => "Number, Date, Datetime or Time",
        'x' => "Text or Datetime",
        'y' => "Text or Date",
        _ => "a value",
    }
}

fn code_type(code: char) -> Ty {
    match code {
        'T' => Ty::Text,
        'N' => Ty::Number,
        'B' => Ty::Boolean,
        'D' => Ty::Date,
        'Z' => Ty::Datetime,
        'M' => Ty::Time,
        _ => Ty::Any,
    }
}

/// The common type of two branches, if any.
fn unify(a: Ty, b: Ty) -> Option<Ty> {
    match (a, b) {
        _ if a == b => Some(a),
        (Ty::Any, t) | (t, Ty::Any) => Some(t),
        _ => None,
    }
}

pub(crate) struct Checked {
    pub root: Node,
    pub ty: Ty,
    pub fields: Vec<Vec<String>>,
}

pub(crate) fn check(
    src: &str,
    expr: &Expr,
    schema: &dyn Schema,
    opts: &Options,
) -> Result<Checked, FormulaError> {
    let mut c = Checker {
        src,
        schema,
        opts,
        fields: Vec::new(),
        nodes: 0,
    };
    let (root, ty) = c.expr(expr)?;
    if let Some(want) = opts.return_type {
        let want_ty = Ty::from_formula_type(want);
        if unify(want_ty, ty).is_none() {
            return Err(c.err(
                expr.start(),
                ErrorKind::Type,
                format!("formula must return {}, found {}", want.name(), ty.name()),
            ));
        }
    }
    let ty = match (ty, opts.return_type) {
        (Ty::Any, Some(t)) => Ty::from_formula_type(t),
        (t, _) => t,
    };
    Ok(Checked {
        root,
        ty,
        fields: c.fields,
    })
}

struct Checker<'a> {
    src: &'a str,
    schema: &'a dyn Schema,
    opts: &'a Options,
    fields: Vec<Vec<String>>,
    nodes: usize,
}

type Typed = (Node, Ty);

impl<'a> Checker<'a> {
    fn err(&self, pos: usize, kind: ErrorKind, msg: impl Into<String>) -> FormulaError {
        FormulaError::at(self.src, pos, kind, msg)
    }

    fn count(&mut self, pos: usize) -> Result<(), FormulaError> {
        self.nodes += 1;
        if self.nodes > MAX_COMPILED_SIZE {
            return Err(self.err(
                pos,
                ErrorKind::LimitExceeded,
                format!("compiled formula is too large (limit {MAX_COMPILED_SIZE} nodes)"),
            ));
        }
        Ok(())
    }

    /// Checks an expression in a position where picklists are not allowed.
    fn expr(&mut self, e: &Expr) -> Result<Typed, FormulaError> {
        let (n, t) = self.expr_any(e)?;
        if t.is_pick() {
            let what = match &e.kind {
                ExprKind::Field(p) => format!("field {}", p.join(".")),
                _ => "this expression".to_string(),
            };
            let allowed = if t == Ty::Picklist {
                "ISPICKVAL, CASE, TEXT, ISBLANK, ISNULL, ISCHANGED and PRIORVALUE"
            } else {
                "INCLUDES, ISBLANK, ISNULL, ISCHANGED and PRIORVALUE"
            };
            return Err(self.err(
                e.start(),
                ErrorKind::Type,
                format!("{what} is a {}; it can only be used in {allowed}", t.name()),
            ));
        }
        Ok((n, t))
    }

    fn expr_any(&mut self, e: &Expr) -> Result<Typed, FormulaError> {
        self.count(e.pos)?;
        match &e.kind {
            ExprKind::Number(n) => Ok((Node::Const(FValue::Number(*n)), Ty::Number)),
            ExprKind::Text(s) => Ok((Node::Const(FValue::Text(s.clone())), Ty::Text)),
            ExprKind::Boolean(b) => Ok((Node::Const(FValue::Boolean(*b)), Ty::Boolean)),
            ExprKind::Null => Ok((Node::Const(FValue::Null), Ty::Any)),
            ExprKind::Field(path) => self.field(path, e.pos),
            ExprKind::Unary(op, inner) => {
                let (n, t) = self.expr(inner)?;
                match (op, t) {
                    (UnaryOp::Neg, Ty::Number | Ty::Any) => {
                        Ok((Node::Neg(Box::new(n)), Ty::Number))
                    }
                    (UnaryOp::Not, Ty::Boolean | Ty::Any) => {
                        Ok((Node::Not(Box::new(n)), Ty::Boolean))
                    }
                    (UnaryOp::Neg, t) => Err(self.err(
                        e.pos,
                        ErrorKind::Type,
                        format!("unary '-' needs a Number, found {}", t.name()),
                    )),
                    (UnaryOp::Not, t) => Err(self.err(
                        e.pos,
                        ErrorKind::Type,
                        format!("'!' needs a Boolean, found {}", t.name()),
                    )),
                }
            }
            ExprKind::Binary(op, l, r) => self.binary(*op, l, r, e.pos),
            ExprKind::Call(name, args) => self.call(name, args, e.pos),
        }
    }

    fn field_index(&mut self, canonical: Vec<String>) -> usize {
        if let Some(i) = self.fields.iter().position(|f| *f == canonical) {
            return i;
        }
        self.fields.push(canonical);
        self.fields.len() - 1
    }

    fn field(&mut self, path: &[String], pos: usize) -> Result<Typed, FormulaError> {
        let first = path.first().map(String::as_str).unwrap_or("");
        if first.starts_with('$') {
            let joined = path.join(".").to_ascii_lowercase();
            let g = match joined.as_str() {
                "$user.id" => Global::UserId,
                "$user.username" => Global::Username,
                "$organization.id" => Global::OrgId,
                _ if joined.starts_with("$setup.") || joined.starts_with("$label.") => {
                    let which = if joined.starts_with("$setup.") {
                        "$Setup (hierarchy custom settings)"
                    } else {
                        "$Label (custom labels)"
                    };
                    return Err(self.err(
                        pos,
                        ErrorKind::UnknownField,
                        format!(
                            "{} cannot be used: {which} is not implemented in Mosaic",
                            path.join(".")
                        ),
                    ));
                }
                _ if joined.starts_with("$user.") => {
                    return Err(self.err(
                        pos,
                        ErrorKind::UnknownField,
                        format!(
                            "unknown global {}; Mosaic users have no custom fields: supported are $User.Id and $User.Username",
                            path.join(".")
                        ),
                    ));
                }
                _ => {
                    return Err(self.err(
                        pos,
                        ErrorKind::UnknownField,
                        format!(
                        "unknown global {}; supported: $User.Id, $User.Username, $Organization.Id",
                        path.join(".")
                    ),
                    ))
                }
            };
            return Ok((Node::Global(g), Ty::Text));
        }
        let hops = path.len().saturating_sub(1);
        if hops > MAX_RELATIONSHIP_HOPS {
            return Err(self.err(
                pos,
                ErrorKind::LimitExceeded,
                format!(
                    "field path {} has {hops} relationship hops; the limit is {MAX_RELATIONSHIP_HOPS}",
                    path.join(".")
                ),
            ));
        }
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        let Some(resolved) = self.schema.resolve(&refs) else {
            return Err(self.err(
                pos,
                ErrorKind::UnknownField,
                format!("unknown field {}", path.join(".")),
            ));
        };
        if resolved.kind == FieldKind::Location {
            return Err(self.err(
                pos,
                ErrorKind::Type,
                format!(
                    "geolocation field {0} can only be used in DISTANCE; read its parts as {0}__Latitude__s and {0}__Longitude__s",
                    path.join(".").trim_end_matches("__c")
                ),
            ));
        }
        let ty = match resolved.kind {
            FieldKind::Picklist => Ty::Picklist,
            FieldKind::MultiPicklist => Ty::MultiPicklist,
            k => Ty::from_formula_type(k.formula_type()),
        };
        let idx = self.field_index(resolved.canonical);
        let zero = ty == Ty::Number && self.opts.treat_blanks_as_zero;
        Ok((Node::Field { idx, zero }, ty))
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        l: &Expr,
        r: &Expr,
        pos: usize,
    ) -> Result<Typed, FormulaError> {
        let (ln, lt) = self.expr(l)?;
        let (rn, rt) = self.expr(r)?;
        let mismatch = |c: &Self| {
            c.err(
                pos,
                ErrorKind::Type,
                format!(
                    "operator '{}' cannot be applied to {} and {}",
                    op.symbol(),
                    lt.name(),
                    rt.name()
                ),
            )
        };
        let p = u32::try_from(pos).unwrap_or(u32::MAX);
        let arith = |op: Arith, l: Node, r: Node| Node::Arith {
            op,
            l: Box::new(l),
            r: Box::new(r),
            pos: p,
        };
        use Ty::*;
        match op {
            BinaryOp::Add => {
                // A NULL operand takes the type that makes the sum meaningful.
                let (lt2, rt2) = match (lt, rt) {
                    (Any, Any) => (Number, Number),
                    (Any, Text) | (Text, Any) => (Text, Text),
                    (Any, t) => (Number, t),
                    (t, Any) => (t, Number),
                    other => other,
                };
                match (lt2, rt2) {
                    (Number, Number) => Ok((arith(Arith::Add, ln, rn), Number)),
                    (Text, Text) => Ok((arith(Arith::Concat, ln, rn), Text)),
                    (Date, Number) => Ok((arith(Arith::DatePlus, ln, rn), Date)),
                    (Number, Date) => Ok((arith(Arith::DatePlus, rn, ln), Date)),
                    (Datetime, Number) => Ok((arith(Arith::DtPlus, ln, rn), Datetime)),
                    (Number, Datetime) => Ok((arith(Arith::DtPlus, rn, ln), Datetime)),
                    (Time, Number) => Ok((arith(Arith::TimePlus, ln, rn), Time)),
                    (Number, Time) => Ok((arith(Arith::TimePlus, rn, ln), Time)),
                    _ => Err(mismatch(self)),
                }
            }
            BinaryOp::Sub => {
                let (lt2, rt2) = match (lt, rt) {
                    (Any, Any) => (Number, Number),
                    (Any, t) => (t, t),
                    (t, Any) => (t, Number),
                    other => other,
                };
                match (lt2, rt2) {
                    (Number, Number) => Ok((arith(Arith::Sub, ln, rn), Number)),
                    (Date, Number) => Ok((arith(Arith::DateMinus, ln, rn), Date)),
                    (Date, Date) => Ok((arith(Arith::DateDiff, ln, rn), Number)),
                    (Datetime, Number) => Ok((arith(Arith::DtMinus, ln, rn), Datetime)),
                    (Datetime, Datetime) => Ok((arith(Arith::DtDiff, ln, rn), Number)),
                    (Time, Number) => Ok((arith(Arith::TimeMinus, ln, rn), Time)),
                    (Time, Time) => Ok((arith(Arith::TimeDiff, ln, rn), Number)),
                    _ => Err(mismatch(self)),
                }
            }
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Pow => {
                if !accepts('N', lt) || !accepts('N', rt) {
                    return Err(mismatch(self));
                }
                let a = match op {
                    BinaryOp::Mul => Arith::Mul,
                    BinaryOp::Div => Arith::Div,
                    _ => Arith::Pow,
                };
                Ok((arith(a, ln, rn), Number))
            }
            BinaryOp::Concat => {
                if !accepts('T', lt) || !accepts('T', rt) {
                    return Err(mismatch(self));
                }
                Ok((arith(Arith::Concat, ln, rn), Text))
            }
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Gt
            | BinaryOp::Le
            | BinaryOp::Ge => {
                let Some(t) = unify(lt, rt) else {
                    return Err(mismatch(self));
                };
                let ordering = !matches!(op, BinaryOp::Eq | BinaryOp::Ne);
                if ordering && t == Boolean {
                    return Err(mismatch(self));
                }
                let c = match op {
                    BinaryOp::Eq => Cmp::Eq,
                    BinaryOp::Ne => Cmp::Ne,
                    BinaryOp::Lt => Cmp::Lt,
                    BinaryOp::Gt => Cmp::Gt,
                    BinaryOp::Le => Cmp::Le,
                    _ => Cmp::Ge,
                };
                Ok((
                    Node::Cmp {
                        op: c,
                        text: t == Text,
                        l: Box::new(ln),
                        r: Box::new(rn),
                    },
                    Boolean,
                ))
            }
            BinaryOp::And | BinaryOp::Or => {
                if !accepts('B', lt) || !accepts('B', rt) {
                    return Err(mismatch(self));
                }
                let v = vec![ln, rn];
                Ok((
                    if op == BinaryOp::And {
                        Node::And(v)
                    } else {
                        Node::Or(v)
                    },
                    Boolean,
                ))
            }
        }
    }

    fn type_error(&self, func: Func, i: usize, want: &str, got: Ty, pos: usize) -> FormulaError {
        let (_, pname) = func.param(i);
        self.err(
            pos,
            ErrorKind::Type,
            format!(
                "{}: argument {} ({pname}) must be {want}, found {}",
                func.name(),
                i + 1,
                got.name()
            ),
        )
    }

    /// Checks argument `i` of `func` against signature code `code`.
    fn arg(
        &mut self,
        func: Func,
        args: &[Expr],
        i: usize,
        code: char,
    ) -> Result<Typed, FormulaError> {
        let Some(e) = args.get(i) else {
            return Err(self.err(
                0,
                ErrorKind::Arity,
                format!("{}: missing argument {}", func.name(), i + 1),
            ));
        };
        let (n, t) = self.expr(e)?;
        if !accepts(code, t) {
            return Err(self.type_error(func, i, code_name(code), t, e.start()));
        }
        Ok((n, t))
    }

    fn arg_pos(args: &[Expr], i: usize, fallback: usize) -> usize {
        args.get(i).map(Expr::start).unwrap_or(fallback)
    }

    /// A direct field reference (not a global), for ISCHANGED/PRIORVALUE.
    fn field_arg(
        &mut self,
        func: Func,
        args: &[Expr],
        pos: usize,
    ) -> Result<(usize, Ty), FormulaError> {
        let e = args.first();
        match e.map(|e| &e.kind) {
            Some(ExprKind::Field(path)) if !path.first().is_some_and(|p| p.starts_with('$')) => {
                let epos = Self::arg_pos(args, 0, pos);
                self.count(epos)?;
                let (node, ty) = self.field(path, epos)?;
                match node {
                    Node::Field { idx, .. } => Ok((idx, ty)),
                    _ => Err(self.err(
                        epos,
                        ErrorKind::Type,
                        format!("{}: argument 1 (field) must be a field", func.name()),
                    )),
                }
            }
            _ => Err(self.err(
                Self::arg_pos(args, 0, pos),
                ErrorKind::Type,
                format!(
                    "{}: argument 1 (field) must be a field reference",
                    func.name()
                ),
            )),
        }
    }

    /// `HYPERLINK(url, IMAGE(…)[, target])`: the image tag is the link's
    /// content as it is (an image link, as Salesforce renders it), not text
    /// to escape.
    fn hyperlink_image(&mut self, args: &[Expr], p: u32) -> Result<Option<Node>, FormulaError> {
        let is_image = args.get(1).is_some_and(
            |a| matches!(&a.kind, ExprKind::Call(n, _) if n.eq_ignore_ascii_case("IMAGE")),
        );
        if !is_image {
            return Ok(None);
        }
        let encode = |arg: Node| Node::Call {
            func: Func::HtmlEncode,
            args: vec![arg],
            pos: p,
            re: None,
        };
        let text = |s: &str| Node::Const(FValue::Text(s.to_string()));
        let (url, _) = self.arg(Func::Hyperlink, args, 0, 'T')?;
        let (image, _) = self.arg(Func::Hyperlink, args, 1, 'T')?;
        let mut parts = vec![text("<a href=\""), encode(url), text("\"")];
        if args.len() > 2 {
            let (target, _) = self.arg(Func::Hyperlink, args, 2, 'T')?;
            parts.extend([text(" target=\""), encode(target), text("\"")]);
        }
        parts.extend([text(">"), image, text("</a>")]);
        Ok(Some(Node::Call {
            func: Func::Concat,
            args: parts,
            pos: p,
            re: None,
        }))
    }

    /// DISTANCE(location1, location2, unit), lowered to a call on the four
    /// coordinates and the unit. Each location is `GEOLOCATION(lat, lon)` or
    /// a geolocation field (read through its `__Latitude__s` /
    /// `__Longitude__s` parts); the unit is the literal `'mi'` or `'km'`.
    fn distance(&mut self, args: &[Expr], p: u32, pos: usize) -> Result<Typed, FormulaError> {
        let mut coords = Vec::with_capacity(5);
        for (i, e) in args.iter().take(2).enumerate() {
            let [lat, lon] = self.location(e, i)?;
            coords.push(lat);
            coords.push(lon);
        }
        let unit = match args.get(2).map(|e| &e.kind) {
            Some(ExprKind::Text(u))
                if u.eq_ignore_ascii_case("mi") || u.eq_ignore_ascii_case("km") =>
            {
                u.to_ascii_lowercase()
            }
            _ => {
                return Err(self.err(
                    Self::arg_pos(args, 2, pos),
                    ErrorKind::Type,
                    "DISTANCE: argument 3 (unit) must be the text 'mi' or 'km'",
                ))
            }
        };
        coords.push(Node::Const(FValue::Text(unit)));
        Ok((
            Node::Call {
                func: Func::Distance,
                args: coords,
                pos: p,
                re: None,
            },
            Ty::Number,
        ))
    }

    /// One location argument of DISTANCE as its latitude and longitude nodes.
    fn location(&mut self, e: &Expr, i: usize) -> Result<[Node; 2], FormulaError> {
        match &e.kind {
            ExprKind::Call(name, inner) if name.eq_ignore_ascii_case("GEOLOCATION") => {
                if inner.len() != 2 {
                    return Err(self.err(
                        e.pos,
                        ErrorKind::Arity,
                        format!("GEOLOCATION: expects 2 arguments, found {}", inner.len()),
                    ));
                }
                self.count(e.pos)?;
                let (lat, _) = self.arg(Func::Geolocation, inner, 0, 'N')?;
                let (lon, _) = self.arg(Func::Geolocation, inner, 1, 'N')?;
                Ok([lat, lon])
            }
            ExprKind::Field(path) if !path.first().is_some_and(|f| f.starts_with('$')) => {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                let is_location = self
                    .schema
                    .resolve(&refs)
                    .is_some_and(|r| r.kind == FieldKind::Location);
                if !is_location {
                    return Err(self.not_a_location(e, i));
                }
                let Some((last, hops)) = path.split_last() else {
                    return Err(self.not_a_location(e, i));
                };
                let base = last
                    .strip_suffix("__c")
                    .or_else(|| last.strip_suffix("__C"))
                    .unwrap_or(last);
                let mut parts = Vec::with_capacity(2);
                for part in ["Latitude", "Longitude"] {
                    let mut sub: Vec<String> = hops.to_vec();
                    sub.push(format!("{base}__{part}__s"));
                    let (node, ty) = self.field(&sub, e.pos)?;
                    if ty != Ty::Number {
                        return Err(self.not_a_location(e, i));
                    }
                    parts.push(node);
                }
                let lon = parts.pop();
                let lat = parts.pop();
                match (lat, lon) {
                    (Some(lat), Some(lon)) => Ok([lat, lon]),
                    _ => Err(self.not_a_location(e, i)),
                }
            }
            _ => Err(self.not_a_location(e, i)),
        }
    }

    fn not_a_location(&self, e: &Expr, i: usize) -> FormulaError {
        self.err(
            e.start(),
            ErrorKind::Type,
            format!(
                "DISTANCE: argument {} (location{}) must be a geolocation field or GEOLOCATION(latitude, longitude)",
                i + 1,
                i + 1
            ),
        )
    }

    fn call(&mut self, name: &str, args: &[Expr], pos: usize) -> Result<Typed, FormulaError> {
        let Some(func) = Func::lookup(name) else {
            return Err(self.err(
                pos,
                ErrorKind::UnknownFunction,
                format!("unknown function {name}"),
            ));
        };
        let (min, max) = func.arity();
        let n = args.len();
        if n < min || n > max {
            let expected = if min == max {
                format!("{min} argument{}", if min == 1 { "" } else { "s" })
            } else if max >= 65_535 {
                format!("at least {min} argument{}", if min == 1 { "" } else { "s" })
            } else {
                format!("{min} to {max} arguments")
            };
            return Err(self.err(
                pos,
                ErrorKind::Arity,
                format!("{}: expects {expected}, found {n}", func.name()),
            ));
        }
        let p = u32::try_from(pos).unwrap_or(u32::MAX);
        let call = |args: Vec<Node>| Node::Call {
            func,
            args,
            pos: p,
            re: None,
        };
        use Ty::*;
        if func == Func::Geolocation {
            return Err(self.err(
                pos,
                ErrorKind::Type,
                "GEOLOCATION can only be used as an argument of DISTANCE",
            ));
        }
        if func == Func::Distance {
            return self.distance(args, p, pos);
        }
        if func == Func::Hyperlink {
            if let Some(link) = self.hyperlink_image(args, p)? {
                return Ok((link, Text));
            }
        }
        match func {
            Func::If => {
                let (c, _) = self.arg(func, args, 0, 'B')?;
                let (a, at) = self.arg(func, args, 1, 'a')?;
                let (b, bt) = self.arg(func, args, 2, 'a')?;
                let Some(t) = unify(at, bt) else {
                    return Err(self.type_error(
                        func,
                        2,
                        at.name(),
                        bt,
                        Self::arg_pos(args, 2, pos),
                    ));
                };
                Ok((Node::If(Box::new((c, a, b))), t))
            }
            Func::Case => {
                if n & 1 == 1 {
                    return Err(self.err(
                        pos,
                        ErrorKind::Arity,
                        format!("CASE: expects an even number of arguments (expression, value/result pairs, else result), found {n}"),
                    ));
                }
                let subject_expr = args.first();
                let (subject, st) = match subject_expr {
                    Some(e) => self.expr_any(e)?,
                    None => {
                        return Err(self.err(pos, ErrorKind::Arity, "CASE: missing expression"))
                    }
                };
                if st == MultiPicklist {
                    return Err(self.type_error(
                        func,
                        0,
                        "a single value",
                        st,
                        Self::arg_pos(args, 0, pos),
                    ));
                }
                let st = if st == Picklist { Text } else { st };
                let mut arms = Vec::new();
                let mut rt = Any;
                let mut i = 1;
                while i + 1 < n {
                    let (v, vt) = self.arg(func, args, i, 'a')?;
                    if unify(st, vt).is_none() {
                        return Err(self.type_error(
                            func,
                            i,
                            st.name(),
                            vt,
                            Self::arg_pos(args, i, pos),
                        ));
                    }
                    let (r, t) = self.arg(func, args, i + 1, 'a')?;
                    rt = unify(rt, t).ok_or_else(|| {
                        self.type_error(func, i + 1, rt.name(), t, Self::arg_pos(args, i + 1, pos))
                    })?;
                    arms.push((v, r));
                    i += 2;
                }
                let (d, dt) = self.arg(func, args, n - 1, 'a')?;
                rt = unify(rt, dt).ok_or_else(|| {
                    self.type_error(func, n - 1, rt.name(), dt, Self::arg_pos(args, n - 1, pos))
                })?;
                Ok((
                    Node::Case {
                        subject: Box::new(subject),
                        text: st == Text,
                        arms,
                        default: Box::new(d),
                    },
                    rt,
                ))
            }
            Func::And | Func::Or => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.arg(func, args, i, 'B')?.0);
                }
                Ok((
                    if func == Func::And {
                        Node::And(v)
                    } else {
                        Node::Or(v)
                    },
                    Boolean,
                ))
            }
            Func::Not => {
                let (a, _) = self.arg(func, args, 0, 'B')?;
                Ok((Node::Not(Box::new(a)), Boolean))
            }
            Func::IsBlank | Func::IsNull => {
                let e = args
                    .first()
                    .ok_or_else(|| self.err(pos, ErrorKind::Arity, "missing argument"))?;
                let (a, t) = self.expr_any(e)?;
                if func == Func::IsNull && matches!(t, Text | Picklist | MultiPicklist) {
                    // Salesforce: text is never null, so ISNULL of text is FALSE.
                    return Ok((Node::Const(FValue::Boolean(false)), Boolean));
                }
                Ok((call(vec![a]), Boolean))
            }
            Func::BlankValue | Func::NullValue => {
                let (a, at) = self.arg(func, args, 0, 'a')?;
                let (b, bt) = self.arg(func, args, 1, 'a')?;
                let Some(t) = unify(at, bt) else {
                    return Err(self.type_error(
                        func,
                        1,
                        at.name(),
                        bt,
                        Self::arg_pos(args, 1, pos),
                    ));
                };
                if func == Func::NullValue && t == Text && at != Any {
                    // Text is never null: NULLVALUE returns it unchanged.
                    return Ok((a, Text));
                }
                Ok((call(vec![a, b]), t))
            }
            Func::Coalesce | Func::Max | Func::Min => {
                let code = if func == Func::Coalesce { 'a' } else { 'n' };
                let mut v = Vec::with_capacity(n);
                let mut t = Any;
                for i in 0..n {
                    let (a, at) = self.arg(func, args, i, code)?;
                    t = unify(t, at).ok_or_else(|| {
                        self.type_error(func, i, t.name(), at, Self::arg_pos(args, i, pos))
                    })?;
                    v.push(a);
                }
                if t == Any && func != Func::Coalesce {
                    t = Number;
                }
                Ok((call(v), t))
            }
            Func::IsPickval | Func::Includes => {
                let want = if func == Func::IsPickval {
                    Picklist
                } else {
                    MultiPicklist
                };
                let e = args
                    .first()
                    .ok_or_else(|| self.err(pos, ErrorKind::Arity, "missing argument"))?;
                let (a, t) = self.expr_any(e)?;
                if t != want {
                    let what = if want == Picklist {
                        "a picklist field"
                    } else {
                        "a multi-select picklist field"
                    };
                    return Err(self.type_error(func, 0, what, t, e.start()));
                }
                let (b, _) = self.arg(func, args, 1, 'T')?;
                Ok((call(vec![a, b]), Boolean))
            }
            Func::IsChanged => {
                let (idx, _) = self.field_arg(func, args, pos)?;
                Ok((Node::IsChanged(idx), Boolean))
            }
            Func::PriorValue => {
                let (idx, t) = self.field_arg(func, args, pos)?;
                let zero = t == Number && self.opts.treat_blanks_as_zero;
                Ok((Node::Prior { idx, zero }, t))
            }
            Func::Text => {
                let e = args
                    .first()
                    .ok_or_else(|| self.err(pos, ErrorKind::Arity, "missing argument"))?;
                let (a, t) = self.expr_any(e)?;
                if t == MultiPicklist {
                    return Err(self.type_error(func, 0, "a single value", t, e.start()));
                }
                Ok((call(vec![a]), Text))
            }
            Func::FormatDuration => {
                let (a, at) = self.arg(func, args, 0, 'n')?;
                if n == 1 {
                    if !accepts('N', at) {
                        return Err(self.type_error(
                            func,
                            0,
                            "Number",
                            at,
                            Self::arg_pos(args, 0, pos),
                        ));
                    }
                    return Ok((call(vec![a]), Text));
                }
                let second = match at {
                    Number => 'B',
                    Datetime => 'Z',
                    Time => 'M',
                    Any => 'a',
                    _ => {
                        return Err(self.type_error(
                            func,
                            0,
                            "Number, Datetime or Time",
                            at,
                            Self::arg_pos(args, 0, pos),
                        ))
                    }
                };
                let (b, _) = self.arg(func, args, 1, second)?;
                Ok((call(vec![a, b]), Text))
            }
            _ => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    let (code, _) = func.param(i);
                    v.push(self.arg(func, args, i, code)?.0);
                }
                Ok((call(v), code_type(func.ret_code())))
            }
        }
    }
}
