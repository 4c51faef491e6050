//! The subset of TaskRouter's expression language the simulator routes with: queue target
//! expressions (against worker attributes) and workflow filter expressions (against task
//! attributes).
//!
//! Supported: `==`/`=`, `!=`, `<`, `<=`, `>`, `>=`, `HAS`, `IN`, `NOT IN`, `CONTAINS`, `AND`/`&&`,
//! `OR`/`||`, `NOT`/`!`, parentheses, string/number/boolean literals, `[..]` lists and dotted
//! attribute paths. Keywords are case-insensitive; a missing attribute makes its comparison false.

use serde_json::Value;

/// A parsed expression, ready to evaluate many times.
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    Literal(Value),
    Attribute(Vec<String>),
    List(Vec<Expression>),
    Not(Box<Expression>),
    And(Box<Expression>, Box<Expression>),
    Or(Box<Expression>, Box<Expression>),
    Compare(Box<Expression>, Operator, Box<Expression>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Has,
    In,
    NotIn,
    Contains,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Op(Operator),
    And,
    Or,
    Not,
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
}

/// Parses `source`.
///
/// # Errors
/// A message naming what could not be read.
pub fn parse(source: &str) -> Result<Expression, String> {
    let tokens = tokenize(source)?;
    let mut parser = Parser { tokens, position: 0 };
    let expression = parser.or()?;
    if parser.position != parser.tokens.len() {
        return Err(format!("unexpected {:?} in expression {source:?}", parser.tokens[parser.position]));
    }
    Ok(expression)
}

/// Parses and evaluates in one go; an unreadable expression matches nothing.
pub fn matches(source: &str, attributes: &Value) -> bool {
    parse(source).map(|e| e.matches(attributes)).unwrap_or(false)
}

fn tokenize(source: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => push(&mut tokens, &mut i, Token::Open, 1),
            ')' => push(&mut tokens, &mut i, Token::Close, 1),
            '[' => push(&mut tokens, &mut i, Token::OpenList, 1),
            ']' => push(&mut tokens, &mut i, Token::CloseList, 1),
            ',' => push(&mut tokens, &mut i, Token::Comma, 1),
            '=' if next == Some('=') => push(&mut tokens, &mut i, Token::Op(Operator::Eq), 2),
            '=' => push(&mut tokens, &mut i, Token::Op(Operator::Eq), 1),
            '!' if next == Some('=') => push(&mut tokens, &mut i, Token::Op(Operator::Ne), 2),
            '!' => push(&mut tokens, &mut i, Token::Not, 1),
            '<' if next == Some('=') => push(&mut tokens, &mut i, Token::Op(Operator::Le), 2),
            '<' => push(&mut tokens, &mut i, Token::Op(Operator::Lt), 1),
            '>' if next == Some('=') => push(&mut tokens, &mut i, Token::Op(Operator::Ge), 2),
            '>' => push(&mut tokens, &mut i, Token::Op(Operator::Gt), 1),
            '&' if next == Some('&') => push(&mut tokens, &mut i, Token::And, 2),
            '|' if next == Some('|') => push(&mut tokens, &mut i, Token::Or, 2),
            '"' | '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|ch| *ch == c)
                    .ok_or_else(|| format!("unterminated string in {source:?}"))?;
                tokens.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                tokens.push(Token::Num(text.parse().map_err(|_| format!("bad number {text:?}"))?));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-')) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                tokens.push(match word.to_ascii_uppercase().as_str() {
                    "AND" => Token::And,
                    "OR" => Token::Or,
                    "NOT" => Token::Not,
                    "HAS" => Token::Op(Operator::Has),
                    "IN" => Token::Op(Operator::In),
                    "CONTAINS" => Token::Op(Operator::Contains),
                    _ => Token::Ident(word),
                });
            }
            other => return Err(format!("unexpected character {other:?} in {source:?}")),
        }
    }
    Ok(tokens)
}

fn push(tokens: &mut Vec<Token>, i: &mut usize, token: Token, width: usize) {
    tokens.push(token);
    *i += width;
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn or(&mut self) -> Result<Expression, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.position += 1;
            left = Expression::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expression, String> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.position += 1;
            left = Expression::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expression, String> {
        if self.peek() == Some(&Token::Not) {
            self.position += 1;
            return Ok(Expression::Not(Box::new(self.unary()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expression, String> {
        let left = self.operand()?;
        let operator = match self.peek() {
            Some(Token::Op(op)) => *op,
            // `NOT IN` is the one two-word operator.
            Some(Token::Not) if self.tokens.get(self.position + 1) == Some(&Token::Op(Operator::In)) => {
                self.position += 1;
                Operator::NotIn
            }
            _ => return Ok(left),
        };
        self.position += 1;
        let right = self.operand()?;
        Ok(Expression::Compare(Box::new(left), operator, Box::new(right)))
    }

    fn operand(&mut self) -> Result<Expression, String> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    other => Err(format!("expected ')', found {other:?}")),
                }
            }
            Some(Token::OpenList) => {
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        Some(Token::CloseList) => {
                            self.position += 1;
                            return Ok(Expression::List(items));
                        }
                        Some(Token::Comma) => self.position += 1,
                        Some(_) => items.push(self.operand()?),
                        None => return Err("unterminated list".into()),
                    }
                }
            }
            Some(Token::Str(s)) => Ok(Expression::Literal(Value::String(s))),
            Some(Token::Num(n)) => Ok(Expression::Literal(serde_json::json!(n))),
            Some(Token::Ident(word)) => Ok(match word.to_ascii_lowercase().as_str() {
                "true" => Expression::Literal(Value::Bool(true)),
                "false" => Expression::Literal(Value::Bool(false)),
                "null" => Expression::Literal(Value::Null),
                _ => Expression::Attribute(word.split('.').map(str::to_string).collect()),
            }),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }
}

impl Expression {
    /// Whether `attributes` (a JSON object) satisfies the expression.
    pub fn matches(&self, attributes: &Value) -> bool {
        match self {
            Expression::Not(inner) => !inner.matches(attributes),
            Expression::And(a, b) => a.matches(attributes) && b.matches(attributes),
            Expression::Or(a, b) => a.matches(attributes) || b.matches(attributes),
            Expression::Compare(left, op, right) => {
                match (left.value(attributes), right.value(attributes)) {
                    (Some(l), Some(r)) => compare(&l, *op, &r),
                    // A missing attribute is never equal to anything, so `!=` holds.
                    _ => *op == Operator::Ne || *op == Operator::NotIn,
                }
            }
            other => other.value(attributes).is_some_and(|v| truthy(&v)),
        }
    }

    fn value(&self, attributes: &Value) -> Option<Value> {
        match self {
            Expression::Literal(v) => Some(v.clone()),
            Expression::Attribute(path) => {
                let mut current = attributes;
                for part in path {
                    current = current.get(part)?;
                }
                Some(current.clone())
            }
            Expression::List(items) => {
                Some(Value::Array(items.iter().filter_map(|item| item.value(attributes)).collect()))
            }
            other => Some(Value::Bool(other.matches(attributes))),
        }
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn compare(left: &Value, op: Operator, right: &Value) -> bool {
    let ordering = || match (left.as_f64(), right.as_f64()) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (left.as_str(), right.as_str()) {
            (Some(x), Some(y)) => Some(x.cmp(y)),
            _ => None,
        },
    };
    let within = |needle: &Value, haystack: &Value| match haystack {
        Value::Array(items) => items.iter().any(|item| equal(item, needle)),
        other => equal(other, needle),
    };
    match op {
        Operator::Eq => equal(left, right),
        Operator::Ne => !equal(left, right),
        Operator::Lt => ordering().is_some_and(|o| o.is_lt()),
        Operator::Le => ordering().is_some_and(|o| o.is_le()),
        Operator::Gt => ordering().is_some_and(|o| o.is_gt()),
        Operator::Ge => ordering().is_some_and(|o| o.is_ge()),
        Operator::Has => within(right, left),
        Operator::In => within(left, right),
        Operator::NotIn => !within(left, right),
        Operator::Contains => match (left, right.as_str()) {
            (Value::String(s), Some(needle)) => s.contains(needle),
            _ => within(right, left),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(expression: &str, attributes: Value) -> bool {
        parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}")).matches(&attributes)
    }

    #[test]
    fn list_membership_with_has_and_in() {
        let worker = json!({"languages": ["en", "es"], "skill": ["support"], "level": 3});
        assert!(check(r#"languages HAS "es""#, worker.clone()));
        assert!(check(r#"languages has 'en'"#, worker.clone()));
        assert!(!check(r#"languages HAS "fr""#, worker.clone()));
        assert!(check(r#"skill has "support""#, worker.clone()));
        assert!(check(r#""es" IN languages"#, worker.clone()));
        assert!(check(r#"level IN [1, 2, 3]"#, worker.clone()));
        assert!(check(r#"level not in [1, 2]"#, worker));
    }

    #[test]
    fn equality_comparisons_and_logic() {
        let task = json!({"selected_language": "es", "priority_level": 7, "customer": {"tier": "gold"}});
        assert!(check(r#"selected_language == "es""#, task.clone()));
        assert!(check(r#"selected_language = "es" and priority_level > 5"#, task.clone()));
        assert!(check(r#"selected_language == "en" OR customer.tier == "gold""#, task.clone()));
        assert!(!check(r#"selected_language == "en" && customer.tier == "gold""#, task.clone()));
        assert!(check(r#"NOT (selected_language == "en")"#, task.clone()));
        assert!(check(r#"priority_level >= 7 AND priority_level < 8"#, task.clone()));
        assert!(check(r#"selected_language != "fr""#, task.clone()));
        assert!(check(r#"missing != "x""#, task.clone()));
        assert!(!check(r#"missing == "x""#, task));
    }

    #[test]
    fn constant_expressions() {
        assert!(check("1==1", json!({})));
        assert!(check("1 == 1", json!({})));
        assert!(!check("1==2", json!({})));
        assert!(check("true", json!({})));
    }

    #[test]
    fn unreadable_expressions_match_nothing() {
        assert!(parse(r#"languages HAS "es"#).is_err());
        assert!(!matches("languages HAS (", &json!({"languages": ["es"]})));
    }
}
