//! Large `Vec<u8>` values from the typed API without SQLite's own copy: see
//! [`DiskRead::get_blob`].

use std::borrow::Borrow;

use crate::error::Result;
use crate::key::{AsKey, Key};
use crate::store::DiskRead;
use crate::value::ValueRef;

impl<K: Key> DiskRead<K, Vec<u8>> {
    /// As [`DiskRead::get`], with one copy of a large value instead of two: a value of
    /// [`LARGE_VALUE`](crate::LARGE_VALUE) bytes or more is read by incremental blob I/O
    /// straight into the returned `Vec` (a plain `get` makes SQLite load it into a buffer
    /// of its own first). Writes of such values need nothing special: `insert` binds the
    /// caller's bytes and fills the row in place.
    ///
    /// # Errors
    /// As [`DiskRead::get`].
    pub fn get_blob<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<Option<Vec<u8>>>
    where
        K: Borrow<Q>,
    {
        let table = self.table();
        let k = key.as_key();
        loop {
            let found = table.get_located(k, |r| {
                Ok(match r.value(0)? {
                    ValueRef::Blob(b) => Some(b.to_vec()),
                    _ => None,
                })
            })?;
            let Some(found) = found else {
                return Ok(None);
            };
            let Some(at) = found.large else {
                return match found.row {
                    Some(v) => Ok(Some(v)),
                    // Not a blob: the ordinary decoding gives the error.
                    None => self.get(key),
                };
            };
            if at.is_text() {
                return self.get(key);
            }
            let mut buf = vec![0u8; at.len()];
            if table.read_located(k, &at, &mut buf)? {
                return Ok(Some(buf));
            }
        }
    }
}
