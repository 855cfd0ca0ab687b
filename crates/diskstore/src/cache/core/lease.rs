//! Compute leases for `get_or_insert_with`'s stampede protection.

use std::time::Duration;

use crate::error::Result;
use crate::key::KeyRef;

use super::CacheTable;

impl CacheTable {
    /// Takes the compute lease on `key` for `hold` (by the clock) unless someone else
    /// holds an unexpired one; returns whether it was taken. Leases live in the file, so
    /// they work across processes; one left by a crashed holder runs out after `hold`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; write errors.
    pub fn try_lease(&self, key: KeyRef<'_>, hold: Duration) -> Result<bool> {
        let key = key.checked()?;
        let now = self.now();
        let until = now.saturating_add(i64::try_from(hold.as_micros()).unwrap_or(i64::MAX));
        let name = &self.inner.name;
        self.atomic(|c| {
            c.prepare_cached(&self.inner.sql.lease_clear)?
                .execute(rusqlite::params![name, key, now])?;
            let n = c
                .prepare_cached(&self.inner.sql.lease_take)?
                .execute(rusqlite::params![name, key, until])?;
            Ok(n == 1)
        })
    }

    /// Gives back a lease taken with [`CacheTable::try_lease`].
    ///
    /// # Errors
    /// As [`CacheTable::try_lease`].
    pub fn release_lease(&self, key: KeyRef<'_>) -> Result<()> {
        let key = key.checked()?;
        self.atomic(|c| {
            c.prepare_cached(&self.inner.sql.lease_release)?
                .execute(rusqlite::params![&self.inner.name, key])?;
            Ok(())
        })
    }
}
