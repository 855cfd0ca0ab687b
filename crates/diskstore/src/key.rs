//! Keys: the four SQLite storage classes a key may have, borrowed ([`KeyRef`]) for lookups
//! and typed ([`Key`]) for the Rust API.

use crate::error::{Error, Result};
use crate::value::{ColumnType, ValueRef};

/// A borrowed key of one of SQLite's four key storage classes.
///
/// Keys compare as SQLite compares them: numbers (integers and floats, by value) before
/// text before bytes, so `Int(1)` and `Float(1.0)` are the same key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyRef<'a> {
    /// An integer key.
    Int(i64),
    /// A float key; NaN is refused.
    Float(f64),
    /// A text key.
    Text(&'a str),
    /// A bytes key.
    Blob(&'a [u8]),
}

impl<'a> KeyRef<'a> {
    /// The key as a value to bind, refusing NaN (SQLite would store it as NULL).
    pub fn checked(self) -> Result<ValueRef<'a>> {
        Ok(match self {
            KeyRef::Int(i) => ValueRef::Integer(i),
            KeyRef::Float(f) if f.is_nan() => {
                return Err(Error::InvalidKey("NaN cannot be a key".into()));
            }
            KeyRef::Float(f) => ValueRef::Real(f),
            KeyRef::Text(s) => ValueRef::Text(s),
            KeyRef::Blob(b) => ValueRef::Blob(b),
        })
    }

    /// The key stored in a row, or `None` for a value no key can have (NULL).
    pub fn from_value(v: ValueRef<'a>) -> Option<KeyRef<'a>> {
        match v {
            ValueRef::Integer(i) => Some(KeyRef::Int(i)),
            ValueRef::Real(f) => Some(KeyRef::Float(f)),
            ValueRef::Text(s) => Some(KeyRef::Text(s)),
            ValueRef::Blob(b) => Some(KeyRef::Blob(b)),
            ValueRef::Null => None,
        }
    }
}

/// Anything that can be looked up as a key: typed keys, their borrowed forms (`str`,
/// `[u8]`) and [`KeyRef`] itself.
pub trait AsKey {
    /// The key this value stands for.
    fn as_key(&self) -> KeyRef<'_>;
}

/// A typed key for [`DiskStore`](crate::DiskStore): `i64`, `f64`, `String` or `Vec<u8>`.
pub trait Key: AsKey + Sized {
    /// The column type a new table gets for keys of this type.
    const COLUMN_TYPE: ColumnType;

    /// Decodes a stored key; the error says what was found instead.
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String>;
}

impl AsKey for KeyRef<'_> {
    fn as_key(&self) -> KeyRef<'_> {
        *self
    }
}

impl AsKey for i64 {
    fn as_key(&self) -> KeyRef<'_> {
        KeyRef::Int(*self)
    }
}

impl AsKey for f64 {
    fn as_key(&self) -> KeyRef<'_> {
        KeyRef::Float(*self)
    }
}

impl AsKey for str {
    fn as_key(&self) -> KeyRef<'_> {
        KeyRef::Text(self)
    }
}

impl AsKey for String {
    fn as_key(&self) -> KeyRef<'_> {
        KeyRef::Text(self)
    }
}

impl AsKey for [u8] {
    fn as_key(&self) -> KeyRef<'_> {
        KeyRef::Blob(self)
    }
}

impl AsKey for Vec<u8> {
    fn as_key(&self) -> KeyRef<'_> {
        KeyRef::Blob(self)
    }
}

/// Integer keys narrower than `i64` (every value fits): stored as INTEGER, and refused on
/// read when a stored key does not fit the type.
macro_rules! narrow_int_key {
    ($($t:ty),*) => {$(
        impl AsKey for $t {
            fn as_key(&self) -> KeyRef<'_> {
                KeyRef::Int(i64::from(*self))
            }
        }

        impl Key for $t {
            const COLUMN_TYPE: ColumnType = ColumnType::Integer;
            fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
                match v {
                    ValueRef::Integer(i) => <$t>::try_from(i).map_err(|_| {
                        format!("key {i} does not fit in {}", stringify!($t))
                    }),
                    other => Err(mismatch("INTEGER", other)),
                }
            }
        }
    )*};
}
narrow_int_key!(i32, u32);

impl<T: AsKey + ?Sized> AsKey for &T {
    fn as_key(&self) -> KeyRef<'_> {
        (**self).as_key()
    }
}

fn mismatch(expected: &str, v: ValueRef<'_>) -> String {
    format!("expected a {expected} key, found {}", v.type_name())
}

impl Key for i64 {
    const COLUMN_TYPE: ColumnType = ColumnType::Integer;
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Integer(i) => Ok(i),
            other => Err(mismatch("INTEGER", other)),
        }
    }
}

impl Key for f64 {
    const COLUMN_TYPE: ColumnType = ColumnType::Real;
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Real(f) => Ok(f),
            ValueRef::Integer(i) => Ok(i as f64),
            other => Err(mismatch("REAL", other)),
        }
    }
}

impl Key for String {
    const COLUMN_TYPE: ColumnType = ColumnType::Text;
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Text(s) => Ok(s.to_owned()),
            other => Err(mismatch("TEXT", other)),
        }
    }
}

impl Key for Vec<u8> {
    const COLUMN_TYPE: ColumnType = ColumnType::Blob;
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            other => Err(mismatch("BLOB", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_is_refused_and_infinities_are_not() {
        assert!(matches!(
            KeyRef::Float(f64::NAN).checked(),
            Err(Error::InvalidKey(_))
        ));
        assert_eq!(
            KeyRef::Float(f64::INFINITY).checked().unwrap(),
            ValueRef::Real(f64::INFINITY)
        );
    }

    #[test]
    fn float_keys_accept_stored_integers() {
        assert_eq!(f64::from_value(ValueRef::Integer(3)).unwrap(), 3.0);
        assert!(i64::from_value(ValueRef::Text("3")).is_err());
    }
}
