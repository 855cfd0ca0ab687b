//! One entry point for every store backend: [`AnyStore`], opened by a location — a file
//! path (SQLite) or a `postgresql://` URL (feature `postgres`) — with the methods of
//! [`DiskStore`] that every backend offers, and its read-only counterpart [`AnyRead`]
//! (the methods of [`DiskRead`]).
//!
//! Why an enum beside [`DiskStore`] rather than a backend inside it: `DiskStore` hands out
//! SQLite's own types ([`Table`](crate::Table), [`Iter`](crate::Iter), read snapshots,
//! `vacuum`), which a server backend cannot give, and its calls would all pay a branch.
//! A trait object cannot take the generic key arguments (`&Q where Q: AsKey`) that make
//! `store.get("a")` work. The enum keeps the same call syntax, static dispatch, and each
//! method one line per backend; `DiskStore` itself is untouched.

use std::borrow::Borrow;

use crate::error::{Error, Result};
use crate::key::{AsKey, Key};
use crate::record::Record;
use crate::remote::Backend;
use crate::store::{DiskRead, DiskStore};
use crate::transaction::WriteTransaction;

#[cfg(feature = "postgres")]
use crate::remote::postgres::{PgStore, PgTransaction};

/// A store on any backend, opened by location with [`DiskStore::open_url`] or
/// [`Builder::open_url`](crate::Builder::open_url).
///
/// ```
/// # fn main() -> diskstore::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let location = dir.path().join("any.db");
/// # let location = location.to_str().unwrap();
/// use diskstore::DiskStore;
/// // `location` may be a file path or (feature `postgres`) "postgresql://user@host/db".
/// let store = DiskStore::<String, i64>::open_url(location)?;
/// store.insert("a", &1)?;
/// let tx = store.begin()?;
/// store.insert("b", &2)?; // this thread's calls join the transaction
/// tx.commit()?;
/// assert_eq!(store.get("b")?, Some(2));
/// # Ok(())
/// # }
/// ```
#[non_exhaustive]
pub enum AnyStore<K, V> {
    /// A store in an SQLite file.
    Sqlite(DiskStore<K, V>),
    /// A store on PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(Box<PgStore<K, V>>),
}

/// Calls the same method on whichever backend the store has.
macro_rules! each {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $body,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($s) => $body,
        }
    };
}

/// The error for a URL whose backend is not compiled in (or does not offer a store).
pub(crate) fn unsupported_url(location: &str) -> Error {
    let shown = crate::remote::redact_url(location);
    match Backend::of(location) {
        Backend::Redis => Error::NotSupported {
            backend: "redis",
            operation: format!("a store ({shown}): Redis backs the cache only"),
        },
        _ => Error::NotSupported {
            backend: "postgres",
            operation: format!("{shown}: build diskstore with the `postgres` feature"),
        },
    }
}

impl<K: Key, V: Record> AnyStore<K, V> {
    /// A read-only handle on the same table ([`DiskStore::read_only`] on SQLite; on
    /// PostgreSQL new sessions that the server keeps read-only).
    ///
    /// # Errors
    /// As [`DiskStore::read_only`]; server errors.
    pub fn read_only(&self) -> Result<AnyRead<K, V>> {
        Ok(match self {
            AnyStore::Sqlite(s) => AnyRead::Sqlite(s.read_only()?),
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(s) => AnyRead::Postgres(Box::new(s.read_only()?)),
        })
    }

    /// Which backend this store is on.
    pub fn backend(&self) -> Backend {
        match self {
            AnyStore::Sqlite(_) => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(_) => Backend::Postgres,
        }
    }

    /// The value of `key`, or `None`.
    ///
    /// # Errors
    /// As [`DiskRead::get`](crate::DiskRead::get); server errors.
    pub fn get<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        each!(self, s => s.get(key))
    }

    /// The values of several keys (one round trip on a server).
    ///
    /// # Errors
    /// As [`AnyStore::get`].
    pub fn get_many<Q: AsKey>(&self, keys: &[Q]) -> Result<Vec<Option<V>>> {
        each!(self, s => s.get_many(keys))
    }

    /// True if `key` is stored.
    ///
    /// # Errors
    /// As [`AnyStore::get`].
    pub fn contains_key<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        each!(self, s => s.contains_key(key))
    }

    /// The number of entries.
    ///
    /// # Errors
    /// As [`AnyStore::get`].
    pub fn len(&self) -> Result<u64> {
        each!(self, s => s.len())
    }

    /// True when empty.
    ///
    /// # Errors
    /// As [`AnyStore::get`].
    pub fn is_empty(&self) -> Result<bool> {
        each!(self, s => s.is_empty())
    }

    /// Stores `value` under `key`; an overwrite keeps the key's place in insertion order.
    ///
    /// # Errors
    /// As [`DiskStore::insert`]; server errors.
    pub fn insert<Q: AsKey + ?Sized>(&self, key: &Q, value: &V) -> Result<()>
    where
        K: Borrow<Q>,
    {
        each!(self, s => s.insert(key, value))
    }

    /// Stores `value` only if `key` is absent (atomic); returns whether it was stored.
    ///
    /// # Errors
    /// As [`AnyStore::insert`].
    pub fn add<Q: AsKey + ?Sized>(&self, key: &Q, value: &V) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        each!(self, s => s.add(key, value))
    }

    /// The value of `key`, storing `default` first if absent (atomic).
    ///
    /// # Errors
    /// As [`AnyStore::insert`].
    pub fn get_or_insert<Q: AsKey + ?Sized>(&self, key: &Q, default: &V) -> Result<V>
    where
        K: Borrow<Q>,
    {
        each!(self, s => s.get_or_insert(key, default))
    }

    /// Removes `key` and returns its value (atomic).
    ///
    /// # Errors
    /// As [`AnyStore::insert`].
    pub fn remove<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        each!(self, s => s.remove(key))
    }

    /// Removes and returns the newest entry.
    ///
    /// # Errors
    /// As [`AnyStore::insert`].
    pub fn pop_last(&self) -> Result<Option<(K, V)>> {
        each!(self, s => s.pop_last())
    }

    /// Removes and returns the oldest entry.
    ///
    /// # Errors
    /// As [`AnyStore::insert`].
    pub fn pop_first(&self) -> Result<Option<(K, V)>> {
        each!(self, s => s.pop_first())
    }

    /// Stores many entries, all or nothing (one statement on PostgreSQL); returns how
    /// many were given.
    ///
    /// # Errors
    /// As [`AnyStore::insert`]; on error nothing of the batch is kept.
    pub fn extend<'a, Q: AsKey + 'a>(
        &self,
        items: impl IntoIterator<Item = (&'a Q, &'a V)>,
    ) -> Result<usize>
    where
        V: 'a,
    {
        each!(self, s => s.extend(items))
    }

    /// Every entry in insertion order (a page of rows per read).
    pub fn iter(&self) -> Box<dyn Iterator<Item = Result<(K, V)>> + '_> {
        each!(self, s => Box::new(s.iter()))
    }

    /// The keys in insertion order.
    pub fn keys(&self) -> Box<dyn Iterator<Item = Result<K>> + '_> {
        each!(self, s => Box::new(s.keys()))
    }

    /// Removes every entry.
    ///
    /// # Errors
    /// As [`AnyStore::insert`].
    pub fn clear(&self) -> Result<()> {
        each!(self, s => s.clear())
    }

    /// The backend's health check; `[]` when healthy.
    ///
    /// # Errors
    /// As [`AnyStore::get`].
    pub fn check(&self) -> Result<Vec<String>> {
        each!(self, s => s.check())
    }

    /// Begins a write transaction on this thread: every call of this store on this thread
    /// joins it until it commits; dropping it uncommitted rolls back. Nest work with
    /// [`AnyTransaction::savepoint`].
    ///
    /// # Errors
    /// As [`DiskStore::begin`]; server errors.
    pub fn begin(&self) -> Result<AnyTransaction<'_, K, V>> {
        Ok(match self {
            AnyStore::Sqlite(s) => AnyTransaction::Sqlite(s.begin()?),
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(s) => AnyTransaction::Postgres(s.begin()?),
        })
    }
}

/// One level of a write transaction of an [`AnyStore`] (from [`AnyStore::begin`] or
/// [`AnyTransaction::savepoint`]); rolls back when dropped uncommitted.
#[non_exhaustive]
pub enum AnyTransaction<'s, K, V> {
    /// On SQLite.
    Sqlite(WriteTransaction<'s, K, V>),
    /// On PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(PgTransaction<'s>),
}

impl<K: Key, V: Record> AnyTransaction<'_, K, V> {
    /// A nested level: its `commit` keeps its writes in the enclosing level, its drop
    /// or `rollback` undoes them alone.
    ///
    /// # Errors
    /// As [`AnyStore::begin`].
    pub fn savepoint(&self) -> Result<AnyTransaction<'_, K, V>> {
        Ok(match self {
            AnyTransaction::Sqlite(t) => AnyTransaction::Sqlite(t.savepoint()?),
            #[cfg(feature = "postgres")]
            AnyTransaction::Postgres(t) => AnyTransaction::Postgres(t.savepoint()?),
        })
    }

    /// Commits this level.
    ///
    /// # Errors
    /// Write and server errors (then nothing of the outermost level was committed).
    pub fn commit(self) -> Result<()> {
        match self {
            AnyTransaction::Sqlite(t) => t.commit(),
            #[cfg(feature = "postgres")]
            AnyTransaction::Postgres(t) => t.commit(),
        }
    }

    /// Rolls this level back.
    ///
    /// # Errors
    /// Write and server errors.
    pub fn rollback(self) -> Result<()> {
        match self {
            AnyTransaction::Sqlite(t) => t.rollback(),
            #[cfg(feature = "postgres")]
            AnyTransaction::Postgres(t) => t.rollback(),
        }
    }
}

/// A read-only store on any backend, opened by location with [`DiskRead::open_url`] or
/// [`Builder::open_read_only_url`](crate::Builder::open_read_only_url): the read methods
/// of [`DiskRead`] that every backend offers.
///
/// As on SQLite, opening read-only never creates or changes anything: the table must
/// exist with the record's columns. On PostgreSQL the server itself refuses writes on
/// its sessions (`default_transaction_read_only`), so the [`PgStore`] inside cannot
/// write either.
///
/// ```
/// # fn main() -> diskstore::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let location = dir.path().join("read.db");
/// # let location = location.to_str().unwrap();
/// use diskstore::{DiskRead, DiskStore};
/// DiskStore::<String, i64>::open_url(location)?.insert("a", &1)?;
/// // `location` may be a file path or (feature `postgres`) "postgresql://user@host/db".
/// let view = DiskRead::<String, i64>::open_url(location)?;
/// assert_eq!(view.get("a")?, Some(1));
/// # Ok(())
/// # }
/// ```
#[non_exhaustive]
pub enum AnyRead<K, V> {
    /// A store in an SQLite file, opened read-only.
    Sqlite(DiskRead<K, V>),
    /// A store on PostgreSQL, on read-only sessions.
    #[cfg(feature = "postgres")]
    Postgres(Box<PgStore<K, V>>),
}

/// Calls the same method on whichever backend the read-only store has.
macro_rules! each_read {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            AnyRead::Sqlite($s) => $body,
            #[cfg(feature = "postgres")]
            AnyRead::Postgres($s) => $body,
        }
    };
}

impl<K: Key, V: Record> AnyRead<K, V> {
    /// Which backend this store is on.
    pub fn backend(&self) -> Backend {
        match self {
            AnyRead::Sqlite(_) => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            AnyRead::Postgres(_) => Backend::Postgres,
        }
    }

    /// The value of `key`, or `None`.
    ///
    /// # Errors
    /// As [`DiskRead::get`]; server errors.
    pub fn get<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        each_read!(self, s => s.get(key))
    }

    /// The values of several keys (one round trip on a server).
    ///
    /// # Errors
    /// As [`AnyRead::get`].
    pub fn get_many<Q: AsKey>(&self, keys: &[Q]) -> Result<Vec<Option<V>>> {
        each_read!(self, s => s.get_many(keys))
    }

    /// True if `key` is stored.
    ///
    /// # Errors
    /// As [`AnyRead::get`].
    pub fn contains_key<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        each_read!(self, s => s.contains_key(key))
    }

    /// The number of entries.
    ///
    /// # Errors
    /// As [`AnyRead::get`].
    pub fn len(&self) -> Result<u64> {
        each_read!(self, s => s.len())
    }

    /// True when empty.
    ///
    /// # Errors
    /// As [`AnyRead::get`].
    pub fn is_empty(&self) -> Result<bool> {
        each_read!(self, s => s.is_empty())
    }

    /// Every entry in insertion order (a page of rows per read).
    pub fn iter(&self) -> Box<dyn Iterator<Item = Result<(K, V)>> + '_> {
        each_read!(self, s => Box::new(s.iter()))
    }

    /// The keys in insertion order.
    pub fn keys(&self) -> Box<dyn Iterator<Item = Result<K>> + '_> {
        each_read!(self, s => Box::new(s.keys()))
    }

    /// The backend's health check; `[]` when healthy.
    ///
    /// # Errors
    /// As [`AnyRead::get`].
    pub fn check(&self) -> Result<Vec<String>> {
        each_read!(self, s => s.check())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_opens_its_backend_or_says_why_not() {
        let err = DiskStore::<String, i64>::open_url("postgresql://u:pw@127.0.0.1:1/db").err();
        let err = err.expect("nothing listens on port 1");
        if cfg!(feature = "postgres") {
            assert!(matches!(err, Error::Connection { .. }), "{err:?}");
        } else {
            assert!(matches!(err, Error::NotSupported { .. }), "{err:?}");
            assert!(err.to_string().contains("`postgres` feature"), "{err}");
        }
        assert!(!err.to_string().contains("pw"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.db");
        let s = DiskStore::<String, i64>::open_url(path.to_str().unwrap()).unwrap();
        assert_eq!(s.backend(), Backend::Sqlite);
        s.insert("a", &1).unwrap();
        assert_eq!(
            DiskStore::<String, i64>::open(&path)
                .unwrap()
                .get("a")
                .unwrap(),
            Some(1)
        );
    }
}
