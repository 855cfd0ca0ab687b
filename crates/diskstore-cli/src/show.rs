//! Showing values to a person, and reading keys and values typed on the command line.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::ValueEnum;
use diskstore::{ColumnType, KeyRef, Value, ValueRef};

/// How bytes are shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BytesAs {
    /// Hexadecimal, as `x'00ff'`.
    #[default]
    Hex,
    /// Standard base64, as `b64'AP8='`.
    Base64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One value for a person: text in double quotes with escapes, numbers as numbers
/// (reals always with a point or exponent), `NULL`, bytes as `x'…'` or `b64'…'`.
/// With `max` set, long text and bytes are cut to about that many characters.
pub fn human(v: ValueRef<'_>, bytes: BytesAs, max: Option<usize>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(s) => {
            let quoted = format!("{s:?}");
            match max {
                Some(m) if quoted.chars().count() > m => {
                    let cut: String = quoted.chars().take(m).collect();
                    format!("{cut}…\" ({} chars)", s.chars().count())
                }
                _ => quoted,
            }
        }
        ValueRef::Blob(b) => {
            let (prefix, body) = match bytes {
                BytesAs::Hex => ("x", hex(b)),
                BytesAs::Base64 => ("b64", B64.encode(b)),
            };
            match max {
                Some(m) if body.len() > m => {
                    format!("{prefix}'{}…' ({} bytes)", &body[..m], b.len())
                }
                _ => format!("{prefix}'{body}'"),
            }
        }
    }
}

/// How a key or value typed on the command line is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Given {
    /// By the column's declared type: INTEGER → integer, REAL → real, TEXT/BLOB → text.
    #[default]
    Auto,
    /// Text as typed.
    Text,
    /// A 64-bit integer.
    Int,
    /// A float (`inf`, `-inf` allowed).
    Float,
    /// Bytes written in hexadecimal.
    Hex,
    /// Bytes written in base64.
    Base64,
    /// Typed JSON as in a dump (`"text"`, `1`, `1.5`, `null`, `{"b64": "…"}`).
    Json,
}

/// Reads `text` as a value of a column declared `column`.
pub fn parse_given(text: &str, given: Given, column: ColumnType) -> Result<Value, String> {
    let given = match (given, column) {
        (Given::Auto, ColumnType::Integer) => Given::Int,
        (Given::Auto, ColumnType::Real) => Given::Float,
        (Given::Auto, _) => Given::Text,
        (g, _) => g,
    };
    match given {
        Given::Auto | Given::Text => Ok(Value::Text(text.to_owned())),
        Given::Int => text.trim().parse().map(Value::Integer).map_err(|_| {
            format!("{text:?} is not a 64-bit integer (the column is {column}; --key-type/--value-type choose another reading)")
        }),
        Given::Float => match text.trim() {
            "inf" | "+inf" => Ok(Value::Real(f64::INFINITY)),
            "-inf" => Ok(Value::Real(f64::NEG_INFINITY)),
            t => t
                .parse::<f64>()
                .ok()
                .filter(|f| !f.is_nan())
                .map(Value::Real)
                .ok_or_else(|| format!("{text:?} is not a number")),
        },
        Given::Hex => crate::typed::decode(&serde_json::json!({ "hex": text })),
        Given::Base64 => B64
            .decode(text)
            .map(Value::Blob)
            .map_err(|e| format!("{text:?} is not base64: {e}")),
        Given::Json => crate::typed::parse(text),
    }
}

/// A value as a key, or why it cannot be one.
pub fn as_key(v: &Value) -> Result<KeyRef<'_>, String> {
    match v {
        Value::Integer(i) => Ok(KeyRef::Int(*i)),
        Value::Real(f) if f.is_nan() => Err("NaN cannot be a key".into()),
        Value::Real(f) => Ok(KeyRef::Float(*f)),
        Value::Text(s) => Ok(KeyRef::Text(s)),
        Value::Blob(b) => Ok(KeyRef::Blob(b)),
        Value::Null => Err("NULL cannot be a key".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shown_unambiguously() {
        let h = |v| human(v, BytesAs::Hex, None);
        assert_eq!(h(ValueRef::Integer(1)), "1");
        assert_eq!(h(ValueRef::Real(1.0)), "1.0");
        assert_eq!(h(ValueRef::Text("1\n")), "\"1\\n\"");
        assert_eq!(h(ValueRef::Blob(&[0, 255])), "x'00ff'");
        assert_eq!(h(ValueRef::Null), "NULL");
        assert_eq!(
            human(ValueRef::Blob(&[0, 255]), BytesAs::Base64, None),
            "b64'AP8='"
        );
        assert_eq!(
            human(ValueRef::Blob(&[1; 10]), BytesAs::Hex, Some(4)),
            "x'0101…' (10 bytes)"
        );
    }

    #[test]
    fn command_line_values_follow_the_column_type() {
        assert_eq!(
            parse_given("42", Given::Auto, ColumnType::Integer),
            Ok(Value::Integer(42))
        );
        assert_eq!(
            parse_given("42", Given::Auto, ColumnType::Blob),
            Ok(Value::Text("42".into()))
        );
        assert_eq!(
            parse_given("-inf", Given::Auto, ColumnType::Real),
            Ok(Value::Real(f64::NEG_INFINITY))
        );
        assert!(parse_given("x", Given::Auto, ColumnType::Integer).is_err());
        assert_eq!(
            parse_given("00ff", Given::Hex, ColumnType::Text),
            Ok(Value::Blob(vec![0, 255]))
        );
        assert_eq!(
            parse_given(r#"{"b64":"AP8="}"#, Given::Json, ColumnType::Text),
            Ok(Value::Blob(vec![0, 255]))
        );
    }
}
