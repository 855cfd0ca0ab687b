//! Per-thread connections to one file, the in-process writer lock, and fork detection.
//!
//! Each thread gets its own SQLite connection, opened on first use with the store's
//! pragmas. A child process created by `fork()` never touches a connection it inherited:
//! an at-fork hook bumps a generation counter, and a connection from an older generation
//! is abandoned (leaked, not closed, as SQLite requires) and replaced.

use std::cell::{Cell, RefCell};
use std::ffi::c_int;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, Once};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, ffi};
use thread_local::ThreadLocal;

use crate::error::{Error, Result};
use crate::value::ValueRef;

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

fn fork_generation() -> u64 {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a handler that only performs an atomic increment, which is
        // async-signal-safe as the child side of pthread_atfork requires.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// The default pragmas of a read-write store: the original Python library's
/// `DEFAULT_PRAGMAS` (diskstore 0.7.0), applied in this order on every new connection.
pub const DEFAULT_PRAGMAS: &[(&str, &str)] = &[
    ("auto_vacuum", "0"),
    ("cache_size", "-32768"),
    ("page_size", "16384"),
    ("journal_mode", "wal"),
    ("mmap_size", "268435456"),
    ("synchronous", "1"),
    ("temp_store", "2"),
    ("wal_autocheckpoint", "5000"),
];

/// The default pragmas of a read-only store (the original's `DEFAULT_RO_PRAGMAS`).
pub const DEFAULT_RO_PRAGMAS: &[(&str, &str)] = &[
    ("cache_size", "-32768"),
    ("mmap_size", "268435456"),
    ("temp_store", "2"),
    ("synchronous", "1"),
];

/// The busy timeout unless one is set: the original's `TIMEOUT` (10 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the `PRAGMA` statements, refusing names and values that are not plain
/// identifiers, numbers or quoted strings, so that no SQL can ride along.
pub(crate) fn pragma_sql(pragmas: &[(String, String)]) -> Result<String> {
    let mut sql = String::new();
    for (name, value) in pragmas {
        let name_ok =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let v = value.trim();
        let value_ok = !v.is_empty()
            && (v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-+.".contains(c))
                || (v.len() >= 2
                    && v.starts_with('\'')
                    && v.ends_with('\'')
                    && !v[1..v.len() - 1].contains('\'')));
        if !name_ok || !value_ok {
            return Err(Error::Usage(format!("invalid pragma {name:?} = {value:?}")));
        }
        sql.push_str(&format!("PRAGMA {name} = {v};\n"));
    }
    Ok(sql)
}

/// True when a read-only connection cannot read a WAL-mode file because SQLite can neither
/// open nor create its `-shm` file (read-only media, a read-only folder) and no `-wal` file
/// holds data: then everything is in the main file, and SQLite's `immutable` mode reads it
/// without a `-shm`. (With a `-wal` that holds data, the error stands: immutable mode
/// would silently skip the committed transactions in it.)
fn needs_immutable(conn: &Connection, path: &Path) -> bool {
    let probe = conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()));
    // SQLite says CANTOPEN on a read-only mount and READONLY (can't initialise the
    // -shm) in a folder without write permission.
    let cannot_open = matches!(
        probe,
        Err(ref e) if matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
        )
    );
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    cannot_open && std::fs::metadata(wal).map_or(true, |m| m.len() == 0)
}

/// The `file:` URI of `path` with `immutable=1`, every byte outside the URI's plain
/// characters percent-encoded.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from(if path.is_absolute() {
        "file://"
    } else {
        "file:"
    });
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Statements of [`Connections::held`] reserved by the connection layer itself.
pub(crate) mod held {
    /// `BEGIN` (a read transaction).
    pub const BEGIN: usize = 0;
    /// `BEGIN IMMEDIATE` (a write transaction).
    pub const BEGIN_IMMEDIATE: usize = 1;
    /// `COMMIT`.
    pub const COMMIT: usize = 2;
    /// `ROLLBACK`.
    pub const ROLLBACK: usize = 3;
    /// The first id free for the table's own statements.
    pub const TABLE: usize = 4;
    /// How many ids the table's statements take (the cache's start after them).
    pub const TABLE_COUNT: usize = 12;
    /// The first id free for the cache's statements.
    pub const CACHE: usize = TABLE + TABLE_COUNT;
}

/// A statement prepared on a slot's connection. Its borrow of the connection is erased:
/// the slot keeps the connection boxed (it never moves) and drops or forgets every
/// statement before it drops, replaces or forgets the connection.
type HeldStatement = rusqlite::Statement<'static>;

/// The held statements of one slot, indexed by id, each with its SQLite handle (null
/// when it could not be found; see [`handle_of`]).
#[derive(Default)]
struct HeldList(Vec<Option<(HeldStatement, *mut ffi::sqlite3_stmt)>>);

/// A statement handed to the work of [`Connections::held`]: a rusqlite statement (it
/// derefs to one) that also binds text and blobs without copying them when it is held.
/// `'k` is a lifetime that outlives the whole `held` call, so bound data cannot be a
/// temporary of the work itself.
pub(crate) struct Prepared<'s, 'c, 'k> {
    st: &'s mut rusqlite::Statement<'c>,
    /// The statement's SQLite handle, or null: bind through rusqlite (a copy).
    raw: *mut ffi::sqlite3_stmt,
    _bound: PhantomData<&'k [u8]>,
}

impl<'s, 'c, 'k> Prepared<'s, 'c, 'k> {
    /// A statement that binds through rusqlite, which copies text and blobs.
    fn copying(st: &'s mut rusqlite::Statement<'c>) -> Self {
        Prepared {
            st,
            raw: std::ptr::null_mut(),
            _bound: PhantomData,
        }
    }

    /// Binds `value` to parameter `idx` (1-based). Text and blobs of a held statement
    /// are bound in place (`SQLITE_STATIC`): `held` clears the bindings before `'k` can end.
    pub(crate) fn bind(&mut self, idx: usize, value: ValueRef<'k>) -> Result<()> {
        let (ptr, len, text) = match value {
            ValueRef::Text(t) if !t.is_empty() => (t.as_ptr(), t.len(), true),
            ValueRef::Blob(b) if !b.is_empty() => (b.as_ptr(), b.len(), false),
            _ => (std::ptr::null(), 0, false),
        };
        let (Ok(col), false, false) = (c_int::try_from(idx), self.raw.is_null(), ptr.is_null())
        else {
            self.st.raw_bind_parameter(idx, value)?;
            return Ok(());
        };
        // SAFETY: `raw` is the live handle of `self.st`; the data outlives the statement's
        // use, since `held` clears the bindings before returning (see `'k`).
        let rc = unsafe {
            if text {
                ffi::sqlite3_bind_text64(
                    self.raw,
                    col,
                    ptr.cast(),
                    len as u64,
                    ffi::SQLITE_STATIC(),
                    ffi::SQLITE_UTF8 as u8,
                )
            } else {
                ffi::sqlite3_bind_blob64(
                    self.raw,
                    col,
                    ptr.cast(),
                    len as u64,
                    ffi::SQLITE_STATIC(),
                )
            }
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None).into())
        }
    }
}

impl<'c> std::ops::Deref for Prepared<'_, 'c, '_> {
    type Target = rusqlite::Statement<'c>;
    fn deref(&self) -> &Self::Target {
        self.st
    }
}

impl std::ops::DerefMut for Prepared<'_, '_, '_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.st
    }
}

/// The SQLite handle of `st`, a statement `conn` just prepared, or null if it cannot be
/// told apart. rusqlite does not expose it, so this walks the connection's statements and
/// picks the one whose SQL, with a marker bound to every parameter, matches `st`'s.
fn handle_of(conn: &Connection, st: &mut rusqlite::Statement<'_>) -> *mut ffi::sqlite3_stmt {
    static MARKER: AtomicU64 = AtomicU64::new(0x5eed_0000_0000);
    let n = st.parameter_count();
    if n == 0 {
        return std::ptr::null_mut();
    }
    let marker = MARKER.fetch_add(1, Ordering::Relaxed) as i64;
    if (1..=n).any(|i| st.raw_bind_parameter(i, marker).is_err()) {
        st.clear_bindings();
        return std::ptr::null_mut();
    }
    let ours = st.expanded_sql();
    let mut found = std::ptr::null_mut();
    if let Some(ours) = ours {
        // SAFETY: walks the statements of a connection used only by this thread; every
        // string SQLite returns is freed with sqlite3_free.
        unsafe {
            let db = conn.handle();
            let mut p = ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
            while !p.is_null() {
                let text = ffi::sqlite3_expanded_sql(p);
                if !text.is_null() {
                    let same = std::ffi::CStr::from_ptr(text).to_bytes() == ours.as_bytes();
                    ffi::sqlite3_free(text.cast());
                    if same {
                        found = p;
                        break;
                    }
                }
                p = ffi::sqlite3_next_stmt(db, p);
            }
        }
    }
    st.clear_bindings();
    found
}

// SAFETY: the statements belong to their slot's connection, which is `Send`; they move
// between threads only together with it (when the slots are dropped), and are only used
// by the thread that owns the slot.
unsafe impl Send for HeldList {}

struct Slot {
    /// Declared before `conn`, so that dropping a slot finalizes these first.
    statements: RefCell<HeldList>,
    conn: Option<Box<Connection>>,
    generation: u64,
    epoch: u64,
    /// Depth of write transactions this thread opened on `conn`.
    depth: Cell<u32>,
}

impl Slot {
    /// Gives up the connection and its statements: closed normally, or leaked when they
    /// were inherited across fork() (closing them could disturb the parent's locks).
    fn release(&mut self, inherited: bool) {
        let statements = std::mem::take(self.statements.get_mut());
        let conn = self.conn.take();
        if inherited {
            std::mem::forget(statements);
            std::mem::forget(conn);
        } else {
            drop(statements);
            drop(conn);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let inherited = self.generation != FORK_GENERATION.load(Ordering::Relaxed);
        self.release(inherited);
    }
}

/// How connections to one file are opened.
pub(crate) struct ConnectionConfig {
    pub path: PathBuf,
    pub read_only: bool,
    pub timeout: Duration,
    pub pragma_sql: String,
}

/// The connections of every thread to one file.
pub(crate) struct Connections {
    config: ConnectionConfig,
    slots: ThreadLocal<RefCell<Slot>>,
    epoch: AtomicU64,
    open_count: AtomicU64,
    writer: WriterLock,
}

impl Connections {
    pub fn new(config: ConnectionConfig) -> Connections {
        Connections {
            config,
            slots: ThreadLocal::new(),
            epoch: AtomicU64::new(0),
            open_count: AtomicU64::new(0),
            writer: WriterLock::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.config.path
    }

    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    pub fn read_only(&self) -> bool {
        self.config.read_only
    }

    fn open(&self) -> Result<Connection> {
        let c = &self.config;
        let flags = if c.read_only {
            if !c.path.exists() {
                return Err(Error::NotFound {
                    path: c.path.clone(),
                });
            }
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let mut conn = Connection::open_with_flags(&c.path, flags)?;
        if c.read_only && needs_immutable(&conn, &c.path) {
            conn = Connection::open_with_flags(
                immutable_uri(&c.path),
                flags | OpenFlags::SQLITE_OPEN_URI,
            )?;
        }
        crate::busy::install(&conn, c.timeout)?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.execute_batch(&c.pragma_sql)?;
        self.open_count.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    fn slot(&self) -> &RefCell<Slot> {
        self.slots.get_or(|| {
            RefCell::new(Slot {
                statements: RefCell::default(),
                conn: None,
                generation: 0,
                epoch: 0,
                depth: Cell::new(0),
            })
        })
    }

    /// Runs `f` with this thread's connection, opening it first if needed.
    pub fn with<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let cell = self.slot();
        let generation = fork_generation();
        let epoch = self.epoch.load(Ordering::Relaxed);
        {
            let slot = cell.borrow();
            if let Some(conn) = &slot.conn
                && slot.generation == generation
                && slot.epoch == epoch
            {
                return f(conn);
            }
        }
        {
            let mut slot = cell
                .try_borrow_mut()
                .map_err(|_| Error::Usage("connection reopened while in use".into()))?;
            let inherited = slot.generation != generation;
            slot.release(inherited);
            slot.depth.set(0);
            slot.conn = Some(Box::new(self.open()?));
            slot.generation = generation;
            slot.epoch = epoch;
        }
        let slot = cell.borrow();
        f(slot.conn.as_deref().expect("connection was just opened"))
    }

    /// Closes this thread's connection (it reopens on next use).
    pub fn close(&self) -> Result<()> {
        if let Some(cell) = self.slots.get() {
            let mut slot = cell
                .try_borrow_mut()
                .map_err(|_| Error::Usage("cannot close a connection that is in use".into()))?;
            if slot.depth.get() > 0 {
                return Err(Error::Usage("cannot close inside a transaction".into()));
            }
            let inherited = slot.generation != fork_generation();
            slot.release(inherited);
        }
        Ok(())
    }

    /// Runs `f` with statement `id` of this thread's connection `conn` (the one handed
    /// out by [`Connections::with`]), preparing `sql` on first use and keeping it
    /// prepared for the next call. This skips the statement cache's hashing of the SQL
    /// text on every call. Each `id` must always come with the same `sql`.
    pub fn held<'k, R>(
        &self,
        conn: &Connection,
        id: usize,
        sql: &str,
        f: impl FnOnce(&mut Prepared<'_, '_, 'k>) -> Result<R>,
    ) -> Result<R> {
        let slot = self.slot().borrow();
        let Some(own) = slot.conn.as_deref().filter(|c| std::ptr::eq(*c, conn)) else {
            let mut st = conn.prepare_cached(sql)?;
            return f(&mut Prepared::copying(&mut st));
        };
        // Taken out while in use, so that a nested use of the same id prepares its own.
        let taken = slot
            .statements
            .borrow_mut()
            .0
            .get_mut(id)
            .and_then(Option::take);
        let (mut st, raw) = match taken {
            Some(held) => held,
            None => {
                let mut st = own.prepare(sql)?;
                let raw = handle_of(own, &mut st);
                // SAFETY: `own` is boxed in the slot and outlives the statement (see
                // `HeldStatement`); the statement is only used on this thread.
                let st =
                    unsafe { std::mem::transmute::<rusqlite::Statement<'_>, HeldStatement>(st) };
                (st, raw)
            }
        };
        let result = f(&mut Prepared {
            st: &mut st,
            raw,
            _bound: PhantomData,
        });
        // Text and blobs were bound without a copy (see `Prepared::bind`): the data lives
        // until this call returns, and no pointer to it may stay behind.
        st.clear_bindings();
        let list = &mut slot.statements.borrow_mut().0;
        if list.len() <= id {
            list.resize_with(id + 1, || None);
        }
        list[id] = Some((st, raw));
        result
    }

    /// Makes every thread reopen its connection on next use and closes this thread's one;
    /// returns how many connections had been opened since the previous call.
    pub fn close_all(&self) -> Result<u64> {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        self.close()?;
        Ok(self.open_count.swap(0, Ordering::Relaxed))
    }

    /// The depth of write transactions open on this thread.
    pub fn depth(&self) -> u32 {
        self.slots.get().map_or(0, |s| s.borrow().depth.get())
    }

    fn set_depth(&self, depth: u32) {
        self.slot().borrow().depth.set(depth);
    }

    /// Runs one write: inside this thread's transaction if one is open, otherwise as an
    /// autocommitted statement under the in-process writer lock.
    pub fn write<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        if self.depth() > 0 {
            return self.with(f);
        }
        self.check_writable()?;
        let _guard = self.writer.lock(self.config.timeout, self.path())?;
        self.with(f)
    }

    /// Runs `f` atomically: joins this thread's transaction, or opens one around `f`.
    pub fn atomic<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let owner = self.begin()?;
        let result = self.with(f);
        let end = self.end(owner, result.is_ok());
        let value = result?;
        end?;
        Ok(value)
    }

    /// Runs several reads in one read transaction (unless one is already open), so that
    /// they see one snapshot and pay the file-lock system calls once.
    pub fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.with(|conn| {
            if !conn.is_autocommit() {
                return f(conn);
            }
            self.run(conn, held::BEGIN, "BEGIN")?;
            let result = f(conn);
            let ended = if result.is_ok() {
                self.run(conn, held::COMMIT, "COMMIT")
            } else {
                self.run(conn, held::ROLLBACK, "ROLLBACK")
            };
            let value = result?;
            ended?;
            Ok(value)
        })
    }

    /// Runs a held statement that takes no parameters and returns no rows.
    fn run(&self, conn: &Connection, id: usize, sql: &str) -> Result<()> {
        self.held(conn, id, sql, |st| {
            st.raw_execute()?;
            Ok(())
        })
    }

    fn check_writable(&self) -> Result<()> {
        if self.config.read_only {
            return Err(Error::ReadOnly {
                path: self.config.path.clone(),
                message: "the store was opened read-only".into(),
            });
        }
        Ok(())
    }

    /// Opens a write transaction (`BEGIN IMMEDIATE`) or joins the one open on this thread.
    /// Returns true when this call opened it and so must end it.
    pub fn begin(&self) -> Result<bool> {
        let depth = self.depth();
        if depth > 0 {
            self.set_depth(depth + 1);
            return Ok(false);
        }
        self.check_writable()?;
        let guard = self.writer.lock(self.config.timeout, self.path())?;
        self.with(|conn| self.run(conn, held::BEGIN_IMMEDIATE, "BEGIN IMMEDIATE"))?;
        std::mem::forget(guard); // released by `end`
        self.set_depth(1);
        Ok(true)
    }

    /// Ends what [`Connections::begin`] started: the owner commits (or rolls back), a
    /// joined level only counts down. A failed commit rolls back.
    pub fn end(&self, owner: bool, commit: bool) -> Result<()> {
        let depth = self.depth();
        if depth == 0 {
            return Err(Error::Usage("no transaction is open on this thread".into()));
        }
        self.set_depth(depth - 1);
        if !owner {
            return Ok(());
        }
        let result = self.with(|conn| {
            if conn.is_autocommit() {
                return Ok(()); // SQLite already rolled back (e.g. after a full disk)
            }
            if commit {
                if let Err(e) = self.run(conn, held::COMMIT, "COMMIT") {
                    let _ = self.run(conn, held::ROLLBACK, "ROLLBACK");
                    return Err(e);
                }
                Ok(())
            } else {
                self.run(conn, held::ROLLBACK, "ROLLBACK")
            }
        });
        self.writer.unlock();
        result
    }
}

/// Serialises writers inside this process, so that the busy handler (`busy.rs`) is only
/// reached by contention between processes.
#[derive(Default)]
struct WriterLock {
    state: Mutex<LockState>,
    freed: Condvar,
}

#[derive(Default)]
struct LockState {
    /// The holding thread and the fork generation it took the lock in.
    owner: Option<(ThreadId, u64)>,
    /// Threads waiting in `lock` (so that an uncontended unlock makes no wake-up syscall).
    waiters: usize,
}

struct WriterGuard<'a>(&'a WriterLock);

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

impl WriterLock {
    fn lock(&self, timeout: Duration, path: &Path) -> Result<WriterGuard<'_>> {
        let me = std::thread::current().id();
        let generation = fork_generation();
        let start = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match state.owner {
                // A holder from before fork() does not exist in this process.
                Some((_, g)) if g != generation => break,
                None => break,
                Some((t, _)) if t == me => {
                    return Err(Error::Usage("writer lock taken twice by one thread".into()));
                }
                Some(_) => {}
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(Error::Busy {
                    path: path.to_owned(),
                    waited,
                });
            }
            state.waiters += 1;
            state = self
                .freed
                .wait_timeout(state, timeout - waited)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            state.waiters -= 1;
        }
        state.owner = Some((me, generation));
        Ok(WriterGuard(self))
    }

    fn unlock(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.owner = None;
        if state.waiters > 0 {
            self.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_uris_encode_every_special_byte() {
        assert_eq!(
            immutable_uri(Path::new("/a b/x?y#%.db")),
            "file:///a%20b/x%3Fy%23%25.db?immutable=1"
        );
        assert_eq!(
            immutable_uri(Path::new("rel.db")),
            "file:rel.db?immutable=1"
        );
    }

    #[test]
    fn pragma_values_cannot_inject_sql() {
        let ok = pragma_sql(&[("cache_size".into(), "-2000".into())]).unwrap();
        assert_eq!(ok, "PRAGMA cache_size = -2000;\n");
        assert!(pragma_sql(&[("x; DROP TABLE t".into(), "1".into())]).is_err());
        assert!(pragma_sql(&[("cache_size".into(), "1; DROP TABLE t".into())]).is_err());
        assert!(pragma_sql(&[("journal_mode".into(), "'wal''".into())]).is_err());
    }

    #[test]
    fn handle_of_picks_this_statement_among_twins() {
        let conn = Connection::open_in_memory().unwrap();
        let sql = "SELECT ?1, ?2";
        let mut older = conn.prepare(sql).unwrap();
        let mut st = conn.prepare(sql).unwrap();
        let newer = conn.prepare(sql).unwrap();
        assert!(!handle_of(&conn, &mut older).is_null());
        let raw = handle_of(&conn, &mut st);
        assert!(!raw.is_null());
        // Binding through the handle shows on `st` alone.
        let text = "bound in place";
        let mut p = Prepared {
            st: &mut st,
            raw,
            _bound: PhantomData,
        };
        p.bind(1, ValueRef::Text(text)).unwrap();
        p.bind(2, ValueRef::Blob(b"\x01")).unwrap();
        assert_eq!(st.expanded_sql().unwrap(), "SELECT 'bound in place', x'01'");
        assert_eq!(newer.expanded_sql().unwrap(), "SELECT NULL, NULL");
        // No parameters: nothing to bind, no handle needed.
        let mut none = conn.prepare("SELECT 1").unwrap();
        assert!(handle_of(&conn, &mut none).is_null());
    }
}
