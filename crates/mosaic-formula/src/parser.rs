//! Pratt parser: tokens to [`Expr`], with byte-precise error positions and a
//! bound on both recursion and tree depth.

use crate::ast::{BinaryOp, Expr, ExprKind, UnaryOp, UNARY_BP};
use crate::error::{ErrorKind, FormulaError};
use crate::lexer::{lex, Tok, Token};
use crate::limits::{MAX_ARGUMENTS, MAX_NESTING_DEPTH, MAX_SOURCE_LEN};

/// Parses a formula into a syntax tree.
pub fn parse(src: &str) -> Result<Expr, FormulaError> {
    let chars = src.chars().count();
    if chars > MAX_SOURCE_LEN {
        return Err(FormulaError::at(
            src,
            0,
            ErrorKind::LimitExceeded,
            format!("formula is {chars} characters long; the limit is {MAX_SOURCE_LEN}"),
        ));
    }
    let tokens = lex(src)?;
    let eof = Token {
        tok: Tok::Eof,
        pos: src.len(),
    };
    let mut p = Parser {
        src,
        tokens,
        at: 0,
        recursion: 0,
        eof,
    };
    let (expr, _) = p.expr(0)?;
    let t = p.peek().clone();
    if t.tok != Tok::Eof {
        let msg = if t.tok == Tok::RParen {
            "unexpected ')' without a matching '('".to_string()
        } else {
            format!(
                "unexpected {} after a complete expression",
                t.tok.describe()
            )
        };
        return Err(p.error(t.pos, ErrorKind::Syntax, msg));
    }
    Ok(expr)
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    at: usize,
    recursion: usize,
    eof: Token,
}

/// An expression and the depth of its tree.
type Parsed = (Expr, usize);

impl<'s> Parser<'s> {
    fn peek(&self) -> &Token {
        self.tokens
            .get(self.at)
            .or_else(|| self.tokens.last())
            .unwrap_or(&self.eof)
    }

    fn peek_is(&self, tok: &Tok) -> bool {
        self.peek().tok == *tok
    }

    /// Consumes the current token, moving it out (the parser never looks
    /// back). The final `Eof` is never consumed.
    fn bump(&mut self) -> Token {
        let last = self.tokens.len().saturating_sub(1);
        if self.at < last {
            let placeholder = Token {
                tok: Tok::Eof,
                pos: 0,
            };
            let taken = self
                .tokens
                .get_mut(self.at)
                .map(|t| std::mem::replace(t, placeholder));
            self.at += 1;
            if let Some(t) = taken {
                return t;
            }
        }
        self.peek().clone()
    }

    fn error(&self, pos: usize, kind: ErrorKind, msg: impl Into<String>) -> FormulaError {
        FormulaError::at(self.src, pos, kind, msg)
    }

    fn check_depth(&self, depth: usize, pos: usize) -> Result<(), FormulaError> {
        if depth > MAX_NESTING_DEPTH {
            return Err(self.error(
                pos,
                ErrorKind::LimitExceeded,
                format!("formula is nested too deeply (limit {MAX_NESTING_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    fn expr(&mut self, min_bp: u8) -> Result<Parsed, FormulaError> {
        self.recursion += 1;
        let pos = self.peek().pos;
        self.check_depth(self.recursion, pos)?;
        let result = self.expr_inner(min_bp);
        self.recursion -= 1;
        result
    }

    fn expr_inner(&mut self, min_bp: u8) -> Result<Parsed, FormulaError> {
        let (mut lhs, mut depth) = self.prefix()?;
        loop {
            let t = self.peek();
            let op_pos = t.pos;
            let op = match t.tok {
                Tok::Plus => BinaryOp::Add,
                Tok::Minus => BinaryOp::Sub,
                Tok::Star => BinaryOp::Mul,
                Tok::Slash => BinaryOp::Div,
                Tok::Caret => BinaryOp::Pow,
                Tok::Amp => BinaryOp::Concat,
                Tok::Eq => BinaryOp::Eq,
                Tok::Ne => BinaryOp::Ne,
                Tok::Lt => BinaryOp::Lt,
                Tok::Gt => BinaryOp::Gt,
                Tok::Le => BinaryOp::Le,
                Tok::Ge => BinaryOp::Ge,
                Tok::AndAnd => BinaryOp::And,
                Tok::OrOr => BinaryOp::Or,
                _ => break,
            };
            if op.bp() < min_bp {
                break;
            }
            self.bump();
            let (rhs, rdepth) = self.expr(op.bp() + 1)?;
            depth = depth.max(rdepth) + 1;
            self.check_depth(depth, op_pos)?;
            lhs = Expr::new(ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), op_pos);
        }
        Ok((lhs, depth))
    }

    fn prefix(&mut self) -> Result<Parsed, FormulaError> {
        let t = self.bump();
        let leaf = |kind| Ok((Expr::new(kind, t.pos), 1));
        match t.tok {
            Tok::Number(n) => leaf(ExprKind::Number(n)),
            Tok::Str(s) => leaf(ExprKind::Text(s)),
            Tok::Minus | Tok::Bang => {
                let op = if t.tok == Tok::Minus {
                    UnaryOp::Neg
                } else {
                    UnaryOp::Not
                };
                let (inner, d) = self.expr(UNARY_BP + 1)?;
                Ok((
                    Expr::new(ExprKind::Unary(op, Box::new(inner)), t.pos),
                    d + 1,
                ))
            }
            Tok::Plus => Err(self.error(t.pos, ErrorKind::Syntax, "unary '+' is not supported")),
            Tok::LParen => {
                let (inner, d) = self.expr(0)?;
                let close = self.bump();
                if close.tok != Tok::RParen {
                    return Err(self.error(
                        close.pos,
                        ErrorKind::Syntax,
                        format!(
                            "expected ')' to close '(' at offset {}, found {}",
                            t.pos,
                            close.tok.describe()
                        ),
                    ));
                }
                Ok((inner, d))
            }
            Tok::Ident(name) => {
                if self.peek_is(&Tok::LParen) {
                    return self.call(name, t.pos);
                }
                for (keyword, kind) in [
                    ("TRUE", ExprKind::Boolean(true)),
                    ("FALSE", ExprKind::Boolean(false)),
                    ("NULL", ExprKind::Null),
                ] {
                    if name.eq_ignore_ascii_case(keyword) {
                        return leaf(kind);
                    }
                }
                let mut path = vec![name];
                while self.peek_is(&Tok::Dot) {
                    self.bump();
                    let seg = self.bump();
                    match seg.tok {
                        Tok::Ident(s) if !s.starts_with('$') => path.push(s),
                        other => {
                            return Err(self.error(
                                seg.pos,
                                ErrorKind::Syntax,
                                format!(
                                    "expected a field name after '.', found {}",
                                    other.describe()
                                ),
                            ))
                        }
                    }
                }
                leaf(ExprKind::Field(path))
            }
            Tok::RParen => Err(self.error(
                t.pos,
                ErrorKind::Syntax,
                "expected an expression, found ')'",
            )),
            Tok::Eof => Err(self.error(
                t.pos,
                ErrorKind::Syntax,
                "unexpected end of formula: expected an expression",
            )),
            other => Err(self.error(
                t.pos,
                ErrorKind::Syntax,
                format!("expected an expression, found {}", other.describe()),
            )),
        }
    }

    fn call(&mut self, mut name: String, pos: usize) -> Result<Parsed, FormulaError> {
        name.make_ascii_uppercase();
        self.bump(); // '('
        let mut args = Vec::new();
        let mut depth = 0;
        if self.peek_is(&Tok::RParen) {
            self.bump();
        } else {
            loop {
                let (arg, d) = self.expr(0)?;
                depth = depth.max(d);
                args.push(arg);
                if args.len() > MAX_ARGUMENTS {
                    return Err(self.error(
                        pos,
                        ErrorKind::LimitExceeded,
                        format!("{name}: more than {MAX_ARGUMENTS} arguments"),
                    ));
                }
                let t = self.bump();
                match t.tok {
                    Tok::Comma => continue,
                    Tok::RParen => break,
                    other => {
                        return Err(self.error(
                            t.pos,
                            ErrorKind::Syntax,
                            format!(
                                "expected ',' or ')' in call to {}, found {}",
                                name,
                                other.describe()
                            ),
                        ))
                    }
                }
            }
        }
        let depth = depth + 1;
        self.check_depth(depth, pos)?;
        Ok((Expr::new(ExprKind::Call(name, args), pos), depth))
    }
}
