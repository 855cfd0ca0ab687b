//! Values: [`Field`] (one column) and [`Record`] (one row of columns), the built-in field
//! types, [`Json`] for any serde type, and the [`Row`] a record is read from.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};
use crate::statement::RawRow;
use crate::value::{Cell, ColumnType, Value, ValueRef};

/// One value column of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// The declared type.
    pub sql_type: ColumnType,
    /// Whether the column accepts NULL.
    pub nullable: bool,
    /// The default a migration gives existing rows when it adds this column.
    pub default: Option<Value>,
    /// What the values mean beyond `sql_type`; a server backend picks its column type by
    /// it (SQLite ignores it).
    pub kind: FieldKind,
}

/// What a field's values mean beyond their [`ColumnType`]. SQLite stores every kind by
/// its `ColumnType` alone; PostgreSQL gives `Bool` a `boolean` and `Json` a `jsonb`
/// column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldKind {
    /// Nothing beyond the column type.
    #[default]
    Plain,
    /// A truth value, stored as INTEGER 0 or 1.
    Bool,
    /// A JSON document, stored as TEXT.
    Json,
}

impl Column {
    /// A column description.
    pub fn new(
        name: impl Into<String>,
        sql_type: ColumnType,
        nullable: bool,
        default: Option<Value>,
    ) -> Column {
        Column {
            name: name.into(),
            sql_type,
            nullable,
            default,
            kind: FieldKind::Plain,
        }
    }

    /// This column with the given [`FieldKind`].
    #[must_use]
    pub fn with_kind(mut self, kind: FieldKind) -> Column {
        self.kind = kind;
        self
    }
}

/// A type stored in one column: `i64`, `f64`, `bool`, `String`, `Vec<u8>`, `Option<T>`
/// and [`Json<T>`].
pub trait Field: Sized {
    /// The declared column type.
    const SQL_TYPE: ColumnType;
    /// Whether the column accepts NULL (true for `Option<T>`).
    const NULLABLE: bool = false;
    /// What the values mean beyond `SQL_TYPE` (`Bool` for `bool`, `Json` for [`Json<T>`];
    /// `Option<T>` takes `T`'s).
    const KIND: FieldKind = FieldKind::Plain;

    /// The value to bind.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when the value cannot be stored (NaN, a failed serialisation).
    fn to_cell(&self) -> Result<Cell<'_>>;

    /// Decodes a stored value; the error says what was found instead.
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String>;
}

/// A type stored as one table row: one column per field.
///
/// Every [`Field`] is a record of one column named `value` (the layout of the original
/// Python library's default table). Structs with named fields get an implementation from
/// `#[derive(Record)]`.
pub trait Record: Sized {
    /// The table a store of this record uses unless the builder names another.
    const TABLE: Option<&'static str> = None;

    /// The value columns, in order.
    fn columns() -> Vec<Column>;

    /// Appends one cell per column, in the order of [`Record::columns`].
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when a field cannot be stored.
    fn write<'a>(&'a self, out: &mut Vec<Cell<'a>>) -> Result<()>;

    /// Reads the record from a row.
    ///
    /// # Errors
    /// [`Error::Decode`] naming the column whose value does not fit.
    fn read(row: &Row<'_>) -> Result<Self>;
}

impl<T: Field> Record for T {
    fn columns() -> Vec<Column> {
        vec![Column::new("value", T::SQL_TYPE, T::NULLABLE, None).with_kind(T::KIND)]
    }

    fn write<'a>(&'a self, out: &mut Vec<Cell<'a>>) -> Result<()> {
        out.push(self.to_cell()?);
        Ok(())
    }

    fn read(row: &Row<'_>) -> Result<Self> {
        row.field(0, "value")
    }
}

/// Where a [`Row`] reads its columns: a held statement's row or a rusqlite row.
#[derive(Clone, Copy)]
pub(crate) enum RowSource<'a> {
    Held(&'a RawRow<'a>),
    Lib(&'a rusqlite::Row<'a>),
    /// Values fetched by a remote backend: the key, then the value columns.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Values(&'a [Value]),
}

impl<'a> From<&'a RawRow<'a>> for RowSource<'a> {
    fn from(r: &'a RawRow<'a>) -> Self {
        RowSource::Held(r)
    }
}

impl<'a> From<&'a rusqlite::Row<'a>> for RowSource<'a> {
    fn from(r: &'a rusqlite::Row<'a>) -> Self {
        RowSource::Lib(r)
    }
}

/// One result row: the key, then the value columns.
pub struct Row<'a> {
    row: RowSource<'a>,
    values: usize,
    /// A value column read from elsewhere (a cache value kept in its own file).
    outside: Option<(usize, ValueRef<'a>)>,
    /// A value column read from elsewhere when first asked for.
    lazy: Option<Lazy<'a>>,
}

/// A value column loaded on first use (see [`Row::with_lazy_value`]).
struct Lazy<'a> {
    idx: usize,
    load: &'a dyn Fn() -> Result<Value>,
    value: std::cell::OnceCell<Value>,
}

impl<'a> Row<'a> {
    pub(crate) fn new(row: impl Into<RowSource<'a>>, values: usize) -> Row<'a> {
        Row {
            row: row.into(),
            values,
            outside: None,
            lazy: None,
        }
    }

    /// This row with value column `idx` loaded by `load` when first read.
    pub(crate) fn with_lazy_value(
        mut self,
        idx: usize,
        load: &'a dyn Fn() -> Result<Value>,
    ) -> Row<'a> {
        self.lazy = Some(Lazy {
            idx: idx + 1,
            load,
            value: std::cell::OnceCell::new(),
        });
        self
    }

    /// This row with value column `idx` replaced by `value`.
    pub(crate) fn with_value(mut self, idx: usize, value: ValueRef<'a>) -> Row<'a> {
        self.outside = Some((idx + 1, value));
        self
    }

    fn at(&self, idx: usize, column: &str) -> Result<ValueRef<'_>> {
        if let Some((i, v)) = self.outside
            && i == idx
        {
            return Ok(v);
        }
        if let Some(lazy) = &self.lazy
            && lazy.idx == idx
        {
            if lazy.value.get().is_none() {
                let _ = lazy.value.set((lazy.load)()?);
            }
            return Ok(lazy.value.get().expect("just set").as_ref());
        }
        let raw = match self.row {
            RowSource::Held(r) => r.get_ref(idx)?,
            RowSource::Lib(r) => r.get_ref(idx)?,
            RowSource::Values(v) => {
                return v.get(idx).map(Value::as_ref).ok_or_else(|| Error::Decode {
                    column: column.to_owned(),
                    message: "missing column".into(),
                });
            }
        };
        ValueRef::from_sqlite(raw).map_err(|message| Error::Decode {
            column: column.to_owned(),
            message,
        })
    }

    /// The stored key.
    ///
    /// # Errors
    /// [`Error::Decode`] if stored text is not UTF-8.
    pub fn key(&self) -> Result<ValueRef<'_>> {
        self.at(0, "_key")
    }

    /// How many value columns the row has.
    pub fn len(&self) -> usize {
        self.values
    }

    /// True when the row has no value columns.
    pub fn is_empty(&self) -> bool {
        self.values == 0
    }

    /// The value column at `idx` (0-based, after the key), as stored.
    ///
    /// # Errors
    /// [`Error::Decode`] if stored text is not UTF-8.
    pub fn value(&self, idx: usize) -> Result<ValueRef<'_>> {
        self.at(idx + 1, "value")
    }

    /// Decodes the value column at `idx` as `T`; errors name `column`.
    ///
    /// # Errors
    /// [`Error::Decode`] when the stored value does not fit `T`.
    pub fn field<T: Field>(&self, idx: usize, column: &str) -> Result<T> {
        let v = self.at(idx + 1, column)?;
        T::from_value(v).map_err(|message| Error::Decode {
            column: column.to_owned(),
            message,
        })
    }
}

fn found(expected: &str, v: ValueRef<'_>) -> String {
    format!("expected {expected}, found {}", v.type_name())
}

impl Field for i64 {
    const SQL_TYPE: ColumnType = ColumnType::Integer;
    fn to_cell(&self) -> Result<Cell<'_>> {
        Ok(Cell::Borrowed(ValueRef::Integer(*self)))
    }
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Integer(i) => Ok(i),
            other => Err(found("INTEGER", other)),
        }
    }
}

/// Integer fields of other widths: stored as INTEGER; a value outside `i64` (for `u64`
/// and `usize`) is refused when written, a stored value outside the type when read.
macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            const SQL_TYPE: ColumnType = ColumnType::Integer;
            fn to_cell(&self) -> Result<Cell<'_>> {
                i64::try_from(*self)
                    .map(|i| Cell::Borrowed(ValueRef::Integer(i)))
                    .map_err(|_| Error::InvalidValue(format!(
                        "{} does not fit in SQLite's 64-bit signed integer", self
                    )))
            }
            fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
                match v {
                    ValueRef::Integer(i) => <$t>::try_from(i)
                        .map_err(|_| format!("{i} does not fit in {}", stringify!($t))),
                    other => Err(found("INTEGER", other)),
                }
            }
        }
    )*};
}
int_field!(i32, u32, u64, usize);

impl Field for f32 {
    const SQL_TYPE: ColumnType = ColumnType::Real;
    fn to_cell(&self) -> Result<Cell<'_>> {
        if self.is_nan() {
            return Err(Error::InvalidValue(
                "NaN cannot be stored (SQLite reads it as NULL)".into(),
            ));
        }
        Ok(Cell::Borrowed(ValueRef::Real(f64::from(*self))))
    }
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        // Rounds to the nearest f32: what a REAL column holds is an f64.
        <f64 as Field>::from_value(v).map(|f| f as f32)
    }
}

impl Field for f64 {
    const SQL_TYPE: ColumnType = ColumnType::Real;
    fn to_cell(&self) -> Result<Cell<'_>> {
        if self.is_nan() {
            return Err(Error::InvalidValue(
                "NaN cannot be stored (SQLite reads it as NULL)".into(),
            ));
        }
        Ok(Cell::Borrowed(ValueRef::Real(*self)))
    }
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Real(f) => Ok(f),
            ValueRef::Integer(i) => Ok(i as f64),
            other => Err(found("REAL", other)),
        }
    }
}

impl Field for bool {
    const SQL_TYPE: ColumnType = ColumnType::Integer;
    const KIND: FieldKind = FieldKind::Bool;
    fn to_cell(&self) -> Result<Cell<'_>> {
        Ok(Cell::Borrowed(ValueRef::Integer(i64::from(*self))))
    }
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Integer(0) => Ok(false),
            ValueRef::Integer(1) => Ok(true),
            ValueRef::Integer(i) => Err(format!("expected 0 or 1 for a bool, found {i}")),
            other => Err(found("INTEGER", other)),
        }
    }
}

impl Field for String {
    const SQL_TYPE: ColumnType = ColumnType::Text;
    fn to_cell(&self) -> Result<Cell<'_>> {
        Ok(Cell::Borrowed(ValueRef::Text(self)))
    }
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Text(s) => Ok(s.to_owned()),
            other => Err(found("TEXT", other)),
        }
    }
}

impl Field for Vec<u8> {
    const SQL_TYPE: ColumnType = ColumnType::Blob;
    fn to_cell(&self) -> Result<Cell<'_>> {
        Ok(Cell::Borrowed(ValueRef::Blob(self)))
    }
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            other => Err(found("BLOB", other)),
        }
    }
}

impl<T: Field> Field for Option<T> {
    const SQL_TYPE: ColumnType = T::SQL_TYPE;
    const NULLABLE: bool = true;
    const KIND: FieldKind = T::KIND;
    fn to_cell(&self) -> Result<Cell<'_>> {
        match self {
            Some(v) => v.to_cell(),
            None => Ok(Cell::Borrowed(ValueRef::Null)),
        }
    }
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Stores any serde type as JSON text in one column (readable from Python's `JsonConfig`).
///
/// ```
/// use diskstore::{DiskStore, Json};
/// use std::collections::BTreeMap;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store: DiskStore<String, Json<BTreeMap<String, u32>>> =
///     DiskStore::open(dir.path().join("j.db")).unwrap();
/// store.insert("a", &Json(BTreeMap::from([("x".to_string(), 1)]))).unwrap();
/// assert_eq!(store.get("a").unwrap().unwrap().0["x"], 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Json<T>(pub T);

impl<T: Serialize + DeserializeOwned> Field for Json<T> {
    const SQL_TYPE: ColumnType = ColumnType::Text;
    const KIND: FieldKind = FieldKind::Json;
    fn to_cell(&self) -> Result<Cell<'_>> {
        serde_json::to_string(&self.0)
            .map(|s| Cell::Owned(Value::Text(s)))
            .map_err(|e| Error::InvalidValue(format!("cannot serialise as JSON: {e}")))
    }
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        let bytes = match v {
            ValueRef::Text(s) => s.as_bytes(),
            ValueRef::Blob(b) => b,
            other => return Err(found("JSON text", other)),
        };
        serde_json::from_slice(bytes)
            .map(Json)
            .map_err(|e| format!("invalid JSON: {e}"))
    }
}

macro_rules! value_from {
    ($($t:ty => $v:ident $(as $cast:ty)?),*) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Value {
                Value::$v(x $(as $cast)?.into())
            }
        }
    )*};
}
value_from!(
    i64 => Integer, i32 => Integer, u32 => Integer, i16 => Integer, u16 => Integer,
    i8 => Integer, u8 => Integer, f64 => Real, f32 => Real, &str => Text, String => Text,
    Vec<u8> => Blob, &[u8] => Blob
);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(x: Option<T>) -> Value {
        x.map_or(Value::Null, Into::into)
    }
}

/// Query parameters from a list of values of mixed types, each converted with
/// `Value::from`: `params![1, "a", 2.5, None::<i64>]` is a `Vec<Value>`.
///
/// ```
/// use diskstore::{params, Query, Value};
/// let q = Query::new().filter("value BETWEEN ? AND ?", params![1, 10]);
/// assert_eq!(q.params, [Value::Integer(1), Value::Integer(10)]);
/// ```
#[macro_export]
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        ::std::vec![$($crate::Value::from($p)),*]
    };
}

impl From<bool> for Value {
    fn from(x: bool) -> Value {
        Value::Integer(i64::from(x))
    }
}
