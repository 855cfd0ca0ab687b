//! SQLite's dynamic values: [`Value`] (owned), [`ValueRef`] (borrowed), [`Cell`] (a parameter
//! that is either) and [`ColumnType`] (a declared column type).

use std::fmt;

use rusqlite::types::{ToSql, ToSqlOutput};

/// An owned SQLite value of one of the five storage classes.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A borrowed SQLite value, valid while the row or the source it points into lives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL `NULL`.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// A value bound as a statement parameter: borrowed where it can be, owned where a
/// conversion (JSON, for example) had to make it.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell<'a> {
    /// Points into the caller's data; no copy.
    Borrowed(ValueRef<'a>),
    /// Made by a conversion.
    Owned(Value),
}

/// The declared type of a column, as SQLite understands column affinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `INTEGER`; for the key column it makes the key an alias of the rowid.
    Integer,
    /// `REAL`.
    Real,
    /// `TEXT`.
    Text,
    /// `BLOB`: no conversion, so values of every storage class keep their type.
    Blob,
}

impl ColumnType {
    /// The SQL keyword.
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Integer => "INTEGER",
            ColumnType::Real => "REAL",
            ColumnType::Text => "TEXT",
            ColumnType::Blob => "BLOB",
        }
    }

    /// The affinity SQLite gives a declared type (the rules of section 3.1 of
    /// SQLite's datatype documentation; `NUMERIC` counts as `REAL`).
    pub fn from_declared(declared: &str) -> ColumnType {
        let t = declared.to_ascii_uppercase();
        if t.contains("INT") {
            ColumnType::Integer
        } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
            ColumnType::Text
        } else if t.contains("BLOB") || t.is_empty() {
            ColumnType::Blob
        } else {
            ColumnType::Real
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql())
    }
}

impl Value {
    /// Borrows this value.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(s) => ValueRef::Text(s),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

impl ValueRef<'_> {
    /// Copies the value out.
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(r) => Value::Real(r),
            ValueRef::Text(s) => Value::Text(s.to_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }

    /// The storage class name, for error messages.
    pub fn type_name(self) -> &'static str {
        match self {
            ValueRef::Null => "NULL",
            ValueRef::Integer(_) => "INTEGER",
            ValueRef::Real(_) => "REAL",
            ValueRef::Text(_) => "TEXT",
            ValueRef::Blob(_) => "BLOB",
        }
    }

    pub(crate) fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Result<ValueRef<'_>, String> {
        use rusqlite::types::ValueRef as R;
        Ok(match v {
            R::Null => ValueRef::Null,
            R::Integer(i) => ValueRef::Integer(i),
            R::Real(r) => ValueRef::Real(r),
            R::Text(t) => ValueRef::Text(
                std::str::from_utf8(t).map_err(|e| format!("stored text is not UTF-8: {e}"))?,
            ),
            R::Blob(b) => ValueRef::Blob(b),
        })
    }
}

impl<'a> ValueRef<'a> {
    pub(crate) fn sqlite(self) -> rusqlite::types::ValueRef<'a> {
        use rusqlite::types::ValueRef as R;
        match self {
            ValueRef::Null => R::Null,
            ValueRef::Integer(i) => R::Integer(i),
            ValueRef::Real(r) => R::Real(r),
            ValueRef::Text(s) => R::Text(s.as_bytes()),
            ValueRef::Blob(b) => R::Blob(b),
        }
    }
}

impl Cell<'_> {
    /// The value this cell binds.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Cell::Borrowed(v) => *v,
            Cell::Owned(v) => v.as_ref(),
        }
    }
}

impl<'a> From<ValueRef<'a>> for Cell<'a> {
    fn from(v: ValueRef<'a>) -> Self {
        Cell::Borrowed(v)
    }
}

impl From<Value> for Cell<'_> {
    fn from(v: Value) -> Self {
        Cell::Owned(v)
    }
}

impl ToSql for ValueRef<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(self.sqlite()))
    }
}

impl ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(self.as_ref().sqlite()))
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(self.as_ref().sqlite()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_follows_sqlite_rules() {
        assert_eq!(ColumnType::from_declared("INTEGER"), ColumnType::Integer);
        assert_eq!(ColumnType::from_declared("bigint"), ColumnType::Integer);
        assert_eq!(ColumnType::from_declared("VARCHAR(10)"), ColumnType::Text);
        assert_eq!(ColumnType::from_declared(""), ColumnType::Blob);
        assert_eq!(ColumnType::from_declared("BLOB"), ColumnType::Blob);
        assert_eq!(ColumnType::from_declared("DOUBLE"), ColumnType::Real);
    }

    #[test]
    fn value_round_trips_through_ref() {
        for v in [
            Value::Null,
            Value::Integer(-5),
            Value::Real(1.5),
            Value::Text("é".into()),
            Value::Blob(vec![0, 1]),
        ] {
            assert_eq!(v.as_ref().to_owned(), v);
        }
    }
}
