//! PostgreSQL details: our dynamic values as statement parameters and from result rows,
//! column types, placeholder translation and the mapping of its errors onto ours.

use std::error::Error as StdError;

use postgres::Row as PgRow;
use postgres::error::SqlState;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::error::Error;
use crate::record::{Column, FieldKind};
use crate::value::{ColumnType, Value, ValueRef};

/// A value bound as a parameter. It checks the parameter's type: an integer is sent to a
/// `bigint`, `integer` or `double precision` column (0 and 1 also to `boolean`), text to
/// `text`, `json` or `jsonb`, bytes to `bytea`; anything else is refused rather than reinterpreted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Param<'a>(pub ValueRef<'a>);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match (self.0, ty) {
            (ValueRef::Null, _) => Ok(IsNull::Yes),
            (ValueRef::Integer(i), t) if *t == Type::INT8 => i.to_sql(ty, out),
            (ValueRef::Integer(i), t) if *t == Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
            (ValueRef::Integer(i), t) if *t == Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
            (ValueRef::Integer(i), t) if *t == Type::FLOAT8 => (i as f64).to_sql(ty, out),
            (ValueRef::Integer(i @ (0 | 1)), t) if *t == Type::BOOL => (i == 1).to_sql(ty, out),
            (ValueRef::Integer(i), t) if *t == Type::TEXT || *t == Type::UNKNOWN => {
                i.to_string().to_sql(&Type::TEXT, out)
            }
            (ValueRef::Real(r), t) if *t == Type::FLOAT8 => r.to_sql(ty, out),
            (ValueRef::Real(r), t) if *t == Type::FLOAT4 => (r as f32).to_sql(ty, out),
            (ValueRef::Text(s), t) if *t == Type::JSONB => {
                // jsonb's binary form: format version 1, then the JSON text, which the
                // server parses (and refuses when it is not JSON). The text is sent as
                // it is, so no number is rounded on the way.
                out.extend_from_slice(&[1]);
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (ValueRef::Text(s), t) if *t == Type::JSON => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (ValueRef::Text(s), t)
                if *t == Type::TEXT
                    || *t == Type::VARCHAR
                    || *t == Type::BPCHAR
                    || *t == Type::NAME
                    || *t == Type::UNKNOWN =>
            {
                s.to_sql(&Type::TEXT, out)
            }
            (ValueRef::Blob(b), t) if *t == Type::BYTEA => b.to_sql(ty, out),
            (v, t) => Err(format!(
                "a value of type {} cannot be stored in a column of type {t}",
                v.type_name()
            )
            .into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The PostgreSQL column type of one of our column types.
pub(crate) fn pg_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Integer => "bigint",
        ColumnType::Real => "double precision",
        ColumnType::Text => "text",
        ColumnType::Blob => "bytea",
    }
}

/// The PostgreSQL type a new column gets: by its kind (`boolean`, `jsonb`) when its type
/// can hold that kind, else by its type.
pub(crate) fn pg_column_type(c: &Column) -> &'static str {
    match (c.kind, c.sql_type) {
        (FieldKind::Bool, ColumnType::Integer) => "boolean",
        (FieldKind::Json, ColumnType::Text) => "jsonb",
        (_, t) => pg_type(t),
    }
}

/// The type to write an existing column of type `have` (as `information_schema` names
/// it) with, when it serves a column that would be created as `want`: the same type, or
/// the type older versions gave bool (`bigint`) and JSON (`text`) fields, which read and
/// write as before. None when it does not serve.
pub(crate) fn serving_type(have: &str, want: &'static str) -> Option<&'static str> {
    match (want, have) {
        _ if have == want => Some(want),
        ("boolean", "bigint") => Some("bigint"),
        ("jsonb", "text") => Some("text"),
        ("jsonb", "json") => Some("json"),
        _ => None,
    }
}

/// JSON or jsonb column text as the server sends it, read without parsing it.
struct JsonText(String);

impl<'a> FromSql<'a> for JsonText {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        let text = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                _ => return Err("unsupported jsonb format version".into()),
            }
        } else {
            raw
        };
        Ok(JsonText(std::str::from_utf8(text)?.to_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// Column `idx` of a result row as one of our values.
pub(crate) fn column(row: &PgRow, idx: usize) -> Result<Value, String> {
    let ty = row.columns()[idx].type_().clone();
    let err = |e: postgres::Error| e.to_string();
    Ok(if ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(idx)
            .map_err(err)?
            .map(Value::Integer)
    } else if ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(idx)
            .map_err(err)?
            .map(|i| Value::Integer(i.into()))
    } else if ty == Type::INT2 {
        row.try_get::<_, Option<i16>>(idx)
            .map_err(err)?
            .map(|i| Value::Integer(i.into()))
    } else if ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(idx)
            .map_err(err)?
            .map(|b| Value::Integer(b.into()))
    } else if ty == Type::FLOAT8 {
        row.try_get::<_, Option<f64>>(idx)
            .map_err(err)?
            .map(Value::Real)
    } else if ty == Type::FLOAT4 {
        row.try_get::<_, Option<f32>>(idx)
            .map_err(err)?
            .map(|f| Value::Real(f.into()))
    } else if ty == Type::BYTEA {
        row.try_get::<_, Option<Vec<u8>>>(idx)
            .map_err(err)?
            .map(Value::Blob)
    } else if ty == Type::JSONB || ty == Type::JSON {
        row.try_get::<_, Option<JsonText>>(idx)
            .map_err(err)?
            .map(|j| Value::Text(j.0))
    } else {
        row.try_get::<_, Option<String>>(idx)
            .map_err(|_| format!("column type {ty} is not supported"))?
            .map(Value::Text)
    })
    .map(|v| v.unwrap_or(Value::Null))
}

/// Every column of a row, from `from` on.
pub(crate) fn values(row: &PgRow, from: usize) -> crate::Result<Vec<Value>> {
    (from..row.len())
        .map(|i| {
            column(row, i).map_err(|message| Error::Decode {
                column: row.columns()[i].name().to_owned(),
                message,
            })
        })
        .collect()
}

/// Translates SQLite-style placeholders (`?`, `?NNN`, `:name`, `@name`, `$name`) in a
/// trusted SQL fragment into PostgreSQL's `$n`, numbering from `first`. String literals,
/// quoted identifiers and `::` casts are left alone. Returns the SQL and, per `$n`, the
/// index of the positional parameter or the name it stands for.
pub(crate) fn translate(sql: &str, first: usize) -> crate::Result<(String, Vec<Placeholder>)> {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut order: Vec<Placeholder> = Vec::new();
    let mut chars = sql.char_indices().peekable();
    let mut next_positional = 0usize;
    let slot = |p: Placeholder, order: &mut Vec<Placeholder>| -> usize {
        if let Some(i) = order.iter().position(|q| *q == p) {
            return i + first;
        }
        order.push(p);
        order.len() - 1 + first
    };
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for (_, d) in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            ':' if chars.peek().map(|p| p.1) == Some(':') => {
                out.push_str("::");
                chars.next();
            }
            '?' => {
                let mut digits = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        digits.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                let idx = if digits.is_empty() {
                    next_positional += 1;
                    next_positional - 1
                } else {
                    let n: usize = digits
                        .parse()
                        .map_err(|_| Error::Usage(format!("bad placeholder ?{digits}")))?;
                    if n == 0 {
                        return Err(Error::Usage("placeholder ?0 does not exist".into()));
                    }
                    next_positional = n;
                    n - 1
                };
                let n = slot(Placeholder::Index(idx), &mut order);
                out.push_str(&format!("${n}"));
            }
            ':' | '@' | '$'
                if chars
                    .peek()
                    .is_some_and(|p| p.1.is_alphabetic() || p.1 == '_') =>
            {
                let start = i + 1;
                let mut end = start;
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let n = slot(Placeholder::Name(sql[start..end].to_owned()), &mut order);
                out.push_str(&format!("${n}"));
            }
            _ => out.push(c),
        }
    }
    Ok((out, order))
}

/// What one `$n` of a translated fragment stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Placeholder {
    /// The positional parameter at this index (0-based).
    Index(usize),
    /// The named parameter.
    Name(String),
}

/// True when the error shows that the connection is gone (closed, reset, or the server
/// shutting down or refusing new sessions).
pub(crate) fn is_disconnect(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c.starts_with("57P")
        }
        // No SQLSTATE and no database error: an I/O error of the socket.
        None => e.as_db_error().is_none() && e.source().is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// Maps a PostgreSQL error onto ours; `url` is already redacted.
pub(crate) fn map_error(url: &str, e: &postgres::Error) -> Error {
    let url = url.to_owned();
    let message = match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => {
            let mut m = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                m.push_str(": ");
                m.push_str(&s.to_string());
                source = s.source();
            }
            m
        }
    };
    match e.code() {
        Some(c) if *c == SqlState::QUERY_CANCELED || *c == SqlState::LOCK_NOT_AVAILABLE => {
            Error::Timeout { url, message }
        }
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            Error::Connection {
                url,
                message: format!("authentication failed: {message}"),
            }
        }
        _ if is_disconnect(e) => Error::Connection { url, message },
        Some(c) if c.code().starts_with("22") => Error::InvalidValue(message),
        Some(c) => Error::Server {
            url,
            code: c.code().to_owned(),
            message,
        },
        None if message.contains("cannot be stored") || message.contains("error serializing") => {
            Error::InvalidValue(message)
        }
        None => Error::Connection { url, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bool_and_json_kinds_choose_the_column_type() {
        use crate::record::{Field, Json, Record};
        let col = |t, kind| Column::new("c", t, false, None).with_kind(kind);
        assert_eq!(
            pg_column_type(&col(ColumnType::Integer, FieldKind::Bool)),
            "boolean"
        );
        assert_eq!(
            pg_column_type(&col(ColumnType::Text, FieldKind::Json)),
            "jsonb"
        );
        // A kind its type cannot hold falls back to the type.
        assert_eq!(
            pg_column_type(&col(ColumnType::Blob, FieldKind::Json)),
            "bytea"
        );
        assert_eq!(
            pg_column_type(&col(ColumnType::Integer, FieldKind::Plain)),
            "bigint"
        );
        assert_eq!(<Option<bool> as Field>::KIND, FieldKind::Bool);
        assert_eq!(
            <Json<Vec<i64>> as Record>::columns()[0].kind,
            FieldKind::Json
        );
        assert_eq!(<i64 as Field>::KIND, FieldKind::Plain);
        // Older tables: bigint serves a bool field, text or json a JSON field.
        assert_eq!(serving_type("bigint", "boolean"), Some("bigint"));
        assert_eq!(serving_type("text", "jsonb"), Some("text"));
        assert_eq!(serving_type("json", "jsonb"), Some("json"));
        assert_eq!(serving_type("jsonb", "jsonb"), Some("jsonb"));
        assert_eq!(serving_type("boolean", "bigint"), None);
        assert_eq!(serving_type("jsonb", "text"), None);
        assert_eq!(serving_type("text", "boolean"), None);
    }

    #[test]
    fn placeholders() {
        let (sql, order) = translate("a > ? AND b = ? AND c::text = 'x?:y'", 1).unwrap();
        assert_eq!(sql, "a > $1 AND b = $2 AND c::text = 'x?:y'");
        assert_eq!(order, [Placeholder::Index(0), Placeholder::Index(1)]);
        let (sql, order) = translate("a = :v OR b = :v OR c = :w", 3).unwrap();
        assert_eq!(sql, "a = $3 OR b = $3 OR c = $4");
        assert_eq!(
            order,
            [Placeholder::Name("v".into()), Placeholder::Name("w".into())]
        );
        let (sql, order) = translate("a = ?2 OR b = ?1", 1).unwrap();
        assert_eq!(sql, "a = $1 OR b = $2");
        assert_eq!(order, [Placeholder::Index(1), Placeholder::Index(0)]);
    }
}
