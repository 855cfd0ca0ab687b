//! One connection per (file, thread) for reads, and one writer connection per file for
//! every write of the process, shared by every handle and table of that file, with each
//! thread's transaction state beside them.
//!
//! Each thread gets its own SQLite connection to a file, opened on first use with the
//! store's pragmas; it serves the thread's reads outside a write transaction. Writes
//! (autocommitted, grouped, and whole write transactions, reads inside them included) run
//! on the file's writer connection (`writer_conn.rs`), used by whichever thread holds the
//! in-process writer lock: its page cache stays warm from one thread's write to the next
//! (a connection's cache is emptied at the start of a transaction when another connection
//! committed since). Every [`Table`](crate::Table) of the file opened with the same settings
//! (read-only flag, timeout, pragmas) shares them, so a write through one handle inside
//! another handle's transaction joins that transaction instead of waiting for itself.
//!
//! The rules that keep acknowledged writes safe:
//! - a connection is replaced (after [`FileConnections::close_all`], or a fork) only when
//!   nothing runs on it and no transaction is open on it: `close_all()` marks connections
//!   stale, each thread swaps its own at its next call that starts outside one, and the
//!   writer connection is swapped by the next lock holder that finds it idle;
//! - a write transaction owns the file's in-process writer lock (see `writer.rs`) from
//!   `BEGIN IMMEDIATE` until it ends, and ends on every path (commit, rollback, error,
//!   unwind), because every level is closed by a guard; the writer connection is reached
//!   only with that lock's guard, and a thread that still uses it when its transaction ends
//!   (a query cursor) keeps it for itself while the file opens another;
//! - a transaction SQLite rolled back by itself (a full disk, an I/O error) fails every
//!   later write and its commit, instead of letting later writes autocommit;
//! - a child of `fork()` never uses an inherited connection (its own nor the writer
//!   connection), and does not inherit a transaction: it is outside any, and leaving a
//!   block the parent had open is a no-op;
//! - cached counts (`count.rs`) are stamped with the mark of the connection they were read
//!   on, and a write carries a count along only on the connection it ran on, whichever
//!   thread ran it: the mark of the connection a call runs on moves on rollbacks and
//!   failures;
//! - a read-only file has no writer connection, and a private database (`:memory:`, `""`),
//!   being one per connection, is written on each thread's own.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use thread_local::ThreadLocal;

use crate::checkpoint::Checkpointer;
use crate::error::{Error, Result, folder_of};
use crate::fork;
use crate::group;
use crate::statement::{Namespace, Prepared, held, with_fresh, with_held};
use crate::writer::{Holds, WriterGuard, WriterLock};
use crate::writer_conn::{self, ConnSlot, SharedWriter};

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

/// Runs every statement of `sql` to its end. (`execute_batch` stops a statement after its
/// first row, and SQLite commits a statement's transaction only at its end, reporting a
/// failed commit to a finalize whose error is dropped: `PRAGMA journal_mode = wal`
/// returns a row, so a failed switch of a new file to WAL went unnoticed and the
/// connection wrote in rollback-journal mode; found by the power-loss suite.)
fn run_to_end(conn: &Connection, sql: &str) -> Result<()> {
    use rusqlite::fallible_iterator::FallibleIterator;
    let mut batch = rusqlite::Batch::new(conn, sql);
    while let Some(mut stmt) = batch.next()? {
        let mut rows = stmt.raw_query();
        while rows.next()?.is_some() {}
    }
    Ok(())
}

/// How connections to one file are opened.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ConnectionConfig {
    pub path: PathBuf,
    pub read_only: bool,
    pub timeout: Duration,
    pub pragma_sql: String,
}

/// Which file a path names: device, inode and birth time (so that a file deleted and
/// re-created under the same inode number is another file).
#[derive(Clone, PartialEq, Eq, Debug)]
struct FileId {
    dev: u64,
    ino: u64,
    born: Option<std::time::SystemTime>,
}

impl FileId {
    fn of(path: &Path) -> std::io::Result<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
            born: m.created().ok(),
        })
    }
}

/// True for SQLite's names of a private database: `""` (a temporary file) and `:memory:`,
/// where every connection opens a database of its own.
fn is_private(path: &Path) -> bool {
    path.as_os_str().is_empty() || path.as_os_str() == ":memory:"
}

/// Makes sure a read-write store's file exists (an empty file is an empty database), so
/// that a bad path fails here, with the error that names it, and the file can be
/// identified before any connection opens.
fn ensure_file(config: &ConnectionConfig) -> Result<()> {
    let path = &config.path;
    if path.exists() {
        return Ok(());
    }
    if config.read_only || !folder_of(path).is_dir() {
        return Err(Error::NotFound { path: path.clone() });
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                || e.raw_os_error() == Some(libc::EROFS) =>
        {
            Err(Error::ReadOnly {
                path: path.clone(),
                message: format!("the file cannot be created: {e}"),
            })
        }
        Err(source) => Err(Error::Io {
            path: path.clone(),
            source,
        }),
    }
}

/// A thread's own connection and its transaction state on the file.
struct Slot {
    /// The thread's own connection: its reads outside a write transaction (and, for a
    /// private database, everything).
    own: ConnSlot,
    /// The fork generation this state belongs to.
    generation: Cell<u64>,
    /// Write-transaction levels open on this thread (1 = the one that ran `BEGIN`).
    depth: Cell<u32>,
    /// Read-transaction levels open on this thread.
    reading: Cell<u32>,
    /// The writer lock, held from `BEGIN IMMEDIATE` to the end of the transaction.
    writer: RefCell<Option<WriterGuard>>,
    /// Write-transaction levels open in the parent when this child was forked: nothing
    /// of them exists here (the child is outside any transaction), but their blocks may
    /// still end, each ending one of these.
    inherited: Cell<u32>,
    /// The connection the innermost call of this thread runs on now (its own or the
    /// file's writer connection): what `held`, `mark` and `touch` refer to.
    active: Cell<Option<NonNull<ConnSlot>>>,
    /// Writer connections this thread took for itself because a call or a pin of it still
    /// used one when its transaction ended (see [`SharedWriter::detach`]); freed once
    /// nothing uses them.
    retired: RefCell<Vec<NonNull<ConnSlot>>>,
}

// SAFETY: a slot is used only by the thread it belongs to (ThreadLocal hands each thread
// its own); it moves to another thread only when its FileConnections is dropped, when no
// thread can be using it. Its retired connection slots are its own.
unsafe impl Send for Slot {}

impl Slot {
    fn new() -> Slot {
        Slot {
            own: ConnSlot::new(true),
            generation: Cell::new(fork::current()),
            depth: Cell::new(0),
            reading: Cell::new(0),
            writer: RefCell::new(None),
            inherited: Cell::new(0),
            active: Cell::new(None),
            retired: RefCell::new(Vec::new()),
        }
    }

    /// Frees the retired connections nothing uses any more.
    fn sweep_retired(&self) {
        let mut retired = self.retired.borrow_mut();
        retired.retain(|p| {
            // SAFETY: retired slots stay allocated until freed here or on drop.
            let unused = unsafe { p.as_ref() }.in_use.get() == 0;
            if unused {
                // SAFETY: nothing uses it (no call, no pin).
                unsafe { writer_conn::free(*p) };
            }
            !unused
        });
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        for p in self.retired.take() {
            // SAFETY: the thread is gone or its FileConnections is dropped: no user left.
            unsafe { writer_conn::free(p) };
        }
    }
}

/// Sets the thread's active connection for the length of a call (restored on unwind).
struct Active<'a> {
    slot: &'a Slot,
    previous: Option<NonNull<ConnSlot>>,
    generation: u64,
}

impl<'a> Active<'a> {
    fn set(slot: &'a Slot, cs: &ConnSlot) -> Active<'a> {
        let previous = slot.active.replace(Some(NonNull::from(cs)));
        Active {
            slot,
            previous,
            generation: slot.generation.get(),
        }
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        // A fork() inside the call left the child nothing of the parent's to go back to.
        if self.slot.generation.get() == self.generation {
            self.slot.active.set(self.previous);
        }
    }
}

/// Decrements a counter when dropped (on unwind too).
struct CountDown<'a>(&'a Cell<u32>);

impl Drop for CountDown<'_> {
    fn drop(&mut self) {
        // Saturating: a fork() inside the call resets the count in the child.
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// The connections of every thread to one file, with one set of settings; shared by all
/// tables of that file opened with those settings.
pub(crate) struct FileConnections {
    config: ConnectionConfig,
    slots: ThreadLocal<Slot>,
    /// The file's writer connection, used by every thread holding the writer lock (after
    /// `slots`: the threads' connections close first). Unused when `shares_writer` is
    /// false.
    shared: SharedWriter,
    /// True for a read-write file that is not a private database: writes go through
    /// `shared`. (A read-only file has no writer; a private database is one per
    /// connection, so each thread writes on its own.)
    shares_writer: bool,
    /// Bumped by `close_all`: connections of an older epoch are swapped when idle.
    epoch: AtomicU64,
    /// Connections opened in the current epoch (what `close_all` closes).
    current: AtomicU64,
    writer: Arc<WriterLock>,
    /// Statement namespaces of the open table handles: entry `i` is namespace `i + 1`,
    /// with its current generation and whether a handle holds it.
    namespaces: Mutex<Vec<(u64, bool)>>,
    /// The background checkpointer of a read-write file (after `slots`: it outlives the
    /// connections whose WAL hook points at it).
    checkpointer: Option<Arc<Checkpointer>>,
    /// Pragmas set since open by [`Connections::set_pragma`] (name, statement), run again
    /// on a new writer connection; cleared by `close_all`. Locked only inside the fork
    /// gate.
    writer_pragmas: Mutex<Vec<(String, String)>>,
}

impl Drop for FileConnections {
    fn drop(&mut self) {
        // The thread's connection closes first, so that the last of ours, closing next,
        // checkpoints and removes the WAL as it always did.
        if let Some(ck) = &self.checkpointer {
            ck.stop();
        }
    }
}

type Registry = Mutex<Vec<((FileId, ConnectionConfig), Weak<FileConnections>)>>;

impl FileConnections {
    /// The connections of the file `config` names, shared with every other open handle of
    /// the same file and settings. A read-write store's file is created if missing.
    fn shared(config: ConnectionConfig) -> Result<Arc<FileConnections>> {
        static REGISTRY: Registry = Mutex::new(Vec::new());
        if is_private(&config.path) {
            // Every connection is its own database: nothing to share, no file to name.
            let lock = Arc::new(WriterLock::default());
            return Ok(Arc::new(FileConnections::new(config, lock)));
        }
        ensure_file(&config)?;
        let id = FileId::of(&config.path).map_err(|source| Error::Io {
            path: config.path.clone(),
            source,
        })?;
        let mut registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        registry.retain(|(_, w)| w.strong_count() > 0);
        // The path itself may be spelt differently by two handles: the file id decides.
        let found = registry.iter().find_map(|((fid, c), w)| {
            let same = *fid == id
                && c.read_only == config.read_only
                && c.timeout == config.timeout
                && c.pragma_sql == config.pragma_sql;
            same.then(|| w.upgrade()).flatten()
        });
        if let Some(file) = found {
            return Ok(file);
        }
        let lock_key = PathBuf::from(format!("{}:{}", id.dev, id.ino));
        let file = Arc::new(FileConnections::new(
            config.clone(),
            WriterLock::of(&lock_key),
        ));
        registry.push(((id, config), Arc::downgrade(&file)));
        Ok(file)
    }

    fn new(config: ConnectionConfig, writer: Arc<WriterLock>) -> FileConnections {
        let shares_writer = !config.read_only && !is_private(&config.path);
        let checkpointer = shares_writer.then(|| Checkpointer::new(config.path.clone()));
        FileConnections {
            checkpointer,
            shared: SharedWriter::new(),
            shares_writer,
            writer,
            config,
            slots: ThreadLocal::new(),
            epoch: AtomicU64::new(0),
            current: AtomicU64::new(0),
            namespaces: Mutex::new(Vec::new()),
            writer_pragmas: Mutex::new(Vec::new()),
        }
    }

    /// A statement namespace for a new table handle (a free one again, in a new generation).
    fn claim_namespace(&self) -> Namespace {
        let mut names = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        let index = match names.iter().position(|(_, used)| !used) {
            Some(i) => i,
            None => {
                names.push((0, false));
                names.len() - 1
            }
        };
        let entry = &mut names[index];
        *entry = (entry.0 + 1, true);
        Namespace {
            index: index + 1,
            generation: entry.0,
        }
    }

    fn release_namespace(&self, ns: Namespace) {
        let mut names = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = names.get_mut(ns.index - 1) {
            entry.1 = false;
        }
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
        run_to_end(&conn, &c.pragma_sql)?;
        if let Some(ck) = &self.checkpointer {
            ck.install(&conn)?;
        }
        Ok(conn)
    }

    /// This thread's slot, having given up what it inherited across a fork().
    #[inline]
    fn slot(&self) -> &Slot {
        let slot = self.slots.get_or(Slot::new);
        Self::adopt_fork(slot);
        slot
    }

    /// In a child of fork(), gives up what the slot inherited: the connection is never
    /// touched again, and a transaction open at the fork does not exist here (the child is
    /// outside any transaction; its blocks may still end, as no-ops).
    ///
    /// Compares with `fork::current()`: the at-fork handlers that move it are installed
    /// when the first connection opens (`connection`), and before that a slot has nothing
    /// a child could inherit.
    #[inline]
    fn adopt_fork(slot: &Slot) {
        let generation = fork::current();
        if slot.generation.get() != generation {
            Self::give_up_inherited(slot, generation);
        }
    }

    /// [`Self::adopt_fork`]'s work in a child of fork().
    #[cold]
    fn give_up_inherited(slot: &Slot, generation: u64) {
        slot.generation.set(generation);
        slot.own.adopt_fork(generation);
        // Their connections are leaked by their drop (inherited); nothing of the
        // parent's calls or pins runs here.
        for p in slot.retired.take() {
            // SAFETY: no call or pin of this process uses an inherited slot.
            unsafe { writer_conn::free(p) };
        }
        slot.active.set(None);
        // The parent's lock: never unlocked from here (its mutex may be mid-use).
        if let Some(guard) = slot.writer.replace(None) {
            std::mem::forget(guard);
        }
        slot.reading.set(0);
        slot.inherited
            .set(slot.inherited.get() + slot.depth.replace(0));
    }

    /// The connection of `cs`, (re)opened if it is missing or stale after `close_all`
    /// and idle (never while `keep`: a transaction of this thread is open on it).
    fn connection(&self, cs: &ConnSlot, keep: bool) -> Result<NonNull<Connection>> {
        let epoch = self.epoch.load(Ordering::Relaxed);
        if let Some(c) = cs.conn.get() {
            // SAFETY: the slot's live connection; only this thread uses it now.
            if cs.epoch.get() == epoch || keep || !cs.idle(unsafe { c.as_ref() }) {
                return Ok(c);
            }
            cs.release(false);
        }
        let conn = self.open()?;
        if !cs.counted && self.shares_writer {
            // The writer connection: the settings changed since open (`set_pragma`).
            let set = self
                .writer_pragmas
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (_, sql) in set.iter() {
                run_to_end(&conn, sql)?;
            }
        }
        let ptr = NonNull::from(Box::leak(Box::new(conn)));
        cs.bump();
        cs.conn.set(Some(ptr));
        cs.epoch.set(epoch);
        cs.generation.set(fork::generation());
        if cs.counted {
            self.current.fetch_add(1, Ordering::Relaxed);
        }
        Ok(ptr)
    }

    /// The connection slot a call of this thread runs on: the file's writer connection
    /// inside this thread's write transaction (whose guard this thread holds), else the
    /// thread's own.
    fn route<'s>(&'s self, slot: &'s Slot) -> Result<&'s ConnSlot> {
        if slot.depth.get() == 0 || !self.shares_writer {
            return Ok(&slot.own);
        }
        let writer = slot.writer.borrow();
        let cs = writer
            .as_ref()
            .and_then(|g| self.shared.get(&self.writer, g))
            .map(NonNull::from)
            .ok_or_else(|| Error::Usage("the write transaction lost its writer lock".into()))?;
        // SAFETY: the slot stays allocated while this thread holds the guard (kept in
        // `slot.writer` until `end`), and after that too while a call or pin uses it:
        // `end` then hands it to this thread (`SharedWriter::detach`).
        Ok(unsafe { cs.as_ref() })
    }

    /// The connection slot this thread's innermost call runs on, or would run on now.
    fn current(&self) -> &ConnSlot {
        let slot = self.slot();
        if let Some(p) = slot.active.get() {
            // SAFETY: set by a call still running on this thread (see `run_on`), which
            // keeps the slot allocated.
            return unsafe { p.as_ref() };
        }
        self.route(slot).unwrap_or(&slot.own)
    }

    /// Runs `f` with the connection this thread uses now (see [`Self::route`]).
    fn with<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let slot = self.slot();
        if !slot.retired.borrow().is_empty() {
            slot.sweep_retired();
        }
        let cs = self.route(slot)?;
        let keep = slot.depth.get() > 0 || slot.reading.get() > 0;
        self.run_on(slot, cs, keep, f)
    }

    /// Runs `f`, one lookup that ends within the call (no read transaction left open, no
    /// statement kept), on the writer connection when its lock is free now and no writer
    /// waits for it (taken for the length of `f` only), else as [`Self::with`]. A thread that both writes and reads then
    /// stays on one connection, as it did before writes moved to the shared one: its page
    /// cache stays warm and cached counts carry over its writes (measured with the seed's
    /// benchmark, mixed gets and sets on one thread: get P99 3.1 µs on one connection, 5.8 µs
    /// alternating between two).
    ///
    /// The lock is borrowed without its mutex (one compare-and-swap each way, see
    /// `WriterLock::try_lookup`): a lookup costs about what it cost on the thread's own
    /// connection.
    fn with_lookup<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        // Outside the fork gate until `run_on`: a child of fork() treats a lookup's hold
        // as gone (it carries the generation), and the release enters the gate before it
        // takes the lock's mutex.
        let slot = self.slot();
        let plain = slot.depth.get() == 0 && slot.reading.get() == 0 && slot.active.get().is_none();
        if self.shares_writer
            && plain
            && self.ensure_own(slot).is_ok()
            && let Some(guard) = self.writer.try_lookup(slot.generation.get())
        {
            let ws = self.write_slot(slot, &guard)?;
            let r = self.run_on(slot, ws, false, f);
            self.discard_if_still_open(slot, ws);
            drop(guard);
            return r;
        }
        self.with(f)
    }

    /// Runs `f` with the connection of `cs`, opening it first if needed, as this thread's
    /// active connection.
    fn run_on<R>(
        &self,
        slot: &Slot,
        cs: &ConnSlot,
        keep: bool,
        f: impl FnOnce(&Connection) -> Result<R>,
    ) -> Result<R> {
        let _inside = fork::enter();
        let conn = self.connection(cs, keep)?;
        cs.in_use.set(cs.in_use.get() + 1);
        let _done = CountDown(&cs.in_use);
        let _active = Active::set(slot, cs);
        // SAFETY: the connection stays open while `in_use > 0` (it is only released idle).
        let result = f(unsafe { conn.as_ref() });
        if result.is_err() {
            // A failed statement may have been rolled back, or its transaction with it.
            cs.bump();
        }
        result
    }

    /// The writer connection for the holder of `guard` (this thread's own for a private
    /// database).
    fn write_slot<'g>(&'g self, slot: &'g Slot, guard: &'g impl Holds) -> Result<&'g ConnSlot> {
        if !self.shares_writer {
            return Ok(&slot.own);
        }
        self.shared
            .get(&self.writer, guard)
            .ok_or_else(|| Error::Usage("the writer lock held is not this file's".into()))
    }

    /// Opens this thread's own connection if it has none (in this epoch) before a write:
    /// a thread that only writes still has one, as it had before writes moved to the
    /// writer connection, so that `close_all` counts (and closes) one per thread that used
    /// the file, as the original does. Once per thread and epoch.
    #[inline]
    fn ensure_own(&self, slot: &Slot) -> Result<()> {
        let fresh = slot.own.conn.get().is_some()
            && slot.own.epoch.get() == self.epoch.load(Ordering::Relaxed);
        if !fresh {
            let _inside = fork::enter();
            self.connection(&slot.own, slot.reading.get() > 0)?;
        }
        Ok(())
    }

    /// Closes `cs`'s connection now if it is idle; true if it closed one.
    fn close_idle(&self, cs: &ConnSlot) -> bool {
        let Some(c) = cs.conn.get() else {
            return false;
        };
        // SAFETY: the slot's live connection, not used by any other thread now.
        if !cs.idle(unsafe { c.as_ref() }) {
            return false;
        }
        if cs.counted && cs.epoch.get() == self.epoch.load(Ordering::Relaxed) {
            let _ = self
                .current
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        cs.release(false);
        true
    }

    /// Closes the file's writer connection if the lock is free and it is idle (it
    /// reopens on the next write).
    fn close_writer_if_idle(&self) {
        if !self.shares_writer {
            return;
        }
        if let Ok(Some(guard)) = self.writer.try_lock(&self.config.path) {
            let _inside = fork::enter();
            if let Some(cs) = self.shared.get(&self.writer, &guard) {
                self.close_idle(cs);
            }
        }
    }

    /// Closes this thread's connection (it reopens on next use), and the file's writer
    /// connection if no thread uses it.
    fn close(&self) -> Result<()> {
        let Some(slot) = self.slots.get() else {
            self.close_writer_if_idle();
            return Ok(());
        };
        Self::adopt_fork(slot);
        if slot.depth.get() > 0 || slot.reading.get() > 0 {
            return Err(Error::Usage("cannot close inside a transaction".into()));
        }
        if slot.own.in_use.get() > 0 {
            return Err(Error::Usage(
                "cannot close a connection that is in use".into(),
            ));
        }
        // The checkpointer's connection goes first: if this one is the last of ours, its
        // close then checkpoints and removes the WAL, as it did without the thread.
        if let Some(ck) = &self.checkpointer {
            ck.stop();
        }
        slot.sweep_retired();
        if slot.own.conn.get().is_some() {
            let _inside = fork::enter();
            self.close_idle(&slot.own);
        }
        self.close_writer_if_idle();
        Ok(())
    }

    /// Marks every connection stale (each is replaced at its next use made outside a
    /// transaction) and closes this thread's one and the file's writer connection now if
    /// they are idle. Returns how many threads' connections were open in the epoch it
    /// ends (the writer connection is not counted: the original counts one per thread).
    fn close_all(&self) -> u64 {
        if let Some(ck) = &self.checkpointer {
            ck.stop();
        }
        {
            let _inside = fork::enter();
            self.writer_pragmas
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        self.epoch.fetch_add(1, Ordering::Relaxed);
        let n = self.current.swap(0, Ordering::Relaxed);
        if let Some(slot) = self.slots.get() {
            Self::adopt_fork(slot);
            slot.sweep_retired();
            if let Some(c) = slot.own.conn.get()
                // SAFETY: this thread's live connection.
                && slot.own.idle(unsafe { c.as_ref() })
                && slot.reading.get() == 0
            {
                slot.own.release(false);
            }
        }
        if self.shares_writer
            && let Ok(Some(guard)) = self.writer.try_lock(&self.config.path)
            && let Some(cs) = self.shared.get(&self.writer, &guard)
            && let Some(c) = cs.conn.get()
            // SAFETY: the writer connection; this thread holds the writer lock.
            && cs.idle(unsafe { c.as_ref() })
        {
            let _inside = fork::enter();
            cs.release(false);
        }
        n
    }

    /// Runs the pragma statement `sql` (setting `name`) on the file's writer connection
    /// (under the writer lock, or in this thread's transaction) and on this thread's own
    /// connection, and keeps it for the writer connection's next opening.
    fn set_pragma(&self, name: &str, sql: &str) -> Result<()> {
        let slot = self.slot();
        if self.shares_writer {
            let held;
            let ws = if slot.depth.get() > 0 {
                self.route(slot)?
            } else {
                self.ensure_own(slot)?;
                held = self.writer.lock(self.config.timeout, &self.config.path)?;
                self.write_slot(slot, &held)?
            };
            let keep = slot.depth.get() > 0;
            self.run_on(slot, ws, keep, |c| run_to_end(c, sql))?;
            let _inside = fork::enter();
            let mut set = self
                .writer_pragmas
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            set.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            set.push((name.to_ascii_lowercase(), sql.to_string()));
        }
        let keep = slot.depth.get() > 0 || slot.reading.get() > 0;
        self.run_on(slot, &slot.own, keep, |c| run_to_end(c, sql))
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

    /// Fails when the write transaction open on this thread can no longer be used: SQLite
    /// rolled it back by itself after an error.
    fn check_open(conn: &Connection) -> Result<()> {
        if conn.is_autocommit() {
            return Err(Error::Usage(
                "the transaction was rolled back by SQLite after an earlier error; nothing \
                 written in it was kept, and nothing more can be written until it ends"
                    .into(),
            ));
        }
        Ok(())
    }

    fn run(&self, conn: &Connection, id: usize, sql: &str) -> Result<()> {
        self.held(conn, Namespace::CONNECTION, id, sql, |st| {
            st.raw_execute()?;
            Ok(())
        })
    }

    fn held<'k, R>(
        &self,
        conn: &Connection,
        ns: Namespace,
        id: usize,
        sql: &str,
        f: impl FnOnce(&mut Prepared<'_, 'k>) -> Result<R>,
    ) -> Result<R> {
        let slot = self.slot();
        let owner = slot
            .active
            .get()
            .into_iter()
            .chain([NonNull::from(&slot.own)])
            // SAFETY: the active slot is kept allocated by the call running on it; the
            // own slot lives with `slots`.
            .map(|p| unsafe { p.as_ref() })
            .find(|cs| {
                cs.conn
                    .get()
                    .is_some_and(|c| std::ptr::eq(c.as_ptr(), conn))
            });
        match owner {
            // SAFETY: the slot's connection is at a fixed address and is released only
            // after its statements (see `ConnSlot::release`), never while `in_use > 0`.
            Some(cs) => unsafe {
                let own = cs.conn.get().unwrap_or_else(|| unreachable!());
                with_held(&cs.statements, own.as_ref(), ns, id, sql, f)
            },
            None => with_fresh(conn, sql, f),
        }
    }

    fn write<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let slot = self.slot();
        if slot.depth.get() > 0 {
            return self.with(|c| {
                Self::check_open(c)?;
                f(c)
            });
        }
        self.ensure_own(slot)?;
        let guard = self.lock_writer(slot)?;
        let ws = self.write_slot(slot, &guard)?;
        let r = self.run_on(slot, ws, false, f);
        if self.shares_writer {
            // A write that left a transaction open (raw SQL) must not be joined by the
            // next holder's.
            self.discard_if_still_open(slot, ws);
        }
        drop(guard);
        r
    }

    /// One autocommitted write that may be grouped with other threads' (see `group.rs`):
    /// run here when the writer lock is free, else handed to its holder, which applies it
    /// in its own savepoint of a shared transaction; returns after that commit. Inside this
    /// thread's transaction it simply joins it (explicit transactions are never merged).
    fn write_grouped<R: Send>(&self, f: impl FnOnce(&Connection) -> Result<R> + Send) -> Result<R> {
        let slot = self.slot();
        if slot.depth.get() > 0 {
            return self.with(|c| {
                Self::check_open(c)?;
                f(c)
            });
        }
        self.no_read_open(slot)?;
        self.check_writable()?;
        self.ensure_own(slot)?;
        let path = &self.config.path;
        if let Some(guard) = self.writer.try_lock(path)? {
            let ws = self.write_slot(slot, &guard)?;
            let r = self.run_on(slot, ws, false, f);
            // Writes other threads queued meanwhile share one commit; their outcomes went
            // to them, this write's own stands. (A free-lock writer that opened a
            // transaction and yielded so that others could join it made 2 and 4 threads
            // slower, not faster: 38-39k against 53-56k sets/s, measured; see design.md.)
            let _ = self.serve(slot, ws);
            drop(guard);
            return r;
        }
        let mut out: Option<Result<R>> = None;
        let into = OutSlot(&raw mut out);
        let work: group::Work<'_> = Box::new(move |c| {
            let r = f(c);
            let ok = r.is_ok();
            // SAFETY: `out` outlives the job: its caller waits until it is finished.
            unsafe { *into.get() = Some(r) };
            ok
        });
        // SAFETY: every path below returns only once the job is finished or taken back.
        let job = unsafe { group::Job::new(self.group_id(), fork::generation(), work) };
        let ticket = Arc::clone(&job.ticket);
        let commit = match self.writer.lock_or_queue(job, self.config.timeout, path)? {
            crate::writer::Handed::Done(r) => r,
            crate::writer::Handed::Locked(guard, job) => {
                let r = match (job.take_back(), self.write_slot(slot, &guard)) {
                    (Some(work), Ok(ws)) => self.lead(slot, ws, |c| Ok(work(c))).map(|_| ()),
                    (_, Err(e)) => Err(e),
                    (None, _) => Err(Error::Usage("the grouped write was not applied".into())),
                };
                drop(guard);
                r
            }
            crate::writer::Handed::Promoted(guard) => {
                let served = self
                    .write_slot(slot, &guard)
                    .and_then(|ws| self.serve(slot, ws));
                let stage = ticket.wait(Some(Duration::ZERO));
                let r = match stage {
                    group::Stage::Done(r) => r,
                    // Not applied (the batch could not start): taken back, never run.
                    _ => {
                        self.writer.withdraw(&ticket);
                        Err(served.err().unwrap_or_else(|| {
                            Error::Usage("the grouped write was not applied".into())
                        }))
                    }
                };
                drop(guard);
                r
            }
        };
        match (commit, out) {
            (Ok(()), Some(r)) => r,
            (_, Some(Err(own))) => Err(own),
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(Error::Usage("the grouped write was not applied".into())),
        }
    }

    /// Under the writer lock, while writes are being queued: runs `f` (one statement, so
    /// all-or-nothing by itself) on the writer connection `ws` in a transaction that also
    /// applies whatever the other threads queued meanwhile, each in its own savepoint, and
    /// commits once.
    fn lead<R>(
        &self,
        slot: &Slot,
        ws: &ConnSlot,
        f: impl FnOnce(&Connection) -> Result<R>,
    ) -> Result<R> {
        let r = self.run_on(slot, ws, false, |conn| {
            let steps = HeldSteps(self);
            group::Steps::begin(&steps, conn)?;
            let own = f(conn);
            if conn.is_autocommit() {
                // SQLite rolled the transaction back: nothing of it stands.
                return Err(own.err().unwrap_or_else(|| {
                    Error::Usage(
                        "the transaction was rolled back by SQLite after an error; the write \
                         was not kept"
                            .into(),
                    )
                }));
            }
            // Let the other writers, which likely wait for a CPU, queue behind this one
            // before it commits: their writes then share its commit (without this pause
            // most of them found the lock free again, measured: 0.6k of 20k writes grouped
            // with 4 threads, 16k with it).
            std::thread::yield_now();
            let jobs = self.writer.take_jobs(self.group_id());
            let commit = group::apply(conn, &steps, jobs);
            match (own, commit) {
                (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                (Ok(v), Ok(())) => Ok(v),
            }
        });
        self.discard_if_still_open(slot, ws);
        r
    }

    /// Which jobs this holder may apply: those of handles on these very connections.
    fn group_id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Called while holding the writer lock outside any transaction: applies the writes
    /// other threads of this group queued meanwhile in one transaction on the writer
    /// connection `ws` (see `group.rs`).
    fn serve(&self, slot: &Slot, ws: &ConnSlot) -> Result<()> {
        if self.writer.queued() == 0 || !self.writer.has_jobs(self.group_id()) {
            return Ok(());
        }
        let r = self.run_on(slot, ws, false, |conn| {
            let steps = HeldSteps(self);
            let begun = group::Steps::begin(&steps, conn);
            let jobs = self.writer.take_jobs(self.group_id());
            match begun {
                Err(e) => {
                    let failed = Err(e);
                    for job in jobs {
                        job.finish(&failed);
                    }
                    failed
                }
                Ok(()) => group::apply(conn, &steps, jobs),
            }
        });
        self.discard_if_still_open(slot, ws);
        r
    }

    /// The file's writer lock for a write outside any transaction of this thread: refused
    /// inside a read transaction and on a read-only handle, else waited for.
    fn lock_writer(&self, slot: &Slot) -> Result<WriterGuard> {
        self.no_read_open(slot)?;
        self.check_writable()?;
        self.writer.lock(self.config.timeout, &self.config.path)
    }

    fn no_read_open(&self, slot: &Slot) -> Result<()> {
        if slot.reading.get() > 0 {
            return Err(Error::Usage(
                "cannot write inside a read transaction: its snapshot may be older than \
                 the file, and upgrading it can fail at once; write in a write transaction"
                    .into(),
            ));
        }
        Ok(())
    }

    fn begin(&self) -> Result<bool> {
        let slot = self.slot();
        let depth = slot.depth.get();
        if depth > 0 {
            slot.depth.set(depth + 1);
            return Ok(false);
        }
        self.ensure_own(slot)?;
        let guard = self.lock_writer(slot)?;
        {
            let ws = self.write_slot(slot, &guard)?;
            self.run_on(slot, ws, false, |conn| {
                self.run(conn, held::BEGIN_IMMEDIATE, "BEGIN IMMEDIATE")
            })?;
        }
        slot.writer.replace(Some(guard));
        slot.depth.set(1);
        Ok(true)
    }

    fn end(&self, opened: bool, commit: bool) -> Result<()> {
        let slot = self.slot();
        let depth = slot.depth.get();
        if depth == 0 && slot.inherited.get() > 0 {
            // A block the parent opened before fork(): nothing of it exists here.
            slot.inherited.set(slot.inherited.get() - 1);
            return Ok(());
        }
        if depth == 0 {
            return Err(Error::Usage("no transaction is open on this thread".into()));
        }
        if opened != (depth == 1) {
            return Err(Error::Usage(
                "transaction levels must end in the reverse order they began".into(),
            ));
        }
        slot.depth.set(depth - 1);
        if depth > 1 {
            return Ok(());
        }
        // Released at the end of this function, whatever happens below.
        let Some(guard) = slot.writer.replace(None) else {
            return Err(Error::Usage(
                "the write transaction lost its writer lock".into(),
            ));
        };
        let ws = self.write_slot(slot, &guard)?;
        // `keep`: a stale connection is not swapped under the transaction it holds.
        let result = self.run_on(slot, ws, true, |conn| {
            if conn.is_autocommit() {
                // SQLite already rolled back (e.g. after a full disk).
                return if commit {
                    Self::check_open(conn)
                } else {
                    Ok(())
                };
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
        if !commit || result.is_err() {
            ws.bump();
        }
        self.discard_if_still_open(slot, ws);
        if self.shares_writer && ws.in_use.get() > 0 {
            // A call or a pin of this thread still uses the connection (a query cursor
            // opened in the transaction, raw SQL that ended it): it stays this thread's
            // alone, and the file opens another writer connection.
            let mine = self.shared.detach(&guard);
            slot.retired.borrow_mut().push(mine);
        }
        drop(guard);
        result
    }

    /// A connection that is still inside a transaction after its end (a failed
    /// `ROLLBACK`) is closed, which rolls back, so that nothing later joins it.
    #[inline]
    fn discard_if_still_open(&self, slot: &Slot, cs: &ConnSlot) {
        if let Some(c) = cs.conn.get()
            // SAFETY: the slot's live connection, used by this thread only now.
            && !unsafe { c.as_ref() }.is_autocommit()
            && cs.in_use.get() == 0
            && slot.reading.get() == 0
        {
            let _inside = fork::enter();
            cs.release(false);
        }
    }
}

/// Where a grouped write leaves its result: the caller's stack slot.
struct OutSlot<T>(*mut Option<Result<T>>);

impl<T> OutSlot<T> {
    fn get(&self) -> *mut Option<Result<T>> {
        self.0
    }
}

impl<T> Clone for OutSlot<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for OutSlot<T> {}

// SAFETY: written once by the thread applying the job while its caller waits, read by the
// caller after the job is finished (the ticket's mutex orders the two).
unsafe impl<T: Send> Send for OutSlot<T> {}

/// The statements of a group's transaction, as this thread's held statements.
struct HeldSteps<'a>(&'a FileConnections);

impl group::Steps for HeldSteps<'_> {
    fn begin(&self, conn: &Connection) -> Result<()> {
        self.0.run(conn, held::BEGIN_IMMEDIATE, "BEGIN IMMEDIATE")
    }
    fn savepoint(&self, conn: &Connection) -> Result<()> {
        self.0
            .run(conn, held::SAVEPOINT, "SAVEPOINT diskstore_level")
    }
    fn release(&self, conn: &Connection) -> Result<()> {
        self.0.run(conn, held::RELEASE, "RELEASE diskstore_level")
    }
    fn undo(&self, conn: &Connection) -> Result<()> {
        // Cached counts (count.rs) may have taken the undone write's delta.
        self.0.current().bump();
        self.0
            .run(conn, held::ROLLBACK_TO, "ROLLBACK TO diskstore_level")?;
        self.release(conn)
    }
    fn commit(&self, conn: &Connection) -> Result<()> {
        self.0.run(conn, held::COMMIT, "COMMIT")
    }
    fn rollback(&self, conn: &Connection) -> Result<()> {
        self.0.current().bump();
        self.0.run(conn, held::ROLLBACK, "ROLLBACK")
    }
}

/// An open read transaction: every read of this thread on the file sees one snapshot
/// until it ends. Inside this thread's write transaction it is that transaction's view
/// (and ends nothing). Ends when dropped (on unwind too).
pub(crate) struct ReadLevel<'a> {
    file: &'a FileConnections,
    began: bool,
}

impl<'a> ReadLevel<'a> {
    /// Opens a read transaction (`BEGIN`; the snapshot is taken at the first read).
    pub(crate) fn begin(conns: &'a Connections) -> Result<ReadLevel<'a>> {
        let file = &*conns.file;
        let began = file.with(|conn| {
            if !conn.is_autocommit() {
                return Ok(false);
            }
            file.run(conn, held::BEGIN, "BEGIN")?;
            Ok(true)
        })?;
        if began {
            let slot = file.slot();
            slot.reading.set(slot.reading.get() + 1);
        }
        Ok(ReadLevel { file, began })
    }

    /// Ends the read transaction (a `COMMIT`, which for reads only releases the snapshot).
    pub(crate) fn end(self) -> Result<()> {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.finish(true)
    }

    fn finish(&mut self, commit: bool) -> Result<()> {
        if !std::mem::take(&mut self.began) {
            return Ok(());
        }
        let slot = self.file.slot();
        slot.reading.set(slot.reading.get().saturating_sub(1));
        let file = self.file;
        file.with(|conn| {
            if conn.is_autocommit() || slot.reading.get() > 0 {
                return Ok(());
            }
            let (id, sql) = if commit {
                (held::COMMIT, "COMMIT")
            } else {
                (held::ROLLBACK, "ROLLBACK")
            };
            file.run(conn, id, sql)
        })
    }
}

impl Drop for ReadLevel<'_> {
    fn drop(&mut self) {
        let _ = self.finish(false);
    }
}

/// A table's access to its file's shared connections: the connections plus the table's
/// own statement namespace.
pub(crate) struct Connections {
    file: Arc<FileConnections>,
    ns: Namespace,
}

impl Drop for Connections {
    fn drop(&mut self) {
        self.file.release_namespace(self.ns);
    }
}

impl Connections {
    /// The connections of `config`'s file (shared with other handles of it) for a new
    /// table handle.
    pub fn new(config: ConnectionConfig) -> Result<Connections> {
        let file = FileConnections::shared(config)?;
        let ns = file.claim_namespace();
        Ok(Connections { file, ns })
    }

    pub fn path(&self) -> &Path {
        &self.file.config.path
    }

    pub fn timeout(&self) -> Duration {
        self.file.config.timeout
    }

    pub fn read_only(&self) -> bool {
        self.file.config.read_only
    }

    /// Runs `f` with this thread's connection, opening it first if needed.
    pub fn with<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.file.with(f)
    }

    /// Runs one lookup `f` that ends within the call: on the file's writer connection when
    /// its lock is free (so that a thread that writes and reads keeps one warm connection),
    /// else as [`Connections::with`]. `f` must not write to the file.
    pub(crate) fn with_lookup<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.file.with_lookup(f)
    }

    /// Closes this thread's connection (it reopens on next use).
    pub fn close(&self) -> Result<()> {
        self.file.close()
    }

    /// Runs the pragma statement `sql` (setting `name`) on the file's writer connection,
    /// which keeps it when reopened until [`Connections::close_all`], and on this
    /// thread's own connection.
    pub(crate) fn set_pragma(&self, name: &str, sql: &str) -> Result<()> {
        self.file.set_pragma(name, sql)
    }

    /// This thread's connection mark: a process-wide unique value that moves when the
    /// connection is replaced, a transaction or savepoint rolls back, a call fails, or
    /// [`Connections::touch`] is called. Caches of what the connection sees (`count.rs`)
    /// hold only while it is unchanged.
    pub(crate) fn mark(&self) -> u64 {
        self.file.current().mark.get()
    }

    /// Moves this thread's mark: raw SQL ran on the connection, which may have undone
    /// anything (a `ROLLBACK TO`, say).
    pub(crate) fn touch(&self) {
        self.file.current().bump();
    }

    /// Pins the connection this thread uses now until the pin drops (see [`Pin`]).
    pub(crate) fn pin(&self) -> Pin<'_> {
        let cs = self.file.current();
        cs.in_use.set(cs.in_use.get() + 1);
        Pin {
            slot: NonNull::from(cs),
            generation: fork::generation(),
            _file: std::marker::PhantomData,
        }
    }

    /// Runs `f` with statement `id` of this table, kept prepared on this thread's
    /// connection `conn` (the one handed out by [`Connections::with`]): `sql` is prepared
    /// on first use and kept for the next call, which skips the statement cache's hashing
    /// of the text. Each `id` must always come with the same `sql`.
    pub fn held<'k, R>(
        &self,
        conn: &Connection,
        id: usize,
        sql: &str,
        f: impl FnOnce(&mut Prepared<'_, 'k>) -> Result<R>,
    ) -> Result<R> {
        self.file.held(conn, self.ns, id, sql, f)
    }

    /// Marks every thread's connection to the file stale (each is replaced at its
    /// thread's next call outside a transaction; a transaction in progress keeps its
    /// connection to the end) and closes this thread's one if it is idle. Returns how many
    /// connections, of all threads, it closed or marked.
    pub fn close_all(&self) -> u64 {
        self.file.close_all()
    }

    /// Checkpoints run so far by the file's background checkpointer (see
    /// `checkpoint.rs`).
    pub(crate) fn background_checkpoints(&self) -> u64 {
        self.file
            .checkpointer
            .as_ref()
            .map_or(0, |ck| ck.checkpoints())
    }

    /// The depth of write transactions open on this thread.
    pub fn depth(&self) -> u32 {
        self.file.slots.get().map_or(0, |s| {
            FileConnections::adopt_fork(s);
            s.depth.get()
        })
    }

    /// Runs one write: inside this thread's transaction if one is open, otherwise as an
    /// autocommitted statement under the in-process writer lock.
    pub fn write<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.file.write(f)
    }

    /// Runs `f` atomically: joins this thread's transaction, or opens one around `f`.
    /// The level ends on every path, on unwind too.
    pub fn atomic<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let level = Level::begin(self)?;
        let result = self.with(f);
        let ended = level.end(result.is_ok());
        // The error of `f` first: it is the cause of a failed end.
        let value = result?;
        ended.map(|()| value)
    }

    /// Runs several reads in one read transaction (unless one is already open), so that
    /// they see one snapshot and pay the file-lock system calls once.
    pub fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let level = ReadLevel::begin(self)?;
        let result = self.with(f);
        level.end().and(result)
    }

    /// Runs one autocommitted write that may share its commit with other threads' writes
    /// (group commit, see `group.rs`); inside this thread's transaction it joins that.
    /// `f` may run on another thread (the writer lock's holder) while this one waits.
    pub fn write_grouped<R: Send>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R> + Send,
    ) -> Result<R> {
        self.file.write_grouped(f)
    }

    /// How many autocommitted writes wait in this file's group-commit queue.
    pub fn pending_writes(&self) -> usize {
        self.file.writer.queued()
    }

    /// Opens a write transaction (`BEGIN IMMEDIATE`) or joins the one open on this thread.
    /// Returns true when this call opened it.
    pub fn begin(&self) -> Result<bool> {
        self.file.begin()
    }

    /// Ends the innermost level opened by [`Connections::begin`]: the outermost commits
    /// (or rolls back), a joined level only counts down. A failed commit rolls back.
    pub fn end(&self, opened: bool, commit: bool) -> Result<()> {
        self.file.end(opened, commit)
    }
}

/// Keeps this thread's connection to a file open (it counts as in use: neither
/// `close_all()` nor `close()` replaces it) while something outside a call holds one of
/// its statements, such as a query read row by row.
pub(crate) struct Pin<'a> {
    /// The pinned connection's slot: it stays allocated while pinned (a writer
    /// connection pinned when its transaction ends becomes this thread's alone).
    slot: NonNull<ConnSlot>,
    generation: u64,
    _file: std::marker::PhantomData<&'a FileConnections>,
}

impl Pin<'_> {
    /// Fails in a child of fork(): what the pin holds belongs to the parent's connection.
    pub(crate) fn check(&self) -> Result<()> {
        if fork::generation() == self.generation {
            Ok(())
        } else {
            Err(Error::Usage(
                "this was started before fork() by the parent process; start it again in \
                 the child"
                    .into(),
            ))
        }
    }
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        if self.check().is_ok() {
            // SAFETY: a pinned slot is not freed before its pins are gone (see `Pin`).
            let cs = unsafe { self.slot.as_ref() };
            cs.in_use.set(cs.in_use.get().saturating_sub(1));
        }
    }
}

/// One all-or-nothing level of a write transaction: the transaction itself, or, joined
/// inside one already open on this thread, a savepoint, so that a failed level undoes its
/// own writes and no more. Rolls back when dropped unended (on unwind too).
pub(crate) struct Level<'a> {
    conns: &'a Connections,
    savepoint: bool,
    ended: bool,
}

impl<'a> Level<'a> {
    /// Opens this thread's write transaction, or a savepoint inside the open one.
    pub(crate) fn begin(conns: &'a Connections) -> Result<Level<'a>> {
        let opened = conns.begin()?;
        let mut level = Level {
            conns,
            savepoint: false,
            ended: false,
        };
        if !opened {
            conns.with(|c| {
                conns
                    .file
                    .run(c, held::SAVEPOINT, "SAVEPOINT diskstore_level")
            })?;
            level.savepoint = true;
        }
        Ok(level)
    }

    /// Ends the level: commits (the outermost) or releases the savepoint when `commit`,
    /// else rolls it back.
    pub(crate) fn end(mut self, commit: bool) -> Result<()> {
        self.ended = true;
        self.finish(commit)
    }

    fn finish(&self, commit: bool) -> Result<()> {
        let undone = if self.savepoint {
            let file = &self.conns.file;
            if !commit {
                file.current().bump();
            }
            self.conns.with(|c| {
                if c.is_autocommit() {
                    // SQLite rolled the whole transaction back (an I/O error, a full
                    // disk): the savepoint went with it.
                    return if commit {
                        FileConnections::check_open(c)
                    } else {
                        Ok(())
                    };
                }
                if !commit {
                    file.run(c, held::ROLLBACK_TO, "ROLLBACK TO diskstore_level")?;
                }
                file.run(c, held::RELEASE, "RELEASE diskstore_level")
            })
        } else {
            Ok(())
        };
        // The level is closed whatever happened to the savepoint; a savepoint that could
        // not be undone must not be committed by the outer level either.
        let ended = self.conns.end(!self.savepoint, commit && undone.is_ok());
        undone.and(ended)
    }
}

impl Drop for Level<'_> {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.finish(false);
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
}
