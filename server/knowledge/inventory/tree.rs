//! A TOML document as a tree that remembers where every key and value sits in the file.
//!
//! Strict inventory parsing walks this tree by hand instead of letting serde stop at the first
//! problem: that way every unknown field, bad value and impossible shape is reported in one go,
//! each with the line it is on.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// One TOML value with its byte span in the source text.
#[derive(Debug, Clone)]
pub struct Node {
    pub span: Range<usize>,
    pub value: Value,
}

/// The value part of a [`Node`]. Tables keep their keys in file order, each with its own span.
#[derive(Debug, Clone)]
pub enum Value {
    String(String),
    Integer(i64),
    Float,
    Boolean(bool),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

/// A key of a table, where the key is written, and its value.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_span: Range<usize>,
    pub node: Node,
}

impl Value {
    /// The TOML type name, for "expected a string, found an integer" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// Why the text is not TOML an inventory can use: toml's message and where it points.
#[derive(Debug)]
pub struct SyntaxError {
    pub span: Option<Range<usize>>,
    pub message: String,
}

/// Parses `text` into a spanned tree. Syntax errors keep toml's message and span.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    match toml::from_str::<Spanned<RawValue>>(text) {
        Ok(root) => Ok(node(root)),
        // toml passes date-times through serde as a table with a private key, which a spanned
        // key cannot hold; no inventory field is a date-time, so say that plainly.
        Err(e) if e.message().contains(DATETIME_KEY) => Err(SyntaxError {
            span: e.span(),
            message: "a date-time is not a value any inventory field takes".into(),
        }),
        Err(e) => Err(SyntaxError {
            span: e.span(),
            message: format!("not valid TOML: {}", e.message().trim()),
        }),
    }
}

/// Converts a byte offset into a 1-based line number.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Deserialization target that mirrors any TOML value, with spans on every child.
struct RawValue(Value);

/// The key toml uses to smuggle date-times through serde.
const DATETIME_KEY: &str = "$__toml_private_datetime";

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

fn node(s: Spanned<RawValue>) -> Node {
    let span = s.span();
    Node {
        span,
        value: s.into_inner().0,
    }
}

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any TOML value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue(Value::String(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawValue, E> {
        Ok(RawValue(Value::String(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue(Value::Integer(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
        i64::try_from(v)
            .map(|v| RawValue(Value::Integer(v)))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawValue, E> {
        Ok(RawValue(Value::Float))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawValue, E> {
        Ok(RawValue(Value::Boolean(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawValue>>()? {
            items.push(node(item));
        }
        Ok(RawValue(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value: Spanned<RawValue> = map.next_value()?;
            let key_span = key.span();
            entries.push(Entry {
                key: key.into_inner(),
                key_span,
                node: node(value),
            });
        }
        Ok(RawValue(Value::Table(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: &Node) -> &[Entry] {
        match &n.value {
            Value::Table(t) => t,
            other => panic!("expected a table, got {other:?}"),
        }
    }

    #[test]
    fn keys_and_array_tables_know_their_lines() {
        let text =
            "name = \"x\"\n\n[[servers]]\nname = \"a\"\n\n[[servers]]\nname = \"b\"\nsize = 1.5\n";
        let root = parse(text).expect("valid toml");
        let top = table(&root);
        assert_eq!(top[0].key, "name");
        assert_eq!(line_of(text, top[0].key_span.start), 1);
        let Value::Array(servers) = &top[1].node.value else {
            panic!("servers is an array")
        };
        let second = table(&servers[1]);
        assert_eq!(line_of(text, second[0].key_span.start), 7);
        assert!(matches!(second[1].node.value, Value::Float));
        assert!(line_of(text, servers[1].span.start) <= 7);
    }

    #[test]
    fn syntax_errors_keep_a_span() {
        let err = parse("name = \n").expect_err("missing value");
        assert!(err.span.is_some());
    }

    #[test]
    fn date_times_are_refused_in_plain_words() {
        let err = parse("when = 1979-05-27\n").expect_err("no date-times");
        assert!(err.message.contains("date-time"), "{}", err.message);
    }
}
