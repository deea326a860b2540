//! Label and field selectors, as Kubernetes' `k8s.io/apimachinery/pkg/labels` and
//! `k8s.io/apimachinery/pkg/fields`.
//!
//! Both parse user input from query strings (`?labelSelector=`, `?fieldSelector=`), so every
//! parse path returns a [`SelectorError`] instead of panicking, with Kubernetes' wording.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;

/// A set of labels that selectors read: an object's `metadata.labels` map, or a compact form
/// of it (the API server's watch cache keeps one per object version).
pub trait Labels {
    /// The value of the label `key`, if the set has it.
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A set of labels sorted by key, in one boxed slice: for caches that keep one per object (a
/// million pods), where a `BTreeMap` costs a half-kilobyte node however few labels it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelList(Box<[(Box<str>, Box<str>)]>);

impl LabelList {
    /// The value of the label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// The labels, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&BTreeMap<String, String>> for LabelList {
    fn from(labels: &BTreeMap<String, String>) -> Self {
        LabelList(
            labels
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for LabelList {
    /// The labels given; of two with one key, the later.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(labels: I) -> Self {
        let labels: BTreeMap<String, String> = labels
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        LabelList::from(&labels)
    }
}

impl Labels for LabelList {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

/// Why a label or field selector could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector string is not well formed between requirements.
    #[error("{0}")]
    Syntax(String),
    /// One requirement of a label selector string could not be parsed or is invalid.
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// A requirement built from parts (the API `LabelSelector`, [`Requirement::new`]) is
    /// invalid: bad key, value, operator or number of values.
    #[error("{0}")]
    Invalid(String),
    /// A field selector term has no `=`, `==` or `!=` operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// The whole selector.
        selector: String,
        /// The term that could not be understood.
        term: String,
    },
    /// A field selector value has a backslash escape other than `\\`, `\,` or `\=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    FieldEscape(String),
    /// A field selector value has an unescaped `,` or `=`.
    #[error("invalid field selector: unescaped character in value: '{0}'")]
    FieldUnescaped(char),
}

// ---------------------------------------------------------------------------------------------
// Key and value validation (k8s.io/apimachinery/pkg/util/validation)
// ---------------------------------------------------------------------------------------------

const QUALIFIED_NAME_MAX_LEN: usize = 63;
const LABEL_VALUE_MAX_LEN: usize = 63;
const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
     and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric \
     characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// Kubernetes' `RegexError`: the message, examples and the regex used.
fn regex_error(msg: &str, regex: &str, examples: &[&str]) -> String {
    let mut out = String::from(msg);
    out.push_str(" (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(regex);
    out.push_str("')");
    out
}

fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, anchored.
fn is_qualified_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`, anchored.
fn is_dns1123_subdomain(s: &str) -> bool {
    let lower_alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    s.split('.').all(|label| {
        let bytes = label.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                lower_alnum(first)
                    && lower_alnum(last)
                    && bytes.iter().all(|b| lower_alnum(b) || *b == b'-')
            }
            _ => false,
        }
    })
}

/// Kubernetes' `IsQualifiedName`: the list of problems, empty when valid.
fn qualified_name_errors(key: &str) -> Vec<String> {
    let examples = ["MyName", "my.name", "123-abc"];
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > DNS1123_SUBDOMAIN_MAX_LEN {
                    errs.push(format!(
                        "prefix part {}",
                        max_len_error(DNS1123_SUBDOMAIN_MAX_LEN)
                    ));
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(
                            DNS1123_SUBDOMAIN_ERR,
                            DNS1123_SUBDOMAIN_FMT,
                            &["example.com"]
                        )
                    ));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' \
                 (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &examples)
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LEN {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LEN)
        ));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &examples)
        ));
    }
    errs
}

/// Kubernetes' `IsValidLabelValue`: the list of problems, empty when valid.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LEN {
        errs.push(max_len_error(LABEL_VALUE_MAX_LEN));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Checks a label (or annotation) key as Kubernetes does: an optional DNS-1123 subdomain
/// prefix of at most 253 characters and a `/`, then a name of at most 63 characters matching
/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`. The error is Kubernetes' message (several
/// problems joined by `"; "`), without the field path.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let errs = qualified_name_errors(key);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// Checks a label value as Kubernetes does: empty, or at most 63 characters matching
/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`. The error is Kubernetes' message (several
/// problems joined by `"; "`), without the field path.
pub fn validate_label_value(v: &str) -> Result<(), String> {
    let errs = label_value_errors(v);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

/// The operator of one label selector requirement (Kubernetes' `selection.Operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value`: the label is present with that value.
    Equals,
    /// `key==value`: same as [`Operator::Equals`].
    DoubleEquals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key in (a,b)`: the label is present with one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `key`: the label is present.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>n`: the label is present and its value is an integer greater than `n`.
    GreaterThan,
    /// `key<n`: the label is present and its value is an integer less than `n`.
    LessThan,
}

/// One term of a label selector: a key, an operator and (for some operators) values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
}

/// Joins field errors as Kubernetes' `ErrorList.ToAggregate` prints them.
fn aggregate(errs: Vec<String>) -> Option<String> {
    match errs.len() {
        0 => None,
        1 => errs.into_iter().next(),
        _ => Some(format!("[{}]", errs.join(", "))),
    }
}

fn format_values(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

impl Requirement {
    /// Builds and validates a requirement, as Kubernetes' `labels.NewRequirement`: the key must
    /// be a qualified name; `In`/`NotIn` need at least one value; `=`, `==`, `!=` exactly one;
    /// `Exists`/`DoesNotExist` none; `>`/`<` exactly one integer; every value must be a valid
    /// label value.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: impl IntoIterator<Item = String>,
    ) -> Result<Self, SelectorError> {
        let key = key.into();
        let values: Vec<String> = values.into_iter().collect();
        let mut errs = Vec::new();
        if let Err(msg) = validate_label_key(&key) {
            errs.push(format!("key: Invalid value: {key:?}: {msg}"));
        }
        let count_error = match operator {
            Operator::In | Operator::NotIn => values
                .is_empty()
                .then_some("for 'in', 'notin' operators, values set can't be empty"),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                (values.len() != 1).then_some("exact-match compatibility requires one single value")
            }
            Operator::Exists | Operator::DoesNotExist => (!values.is_empty())
                .then_some("values set must be empty for exists and does not exist"),
            Operator::GreaterThan | Operator::LessThan => (values.len() != 1)
                .then_some("for 'Gt', 'Lt' operators, exactly one value is required"),
        };
        if let Some(detail) = count_error {
            errs.push(format!(
                "values: Invalid value: {}: {detail}",
                format_values(&values)
            ));
        }
        if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(format!(
                        "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, \
                         the value must be an integer"
                    ));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            if let Err(msg) = validate_label_value(v) {
                errs.push(format!("values[{i}][{key}]: Invalid value: {v:?}: {msg}"));
            }
        }
        match aggregate(errs) {
            Some(msg) => Err(SelectorError::Invalid(msg)),
            None => Ok(Self {
                key,
                operator,
                values: values.into_iter().collect(),
            }),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted and without duplicates (empty for `Exists`/`DoesNotExist`).
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(String::as_str)
    }

    /// Whether a set of labels satisfies this requirement (Kubernetes' `Requirement.Matches`).
    pub fn matches(&self, labels: &impl Labels) -> bool {
        let value = labels.label(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(have)) = value.map(|v| v.parse::<i64>()) else {
                    return false;
                };
                let mut wanted = self.values.iter();
                let (Some(want), None) = (wanted.next(), wanted.next()) else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Kubernetes' canonical form: `!k`, `k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k>1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        f.write_str(&self.values().collect::<Vec<_>>().join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: requirements that must all hold. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Sorted by key, as Kubernetes keeps them.
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the query-string form, as Kubernetes' `labels.Parse`: comma-separated
    /// requirements `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a` (exists), `!a`
    /// (does not exist), `a>1` / `a<1` (integers); whitespace between tokens is ignored. The
    /// empty string matches everything. Keys and values are validated like Kubernetes'.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser {
            tokens: lex(s),
            position: 0,
        };
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Converts the API type (`matchLabels` and `matchExpressions` with operators `In`,
    /// `NotIn`, `Exists`, `DoesNotExist`), as Kubernetes' `metav1.LabelSelectorAsSelector`.
    /// An empty API selector matches everything (a missing one is the caller's business: for
    /// most uses it matches nothing). An unknown operator, `In`/`NotIn` without values or
    /// `Exists` with values are errors.
    pub fn from_api(sel: &metav1::LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::new(
                key.as_str(),
                Operator::Equals,
                [value.clone()],
            )?);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::Invalid(format!(
                        "{other:?} is not a valid label selector operator"
                    )));
                }
            };
            requirements.push(Requirement::new(
                expr.key.as_str(),
                operator,
                expr.values.iter().flatten().cloned(),
            )?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Builds a selector from requirements (kept sorted by key).
    pub fn from_requirements(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        let mut requirements: Vec<Requirement> = requirements.into_iter().collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self { requirements }
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &impl Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The value a label must have if the selector pins it with `=`, `==` or a one-value
    /// `in` (Kubernetes' `RequiresExactMatch`), for index lookups.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        self.requirements.iter().find_map(|r| {
            let exact = matches!(
                r.operator,
                Operator::Equals | Operator::DoubleEquals | Operator::In
            );
            if r.key != key || !exact || r.values.len() != 1 {
                return None;
            }
            r.values.iter().next().map(String::as_str)
        })
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical query-string form (requirements joined by `,`), which parses back to an
    /// equal selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Tokens of the label selector language (Kubernetes' `labels.Token`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// Where the parser is: keywords (`in`, `notin`) are only keywords before an operator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// Splits a selector into tokens, each with its literal text; always ends with `EndOfString`.
fn lex(s: &str) -> Vec<(Token, String)> {
    let mut tokens = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| is_whitespace(*c)).is_some() {}
        let Some(c) = chars.next() else {
            tokens.push((Token::EndOfString, String::new()));
            return tokens;
        };
        if is_special(c) {
            let two = match (c, chars.peek()) {
                ('!', Some('=')) => Some((Token::NotEquals, "!=")),
                ('=', Some('=')) => Some((Token::DoubleEquals, "==")),
                _ => None,
            };
            if let Some((token, literal)) = two {
                chars.next();
                tokens.push((token, literal.to_string()));
                continue;
            }
            let token = match c {
                '=' => Token::Equals,
                '!' => Token::DoesNotExist,
                '(' => Token::OpenPar,
                ')' => Token::ClosedPar,
                ',' => Token::Comma,
                '>' => Token::GreaterThan,
                _ => Token::LessThan,
            };
            tokens.push((token, c.to_string()));
            continue;
        }
        let mut literal = String::from(c);
        while let Some(c) = chars.next_if(|c| !is_whitespace(*c) && !is_special(*c)) {
            literal.push(c);
        }
        let token = match literal.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier,
        };
        tokens.push((token, literal));
    }
}

/// Recursive-descent parser over the tokens, as Kubernetes' `labels.Parser`.
struct Parser {
    tokens: Vec<(Token, String)>,
    position: usize,
}

fn unexpected(found: &str, expected: &str) -> String {
    format!("found '{found}', expected: {expected}")
}

impl Parser {
    fn token_at(&self, position: usize, context: Context) -> (Token, String) {
        let (token, literal) = self
            .tokens
            .get(position)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        let token = match token {
            Token::In | Token::NotIn if context == Context::Values => Token::Identifier,
            other => other,
        };
        (token, literal)
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        self.token_at(self.position, context)
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let item = self.token_at(self.position, context);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let requirement = self
                        .parse_requirement()
                        .map_err(SelectorError::Requirement)?;
                    requirements.push(requirement);
                    let (token, literal) = self.consume(Context::Values);
                    match token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (next, next_literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(SelectorError::Syntax(unexpected(
                                    &next_literal,
                                    "identifier after ','",
                                )));
                            }
                        }
                        _ => {
                            return Err(SelectorError::Syntax(unexpected(
                                &literal,
                                "',' or 'end of string'",
                            )));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(SelectorError::Syntax(unexpected(
                        &literal,
                        "!, identifier, or 'end of string'",
                    )));
                }
            }
        }
    }

    /// One requirement; the error is the detail after "unable to parse requirement: ".
    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(operator) = inferred {
            return Requirement::new(key, operator, []).map_err(|e| e.to_string());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(key, operator, values).map_err(|e| e.to_string())
    }

    /// The key, and `Exists`/`DoesNotExist` when no binary operator follows.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let (mut token, mut literal) = self.consume(Context::Values);
        let mut operator = None;
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(unexpected(&literal, "identifier"));
        }
        if let Err(msg) = validate_label_key(&literal) {
            return Err(format!("key: Invalid value: {literal:?}: {msg}"));
        }
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::EndOfString | Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return Err(unexpected(&literal, "in, notin, =, ==, !=, gt, lt")),
        })
    }

    /// `(a,b,...)` after `in`/`notin`; `()` is the set holding the empty value.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let (token, literal) = self.consume(Context::Values);
                if token != Token::ClosedPar {
                    return Err(unexpected(&literal, "')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(unexpected(&literal, "',', ')' or identifier")),
        }
    }

    /// The comma-separated values inside parentheses; empty entries (`(a,,b)`, `(,a)`) are the
    /// empty value, as in Kubernetes. Leaves the closing parenthesis unconsumed.
    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.push(literal);
                    let (next, next_literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(unexpected(&next_literal, "',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        values.push(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        self.consume(Context::Values);
                        values.push(String::new());
                    }
                }
                _ => return Err(unexpected(&literal, "',', or identifier")),
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>`, `<`; nothing before `,` or the end is
    /// the empty value.
    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (token, _) = self.lookahead(Context::Values);
        if matches!(token, Token::EndOfString | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(vec![literal])
        } else {
            Err(unexpected(&literal, "identifier"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------

/// The operator of a field selector term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a field selector: `field=value` or `field!=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field path, e.g. `metadata.name` or `spec.nodeName`.
    pub field: String,
    /// Equality or inequality.
    pub operator: FieldOperator,
    /// The value, unescaped.
    pub value: String,
}

impl FieldRequirement {
    /// Whether an object's value for the field (absent = empty string) satisfies the term.
    pub fn matches(&self, actual: Option<&str>) -> bool {
        let actual = actual.unwrap_or("");
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_field_value(&self.value))
    }
}

/// A field selector: terms that must all hold. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// Sorted by their canonical form (as printed), so that a selector printed and parsed
    /// again is equal. Kubernetes sorts the source terms, which orders the same except where
    /// a term is written another way than it prints (`a==b`, escapes).
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses `metadata.name=web,status.phase!=Running`, as Kubernetes' `fields.ParseSelector`:
    /// terms split on unescaped commas, each split at its first `!=`, `==` or `=`; values may
    /// escape `\,`, `\=` and `\\` (any other escape, or a bare `,`/`=` in a value, is an error).
    /// Empty terms are ignored; the empty string matches everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut terms = split_terms(s);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, raw)) = split_term(term) else {
                return Err(SelectorError::FieldTerm {
                    selector: s.to_string(),
                    term: term.to_string(),
                });
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value: unescape_field_value(raw)?,
            });
        }
        requirements.sort_by_cached_key(FieldRequirement::to_string);
        Ok(Self { requirements })
    }

    /// The field paths used, so the API server can reject fields a resource does not support.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| r.field.as_str())
    }

    /// Whether an object matches; `get(field)` returns the object's value for a field path
    /// (`None` = absent, which Kubernetes treats as the empty string).
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(get(&r.field).as_deref()))
    }

    /// Whether the selector has no terms (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The terms.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value a field must equal if the selector pins it with `=` (Kubernetes'
    /// `RequiresExactMatch`), e.g. `spec.nodeName` for a kubelet's watch, for index lookups.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical form (terms joined by `,`, values escaped), which parses back to an equal
    /// selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits on commas not preceded by a backslash escape; escapes are kept in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator; `!=` and `==` win over `=` at the same position.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::Equals),
        ("=", FieldOperator::Equals),
    ];
    term.char_indices().find_map(|(i, _)| {
        let rest = &term[i..];
        OPERATORS.iter().find_map(|(op, operator)| {
            rest.strip_prefix(op)
                .map(|value| (&term[..i], *operator, value))
        })
    })
}

/// Kubernetes' `fields.UnescapeValue`.
fn unescape_field_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => return Err(SelectorError::FieldEscape(format!("\\{c}"))),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(SelectorError::FieldUnescaped(c)),
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError::FieldEscape("\\".to_string()));
    }
    Ok(out)
}

/// Kubernetes' `fields.EscapeValue`: the inverse of [`FieldSelector::parse`]'s unescaping.
pub fn escape_field_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_list_is_sorted_keeps_the_later_of_two_values_and_is_read_by_selectors() {
        let labels: LabelList = [("tier", "front"), ("app", "old"), ("app", "web")]
            .into_iter()
            .collect();
        assert_eq!(
            labels.iter().collect::<Vec<_>>(),
            [("app", "web"), ("tier", "front")]
        );
        assert_eq!(labels.get("tier"), Some("front"));
        assert_eq!(labels.get("zone"), None);
        assert!(LabelList::default().is_empty());
        let map: BTreeMap<String, String> = [("app".to_string(), "web".to_string())]
            .into_iter()
            .collect();
        for (selector, matches) in [
            ("app=web", true),
            ("app in (web),!zone", true),
            ("tier", true),
            ("app!=web", false),
        ] {
            let selector: LabelSelector = selector.parse().expect("selector");
            assert_eq!(selector.matches(&labels), matches, "{selector}");
        }
        let selector: LabelSelector = "app=web".parse().expect("selector");
        assert!(selector.matches(&map));
        assert!(selector.matches(&LabelList::from(&map)));
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> LabelSelector {
        match LabelSelector::parse(s) {
            Ok(sel) => sel,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("{s:?} should not parse, got {sel:?}"),
            Err(e) => e.to_string(),
        }
    }

    // --- key and value validation ---

    #[test]
    fn label_keys_follow_qualified_name_rules() {
        let longest_name = "x".repeat(63);
        let longest_prefix = format!("{}/n", "a".repeat(253));
        for good in [
            "a",
            "app",
            "App_1.x-y",
            "example.com/name",
            "kubernetes.io/hostname",
            "node-role.kubernetes.io/control-plane",
            "a/b",
            longest_name.as_str(),
            longest_prefix.as_str(),
        ] {
            assert_eq!(validate_label_key(good), Ok(()), "{good}");
        }
        let too_long_name = "x".repeat(64);
        let too_long_prefix = format!("{}/n", "a".repeat(254));
        for bad in [
            "",
            "-a",
            "a-",
            "a b",
            "a/b/c",
            "/a",
            "a/",
            "Example.com/a",
            "exa_mple.com/a",
            "ex..com/a",
            too_long_name.as_str(),
            too_long_prefix.as_str(),
            "ünïcode",
        ] {
            assert!(
                validate_label_key(bad).is_err(),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn label_key_messages_use_kubernetes_wording() {
        assert_eq!(
            validate_label_key("a b").unwrap_err(),
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
             start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
             '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert_eq!(
            validate_label_key("/a").unwrap_err(),
            "prefix part must be non-empty"
        );
        let long = validate_label_key(&"x".repeat(64)).unwrap_err();
        assert_eq!(long, "name part must be no more than 63 characters");
        let empty = validate_label_key("").unwrap_err();
        assert!(
            empty.starts_with("name part must be non-empty; name part must consist of"),
            "{empty}"
        );
        let prefix = validate_label_key("Bad.com/a").unwrap_err();
        assert!(
            prefix.starts_with("prefix part a lowercase RFC 1123 subdomain must consist of"),
            "{prefix}"
        );
        let slashes = validate_label_key("a/b/c").unwrap_err();
        assert!(
            slashes.starts_with("a qualified name must consist of")
                && slashes.ends_with(
                    "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
                ),
            "{slashes}"
        );
    }

    #[test]
    fn label_values_follow_kubernetes_rules() {
        let longest = "x".repeat(63);
        for good in ["", "a", "v1.2.3", "My_Value-1", longest.as_str()] {
            assert_eq!(validate_label_value(good), Ok(()), "{good:?}");
        }
        let too_long = "x".repeat(64);
        for bad in ["-a", "a-", "a b", "a/b", "é", too_long.as_str()] {
            assert!(
                validate_label_value(bad).is_err(),
                "{bad:?} should be invalid"
            );
        }
        assert_eq!(
            validate_label_value("a b").unwrap_err(),
            "a valid label must be an empty string or consist of alphanumeric characters, '-', \
             '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  \
             or 'my_value',  or '12345', regex used for validation is \
             '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert_eq!(
            validate_label_value(&format!("-{}", "x".repeat(63)))
                .unwrap_err()
                .split("; ")
                .count(),
            2,
            "too long and malformed are both reported"
        );
    }

    // --- label selector parsing and matching ---

    #[test]
    fn empty_selector_matches_everything() {
        for s in ["", "   ", "\t\n"] {
            let selector = sel(s);
            assert!(selector.is_empty());
            assert!(selector.matches(&labels(&[])));
            assert!(selector.matches(&labels(&[("a", "b")])));
        }
        assert!(LabelSelector::everything().matches(&labels(&[("x", "y")])));
    }

    #[test]
    fn equality_operators() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(sel("app=web").matches(&l));
        assert!(sel("app==web").matches(&l));
        assert!(!sel("app=db").matches(&l));
        assert!(!sel("app!=web").matches(&l));
        assert!(sel("app!=db").matches(&l));
        assert!(sel("missing!=x").matches(&l), "!= matches a missing label");
        assert!(!sel("missing=x").matches(&l));
        assert!(sel("app=web,tier=front").matches(&l));
        assert!(!sel("app=web,tier=back").matches(&l));
    }

    #[test]
    fn empty_value_after_equals() {
        let selector = sel("a=,b=x");
        assert!(selector.matches(&labels(&[("a", ""), ("b", "x")])));
        assert!(
            !selector.matches(&labels(&[("b", "x")])),
            "a must be present"
        );
        assert!(sel("a!=").matches(&labels(&[("a", "x")])));
    }

    #[test]
    fn set_operators() {
        let l = labels(&[("env", "prod")]);
        assert!(sel("env in (prod,staging)").matches(&l));
        assert!(sel("env in (prod)").matches(&l));
        assert!(!sel("env in (dev,staging)").matches(&l));
        assert!(!sel("missing in (a)").matches(&l));
        assert!(sel("env notin (dev)").matches(&l));
        assert!(!sel("env notin (dev,prod)").matches(&l));
        assert!(
            sel("missing notin (a)").matches(&l),
            "notin matches a missing label"
        );
    }

    #[test]
    fn set_values_allow_empty_entries_like_kubernetes() {
        assert_eq!(
            sel("a in ()").requirements()[0]
                .values()
                .collect::<Vec<_>>(),
            [""]
        );
        assert_eq!(
            sel("a in (,x)").requirements()[0]
                .values()
                .collect::<Vec<_>>(),
            ["", "x"]
        );
        assert_eq!(
            sel("a in (x,)").requirements()[0]
                .values()
                .collect::<Vec<_>>(),
            ["", "x"]
        );
        assert_eq!(
            sel("a in (x,,y)").requirements()[0]
                .values()
                .collect::<Vec<_>>(),
            ["", "x", "y"]
        );
        assert!(sel("a in ()").matches(&labels(&[("a", "")])));
    }

    #[test]
    fn keywords_are_values_inside_parentheses_and_keys_at_start() {
        assert!(sel("a in (in,notin)").matches(&labels(&[("a", "notin")])));
        assert!(sel("in=notin").matches(&labels(&[("in", "notin")])));
        assert!(sel("in").matches(&labels(&[("in", "x")])));
    }

    #[test]
    fn existence_operators() {
        let l = labels(&[("gpu", "")]);
        assert!(sel("gpu").matches(&l));
        assert!(!sel("!gpu").matches(&l));
        assert!(sel("!ssd").matches(&l));
        assert!(!sel("ssd").matches(&l));
        assert!(sel("gpu,!ssd").matches(&l));
        assert!(sel(" ! ssd ").matches(&l), "whitespace after ! is fine");
    }

    #[test]
    fn numeric_comparisons() {
        let l = labels(&[("replicas", "5"), ("name", "x")]);
        assert!(sel("replicas>4").matches(&l));
        assert!(!sel("replicas>5").matches(&l));
        assert!(sel("replicas<6").matches(&l));
        assert!(!sel("replicas<5").matches(&l));
        assert!(!sel("missing>1").matches(&l), "Gt needs the label");
        assert!(
            !sel("name>1").matches(&l),
            "a non-integer label never matches"
        );
        assert!(
            err("replicas>-1").contains("a valid label must be"),
            "a negative bound is not a valid label value"
        );
        assert_eq!(
            err("replicas>abc"),
            "unable to parse requirement: values[0]: Invalid value: \"abc\": for 'Gt', 'Lt' \
             operators, the value must be an integer"
        );
        assert!(
            sel("replicas>4").matches(&labels(&[("replicas", "05")])),
            "label values parse as base-10 integers"
        );
    }

    #[test]
    fn whitespace_is_tolerated_between_tokens() {
        let selector = sel("  app = web ,  env in ( prod , dev ) , !legacy  ");
        assert_eq!(selector.requirements().len(), 3);
        assert!(selector.matches(&labels(&[("app", "web"), ("env", "dev")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("env", "dev"), ("legacy", "1")])));
    }

    #[test]
    fn prefixed_keys_parse() {
        let selector = sel("app.kubernetes.io/name=web,!node-role.kubernetes.io/control-plane");
        assert!(selector.matches(&labels(&[("app.kubernetes.io/name", "web")])));
    }

    #[test]
    fn requirements_are_sorted_by_key_and_display_round_trips() {
        let selector = sel("z=1,a in (y,x),!m,k,n!=2,g>3,h<4,b==c");
        let keys: Vec<&str> = selector
            .requirements()
            .iter()
            .map(Requirement::key)
            .collect();
        assert_eq!(keys, ["a", "b", "g", "h", "k", "m", "n", "z"]);
        let text = selector.to_string();
        assert_eq!(text, "a in (x,y),b==c,g>3,h<4,k,!m,n!=2,z=1");
        assert_eq!(sel(&text), selector);
    }

    #[test]
    fn syntax_errors_use_kubernetes_messages() {
        assert_eq!(err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(
            err(",a"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(err("a=b)"), "found ')', expected: ',' or 'end of string'");
        assert_eq!(
            err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            err("!a=b"),
            "found '=', expected: ',' or 'end of string'",
            "!key takes no value"
        );
        assert_eq!(
            err("a in x"),
            "unable to parse requirement: found 'x' expected: '('"
        );
        assert_eq!(
            err("a in"),
            "unable to parse requirement: found '' expected: '('"
        );
        assert_eq!(
            err("a in (x"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            err("a in (x y)"),
            "unable to parse requirement: found 'y', expected: ',' or ')'"
        );
        assert_eq!(
            err("a in (="),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            err("a in (x,=)"),
            "unable to parse requirement: found '=', expected: ',', or identifier"
        );
        assert_eq!(
            err("a=(b)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            err("a==="),
            "unable to parse requirement: found '=', expected: identifier"
        );
        assert!(err("a<=1").starts_with("unable to parse requirement: found '='"));
    }

    #[test]
    fn invalid_keys_and_values_are_rejected() {
        let bad_key = err("a$b$c=d");
        assert!(
            bad_key.starts_with(
                "unable to parse requirement: key: Invalid value: \"a$b$c\": name part"
            ),
            "{bad_key}"
        );
        let bad_value = err("app=we$b");
        assert!(
            bad_value.starts_with(
                "unable to parse requirement: values[0][app]: Invalid value: \"we$b\": a valid label"
            ),
            "{bad_value}"
        );
        assert!(
            err(&format!("a={}", "x".repeat(64))).contains("must be no more than 63 characters")
        );
        assert!(err("a in (ok,-bad)").contains("values[1][a]: Invalid value: \"-bad\""));
    }

    #[test]
    fn parse_never_panics_on_odd_input() {
        let inputs = [
            "(",
            ")",
            "!",
            "!!",
            "!=",
            "==",
            "=",
            ",",
            ",,",
            "a,,b",
            "a in ((",
            "a in (,",
            "a in (,,",
            "a in (,)",
            "a notin",
            "a notin (",
            "a>",
            "a<",
            "a>>1",
            "\\",
            "a=b\\,c",
            "\u{0}",
            "a=\u{0}",
            "é=é",
            "a in (x,y",
            "!a b",
            "in in in",
            "notin (",
            "a=b=c",
            "()",
            "a !",
        ];
        for s in inputs {
            let _ = LabelSelector::parse(s);
        }
        // Exhaustive short strings over the selector alphabet.
        let alphabet = ['a', '=', '!', '(', ')', ',', ' ', '<', '>', '1'];
        let mut buf = String::new();
        fn walk(buf: &mut String, depth: usize, alphabet: &[char]) {
            let _ = LabelSelector::parse(buf);
            let _ = FieldSelector::parse(buf);
            if depth == 0 {
                return;
            }
            for c in alphabet {
                buf.push(*c);
                walk(buf, depth - 1, alphabet);
                buf.pop();
            }
        }
        walk(&mut buf, 4, &alphabet);
    }

    #[test]
    fn exact_match_lookup() {
        let selector = sel("app=web,env in (prod),tier in (a,b),x!=y");
        assert_eq!(selector.requires_exact_match("app"), Some("web"));
        assert_eq!(selector.requires_exact_match("env"), Some("prod"));
        assert_eq!(selector.requires_exact_match("tier"), None);
        assert_eq!(selector.requires_exact_match("x"), None);
        assert_eq!(selector.requires_exact_match("nope"), None);
    }

    // --- API LabelSelector ---

    fn api(
        match_labels: &[(&str, &str)],
        exprs: &[(&str, &str, Option<&[&str]>)],
    ) -> metav1::LabelSelector {
        metav1::LabelSelector {
            match_labels: if match_labels.is_empty() {
                None
            } else {
                Some(labels(match_labels))
            },
            match_expressions: if exprs.is_empty() {
                None
            } else {
                Some(
                    exprs
                        .iter()
                        .map(|(k, op, vals)| metav1::LabelSelectorRequirement {
                            key: k.to_string(),
                            operator: op.to_string(),
                            values: vals.map(|v| v.iter().map(|s| s.to_string()).collect()),
                        })
                        .collect(),
                )
            },
        }
    }

    #[test]
    fn api_selector_empty_matches_everything() {
        let selector = LabelSelector::from_api(&metav1::LabelSelector::default()).unwrap();
        assert!(selector.is_empty());
        assert!(selector.matches(&labels(&[("a", "b")])));
        let explicit_empty = metav1::LabelSelector {
            match_labels: Some(BTreeMap::new()),
            match_expressions: Some(Vec::new()),
        };
        assert!(LabelSelector::from_api(&explicit_empty).unwrap().is_empty());
    }

    #[test]
    fn api_selector_match_labels_and_expressions() {
        let selector = LabelSelector::from_api(&api(
            &[("app", "web")],
            &[
                ("env", "In", Some(&["prod", "staging"])),
                ("tier", "NotIn", Some(&["db"])),
                ("gpu", "Exists", None),
                ("legacy", "DoesNotExist", Some(&[])),
            ],
        ))
        .unwrap();
        assert_eq!(selector.requirements().len(), 5);
        assert!(selector.matches(&labels(&[("app", "web"), ("env", "prod"), ("gpu", "1")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!selector.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("gpu", "1"),
            ("tier", "db")
        ])));
        assert_eq!(
            selector.to_string(),
            "app=web,env in (prod,staging),gpu,!legacy,tier notin (db)"
        );
    }

    #[test]
    fn api_selector_errors() {
        let bad_op = LabelSelector::from_api(&api(&[], &[("a", "Gt", Some(&["1"]))])).unwrap_err();
        assert_eq!(
            bad_op.to_string(),
            "\"Gt\" is not a valid label selector operator"
        );
        let empty_in = LabelSelector::from_api(&api(&[], &[("a", "In", None)])).unwrap_err();
        assert_eq!(
            empty_in.to_string(),
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
        );
        let exists_values =
            LabelSelector::from_api(&api(&[], &[("a", "Exists", Some(&["x"]))])).unwrap_err();
        assert!(
            exists_values
                .to_string()
                .contains("values set must be empty")
        );
        let bad_label_value = LabelSelector::from_api(&api(&[("a", "b c")], &[])).unwrap_err();
        assert!(
            bad_label_value
                .to_string()
                .starts_with("values[0][a]: Invalid value: \"b c\"")
        );
        let both = LabelSelector::from_api(&api(&[], &[("-k", "NotIn", Some(&[]))])).unwrap_err();
        let text = both.to_string();
        assert!(
            text.starts_with("[key: Invalid value: \"-k\"") && text.contains(", values: "),
            "{text}"
        );
    }

    #[test]
    fn requirement_new_validates_counts() {
        assert!(Requirement::new("a", Operator::Equals, Vec::<String>::new()).is_err());
        assert!(Requirement::new("a", Operator::Equals, ["x".into(), "y".into()]).is_err());
        assert!(Requirement::new("a", Operator::GreaterThan, ["1".into(), "2".into()]).is_err());
        assert!(Requirement::new("a", Operator::Exists, Vec::<String>::new()).is_ok());
        let r = Requirement::new("a", Operator::In, ["y".into(), "x".into(), "y".into()]).unwrap();
        assert_eq!(r.values().collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(r.to_string(), "a in (x,y)");
        let selector = LabelSelector::from_requirements([
            Requirement::new("z", Operator::Exists, Vec::<String>::new()).unwrap(),
            r,
        ]);
        assert_eq!(selector.to_string(), "a in (x,y),z");
    }

    // --- field selectors ---

    fn fields_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = labels(pairs);
        move |f: &str| map.get(f).cloned()
    }

    #[test]
    fn field_selector_basic_matching() {
        let selector = FieldSelector::parse("metadata.name=web,status.phase!=Running").unwrap();
        assert_eq!(
            selector.fields().collect::<Vec<_>>(),
            ["metadata.name", "status.phase"]
        );
        assert!(selector.matches(fields_of(&[
            ("metadata.name", "web"),
            ("status.phase", "Pending")
        ])));
        assert!(!selector.matches(fields_of(&[
            ("metadata.name", "web"),
            ("status.phase", "Running")
        ])));
        assert!(!selector.matches(fields_of(&[("metadata.name", "db")])));
        assert!(
            selector.matches(fields_of(&[("metadata.name", "web")])),
            "absent status.phase is the empty string, which is != Running"
        );
    }

    #[test]
    fn field_selector_double_equals_and_empty_values() {
        let selector = FieldSelector::parse("spec.nodeName==").unwrap();
        assert!(
            selector.matches(fields_of(&[])),
            "unscheduled pods: missing == empty"
        );
        assert!(selector.matches(fields_of(&[("spec.nodeName", "")])));
        assert!(!selector.matches(fields_of(&[("spec.nodeName", "n1")])));
        let not_empty = FieldSelector::parse("spec.nodeName!=").unwrap();
        assert!(not_empty.matches(fields_of(&[("spec.nodeName", "n1")])));
        assert_eq!(
            FieldSelector::parse("spec.nodeName=node-1")
                .unwrap()
                .requires_exact_match("spec.nodeName"),
            Some("node-1")
        );
    }

    #[test]
    fn field_selector_empty_matches_everything() {
        for s in ["", ",", ",,"] {
            let selector = FieldSelector::parse(s).unwrap();
            assert!(selector.is_empty(), "{s:?}");
            assert!(selector.matches(fields_of(&[("a", "b")])));
        }
    }

    #[test]
    fn field_selector_escapes() {
        let selector = FieldSelector::parse(r"metadata.name=a\,b\=c\\d,x=y").unwrap();
        assert_eq!(selector.requirements()[0].value, r"a,b=c\d");
        assert_eq!(selector.requirements()[1].value, "y");
        assert!(selector.matches(fields_of(&[("metadata.name", r"a,b=c\d"), ("x", "y")])));
        assert_eq!(selector.to_string(), r"metadata.name=a\,b\=c\\d,x=y");
        assert_eq!(
            FieldSelector::parse(&selector.to_string()).unwrap(),
            selector
        );
        assert_eq!(escape_field_value(r"a,b=c\"), r"a\,b\=c\\");
    }

    #[test]
    fn field_selector_errors() {
        assert_eq!(
            FieldSelector::parse("metadata.name")
                .unwrap_err()
                .to_string(),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err().to_string(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\").unwrap_err().to_string(),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err(),
            SelectorError::FieldUnescaped('=')
        );
        assert_eq!(
            FieldSelector::parse("a!=b=c").unwrap_err(),
            SelectorError::FieldUnescaped('=')
        );
    }

    #[test]
    fn field_selector_operator_precedence() {
        let first = |s: &str| FieldSelector::parse(s).unwrap().requirements()[0].clone();
        let term = |field: &str, operator, value: &str| FieldRequirement {
            field: field.to_string(),
            operator,
            value: value.to_string(),
        };
        assert_eq!(first("a!=b"), term("a", FieldOperator::NotEquals, "b"));
        assert_eq!(first("a==b"), term("a", FieldOperator::Equals, "b"));
        // The field may be empty (rejected later as an unsupported field, as Kubernetes does).
        assert_eq!(first("=x"), term("", FieldOperator::Equals, "x"));
        // A `!` not followed by `=` belongs to the field name.
        assert_eq!(first("a!b=c"), term("a!b", FieldOperator::Equals, "c"));
    }

    #[test]
    fn field_selector_terms_are_sorted_like_kubernetes() {
        let selector = FieldSelector::parse("status.phase=Running,metadata.name=web").unwrap();
        assert_eq!(
            selector.to_string(),
            "metadata.name=web,status.phase=Running"
        );
        let selector = FieldSelector::parse("spec.nodeName==n1").unwrap();
        assert_eq!(selector.to_string(), "spec.nodeName=n1");
    }

    /// Found by the `field_selector` fuzz target: `x==b` sorts before `x=a` as written but
    /// after it as printed, so the printed selector parsed to its terms in another order.
    #[test]
    fn a_printed_field_selector_parses_to_an_equal_one() {
        for text in ["x==b,x=a", "met==a\\\\,met=\\\\", "a=\\=,a=\\,"] {
            let selector = FieldSelector::parse(text).unwrap();
            let printed = selector.to_string();
            assert_eq!(
                FieldSelector::parse(&printed).unwrap(),
                selector,
                "{text:?} printed as {printed:?}"
            );
        }
    }

    #[test]
    fn field_selector_unicode_is_safe() {
        let selector = FieldSelector::parse("métadata.nämé=wéb,ü!=ö").unwrap();
        assert!(selector.matches(fields_of(&[("métadata.nämé", "wéb")])));
        assert!(FieldSelector::parse("é\\").is_err());
    }
}
