//! Large cache values kept outside the table: one file per value in a folder beside the
//! database (`<file>-values/<table in hex>/<2 hex>/<30 hex>.val`).
//!
//! The row keeps an empty cell of the value's type (text or blob) in the value's column
//! and, in `_file`, a reference `"<column> <length> <path relative to the folder>"`. The
//! file's name ends with the XXH3-64 checksum of its bytes (`<30 hex>-<16 hex>.val`), so
//! the row records both the length and the checksum: a read that finds another length or
//! checksum (a file truncated, altered or lost behind the cache's back, or not yet on disk
//! after a power loss) never returns those bytes. (Files of versions before checksums are
//! named `<30 hex>.val` and checked by length only.)
//!
//! Files are written before their row, to a temporary name then renamed, so a row never
//! points to a file that is not complete; a write that dies between the two leaves an
//! orphan file, which [`CacheTable::check_files`](super::CacheTable::check_files) reports
//! and removes. How a file is made durable follows the database's `synchronous` setting
//! (see [`Durability`]).
//!
//! A file is removed only after the deletion of its row has committed: triggers in the
//! file record the reference of every deleted (or replaced) row in `_cache_trash` inside
//! the deleting transaction (whoever deletes: this process, another one, raw SQL), and
//! the next outermost cache write takes those references out of the table in its own
//! transaction and unlinks the files once that has committed. A transaction that rolls
//! back takes its trash rows with it, so the files stay.

use std::collections::hash_map::RandomState;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::value::{Cell, ValueRef};

/// The default size from which a value goes to its own file: 32 KiB, python-diskcache's
/// `disk_min_file_size`.
pub const DEFAULT_FILE_THRESHOLD: u64 = 32 * 1024;

const SUFFIX: &str = ".val";
const TEMP_SUFFIX: &str = ".tmp";

/// When a value file is flushed to disk, by the database's `synchronous` setting: a value
/// is as durable as its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// `OFF`: never synced (SQLite does not sync the database either).
    Unsynced,
    /// `NORMAL`: a commit is not synced; its row becomes durable at a later checkpoint.
    /// The file is synced (data, then its folder) by a thread of its own right after the
    /// rename, off the write path, and the last handle of the cache waits for those
    /// threads when it closes.
    Background,
    /// `FULL`/`EXTRA`: every commit is synced, so the file is synced (data, then its
    /// folder) before the row is committed.
    BeforeCommit,
}

impl Durability {
    /// The durability for a connection's `PRAGMA synchronous` value.
    pub fn for_synchronous(level: i64) -> Durability {
        match level {
            0 => Durability::Unsynced,
            1 => Durability::Background,
            _ => Durability::BeforeCommit,
        }
    }
}

/// Background syncs at most in flight per cache; beyond, a write syncs its file itself.
const MAX_BACKGROUND_SYNCS: usize = 4;

/// Where one cache table keeps its value files, and when values go there.
#[derive(Debug)]
pub(crate) struct ValueFiles {
    /// `<db>-values`: the references are relative to it.
    root: PathBuf,
    /// `<table in hex>`, the table's own folder under `root`.
    table_dir: String,
    threshold: Option<u64>,
    durability: Durability,
    /// Background syncs running, with the fork generation that started them.
    syncing: Arc<(AtomicUsize, AtomicU64)>,
    /// Where the writes go (`std::fs` but in the power-loss tests).
    fs: &'static dyn FileSystem,
}

/// A value's file as its row records it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FileRef<'a> {
    pub column: usize,
    pub len: u64,
    pub path: &'a str,
}

impl<'a> FileRef<'a> {
    /// Parses a `_file` reference; `None` when it is not one of ours.
    pub fn parse(s: &'a str) -> Option<FileRef<'a>> {
        let mut parts = s.splitn(3, ' ');
        let column = parts.next()?.parse().ok()?;
        let len = parts.next()?.parse().ok()?;
        let path = parts.next()?;
        let safe = !path.is_empty()
            && !path.starts_with('/')
            && path
                .split('/')
                .all(|p| !p.is_empty() && p != "." && p != "..");
        safe.then_some(FileRef { column, len, path })
    }

    fn format(column: usize, len: u64, path: &str) -> String {
        format!("{column} {len} {path}")
    }

    /// The checksum recorded in the file's name (`None` for files of versions before
    /// checksums).
    pub fn checksum(&self) -> Option<u64> {
        let name = self.path.rsplit('/').next()?.strip_suffix(SUFFIX)?;
        let (_, sum) = name.rsplit_once('-')?;
        (sum.len() == 16)
            .then(|| u64::from_str_radix(sum, 16).ok())
            .flatten()
    }

    /// True when `bytes` have the recorded length and checksum.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        bytes.len() as u64 == self.len && self.checksum().is_none_or(|s| s == checksum(bytes))
    }
}

/// The checksum of a value file's bytes (XXH3, 64 bits: several GB/s).
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Fills `buf` from `f` and checks the bytes against `checksum` (if any), a MiB at a
/// time, so that each piece is hashed while it is still in the processor's cache.
pub(crate) fn read_checked(
    f: &mut impl Read,
    buf: &mut [u8],
    checksum: Option<u64>,
) -> io::Result<bool> {
    let Some(expected) = checksum else {
        f.read_exact(buf)?;
        return Ok(true);
    };
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    for piece in buf.chunks_mut(1 << 20) {
        f.read_exact(piece)?;
        hasher.update(piece);
    }
    Ok(hasher.digest() == expected)
}

/// The file-system calls that change value files, one call per file operation: the seam
/// through which the power-loss tests (`tests/powerloss/`) see and cut these writes the
/// way their VFS sees SQLite's. [`RealFileSystem`] (`std::fs`) unless a test installed
/// another with [`set_value_file_system`]. Reads do not go through it.
#[doc(hidden)]
pub trait FileSystem: Send + Sync + std::fmt::Debug {
    /// Creates `path` (a new file) holding `bytes`; `fdatasync`s it when `sync`.
    fn write_new(&self, path: &Path, bytes: &[u8], sync: bool) -> io::Result<()>;
    /// `fdatasync` of an existing file.
    fn sync_data(&self, path: &Path) -> io::Result<()>;
    /// `fsync` of a folder (makes the creations, renames and removals in it durable).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Renames a file (within one folder).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates one folder (its parent exists).
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The value files' [`FileSystem`]: `std::fs`.
#[doc(hidden)]
#[derive(Debug)]
pub struct RealFileSystem;

impl FileSystem for RealFileSystem {
    fn write_new(&self, path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
        let mut f = File::create(path)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_data()?;
        }
        Ok(())
    }

    fn sync_data(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_data()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)
    }
}

static FILE_SYSTEM: OnceLock<&'static dyn FileSystem> = OnceLock::new();

/// For tests: the [`FileSystem`] of every cache opened after this call in this process
/// (once per process; false when one was already set). Not part of the API.
#[doc(hidden)]
pub fn set_value_file_system(fs: &'static dyn FileSystem) -> bool {
    FILE_SYSTEM.set(fs).is_ok()
}

fn file_system() -> &'static dyn FileSystem {
    FILE_SYSTEM.get().copied().unwrap_or(&RealFileSystem)
}

/// `fdatasync` of a file, then `fsync` of its folder (for the rename).
fn sync_file_and_folder(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    fs.sync_data(path)?;
    if let Some(dir) = path.parent() {
        fs.sync_dir(dir)?;
    }
    Ok(())
}

/// The folder of a database's value files.
pub(crate) fn values_root(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_owned();
    name.push("-values");
    db.with_file_name(name)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 120 random bits as 30 hex digits (std's per-process random hash keys, a counter, the
/// time and the process id: unique without a random-number crate).
fn fresh_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut out = String::with_capacity(32);
    for salt in 0..2u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u64(n);
        h.write_u128(t);
        h.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(32);
    out
}

impl ValueFiles {
    /// Files for `table` of the database at `db`; values of `threshold` bytes or more go
    /// to files, synced unless `sync` is false (`synchronous = OFF`).
    pub fn new(
        db: &Path,
        table: &str,
        threshold: Option<u64>,
        durability: Durability,
    ) -> ValueFiles {
        ValueFiles {
            root: values_root(db),
            table_dir: hex(table.to_ascii_lowercase().as_bytes()),
            threshold: threshold.map(|t| t.max(1)),
            durability,
            syncing: Arc::new((AtomicUsize::new(0), AtomicU64::new(0))),
            fs: file_system(),
        }
    }

    /// The cell to keep outside the table, if any: the largest text or blob cell of at
    /// least the threshold.
    pub fn pick(&self, values: &[Cell<'_>]) -> Option<usize> {
        let threshold = self.threshold?;
        values
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c.as_ref() {
                ValueRef::Text(s) => Some((i, s.len())),
                ValueRef::Blob(b) => Some((i, b.len())),
                _ => None,
            })
            .filter(|&(_, n)| n as u64 >= threshold)
            .max_by_key(|&(_, n)| n)
            .map(|(i, _)| i)
    }

    /// The path of a reference's file.
    pub fn path_of(&self, r: &FileRef<'_>) -> PathBuf {
        self.root.join(r.path)
    }

    /// Writes `bytes` (column `column`) to a new file, atomically; returns the reference
    /// to store in `_file`.
    ///
    /// # Errors
    /// [`Error::DiskFull`], [`Error::ReadOnly`] or [`Error::Io`], naming the path.
    pub fn write(&self, column: usize, bytes: &[u8]) -> Result<String> {
        let name = fresh_name();
        let sum = checksum(bytes);
        let rel = format!(
            "{}/{}/{}-{sum:016x}{SUFFIX}",
            self.table_dir,
            &name[..2],
            &name[2..]
        );
        let path = self.root.join(&rel);
        let dir = path.parent().expect("a value file has a folder");
        let temp = path.with_extension(&TEMP_SUFFIX[1..]);
        let before_commit = self.durability == Durability::BeforeCommit;
        let fs = self.fs;
        let written = (|| {
            match fs.write_new(&temp, bytes, before_commit) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // The folder's first file: create the folders (durably, unless OFF).
                    self.create_folders(dir)?;
                    fs.write_new(&temp, bytes, before_commit)?;
                }
                other => other?,
            }
            fs.rename(&temp, &path)?;
            if before_commit {
                fs.sync_dir(dir)?;
            }
            Ok::<(), io::Error>(())
        })();
        if let Err(e) = written {
            let _ = fs.remove_file(&temp);
            return Err(io_error(&e, &path));
        }
        if self.durability == Durability::Background {
            self.sync_later(path)?;
        }
        Ok(FileRef::format(column, bytes.len() as u64, &rel))
    }

    /// Creates `dir` and the folders above it that are missing, down from the first that
    /// exists; unless `synchronous = OFF`, syncs the parent of each one created, so that a
    /// synced file is not lost with a folder whose entry never reached the disk.
    fn create_folders(&self, dir: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut at = dir;
        while !at.is_dir() {
            missing.push(at);
            at = at
                .parent()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no parent folder"))?;
        }
        for d in missing.iter().rev() {
            match self.fs.create_dir(d) {
                // Another writer made it just now; its parent is synced here all the same,
                // as this writer's file may be synced before the other's sync has run.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                other => other?,
            }
            if self.durability != Durability::Unsynced
                && let Some(parent) = d.parent()
            {
                self.fs.sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Syncs a renamed file and its folder on a thread of its own (or here, when enough
    /// are in flight or no thread can start).
    fn sync_later(&self, path: PathBuf) -> Result<()> {
        let generation = crate::fork::current();
        let (running, started_in) = &*self.syncing;
        if started_in.load(Ordering::SeqCst) != generation {
            // A child of fork(): the parent's threads do not exist here.
            running.store(0, Ordering::SeqCst);
            started_in.store(generation, Ordering::SeqCst);
        }
        if running.fetch_add(1, Ordering::SeqCst) < MAX_BACKGROUND_SYNCS {
            let syncing = Arc::clone(&self.syncing);
            let job = path.clone();
            let fs = self.fs;
            let spawned = std::thread::Builder::new()
                .name("diskstore-value-sync".into())
                .spawn(move || {
                    let _ = sync_file_and_folder(fs, &job);
                    syncing.0.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_ok() {
                return Ok(());
            }
        }
        running.fetch_sub(1, Ordering::SeqCst);
        sync_file_and_folder(self.fs, &path).map_err(|e| io_error(&e, &path))
    }

    /// Waits (up to `limit`) until the background syncs of this process have ended.
    pub fn wait_for_syncs(&self, limit: Duration) {
        let (running, started_in) = &*self.syncing;
        if started_in.load(Ordering::SeqCst) != crate::fork::current() {
            return;
        }
        let start = Instant::now();
        while running.load(Ordering::SeqCst) > 0 && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The bytes of a reference's file; `None` when the file is missing or its length or
    /// checksum is not the recorded one (then the entry reads as absent).
    ///
    /// # Errors
    /// Other file-system errors.
    pub fn read(&self, r: &FileRef<'_>) -> Result<Option<Vec<u8>>> {
        let path = self.path_of(r);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&e, &path)),
        };
        let Ok(len) = usize::try_from(r.len) else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        buf.try_reserve_exact(len.saturating_add(1))
            .map_err(|_| Error::TooBig(format!("a cached value of {len} bytes")))?;
        (&mut f)
            .take(r.len + 1)
            .read_to_end(&mut buf)
            .map_err(|e| io_error(&e, &path))?;
        Ok((buf.len() == len && r.matches(&buf)).then_some(buf))
    }

    /// Removes the file of a `_file` reference (best effort: a missing file is fine).
    pub fn remove(&self, reference: &str) {
        if let Some(r) = FileRef::parse(reference) {
            let _ = self.fs.remove_file(&self.root.join(r.path));
        }
    }

    /// Every file (and left-over temporary file) under this table's folder, relative to
    /// the root.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let top = self.root.join(&self.table_dir);
        let subdirs = match fs::read_dir(&top) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_error(&e, &top)),
        };
        for sub in subdirs {
            let sub = sub.map_err(|e| io_error(&e, &top))?;
            let sub_name = sub.file_name().to_string_lossy().into_owned();
            let Ok(files) = fs::read_dir(sub.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                out.push(format!("{}/{sub_name}/{name}", self.table_dir));
            }
        }
        out.sort();
        Ok(out)
    }

    /// True if a reference's file is there with its recorded length.
    pub fn intact(&self, r: &FileRef<'_>) -> bool {
        fs::metadata(self.path_of(r)).is_ok_and(|m| m.is_file() && m.len() == r.len)
    }

    /// True if a reference's file is there with its recorded length and checksum (reads
    /// the whole file, a MiB at a time).
    pub fn verified(&self, r: &FileRef<'_>) -> bool {
        let Ok(mut f) = File::open(self.path_of(r)) else {
            return false;
        };
        let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        total == r.len && r.checksum().is_none_or(|s| s == hasher.digest())
    }

    /// How long ago a listed file was last written (`None`: unknown).
    pub fn age(&self, rel: &str) -> Option<std::time::Duration> {
        fs::metadata(self.root.join(rel))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
    }

    /// Removes a listed file by its path relative to the root.
    pub fn remove_path(&self, rel: &str) -> Result<()> {
        let path = self.root.join(rel);
        match self.fs.remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&e, &path)),
        }
    }
}

fn io_error(e: &io::Error, path: &Path) -> Error {
    let path = path.to_owned();
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Error::DiskFull { path },
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => Error::ReadOnly {
            path,
            message: e.to_string(),
        },
        _ => Error::Io {
            path,
            source: io::Error::new(e.kind(), e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_refuse_paths_that_leave_the_folder() {
        let r = FileRef::parse("1 42 ab/cd/ef.val").unwrap();
        assert_eq!(
            r,
            FileRef {
                column: 1,
                len: 42,
                path: "ab/cd/ef.val"
            }
        );
        for bad in [
            "",
            "x 1 a",
            "0 x a",
            "0 1",
            "0 1 /etc/passwd",
            "0 1 a/../../b",
            "0 1 a//b",
        ] {
            assert_eq!(FileRef::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_do_not_repeat() {
        let names: std::collections::HashSet<String> = (0..10_000).map(|_| fresh_name()).collect();
        assert_eq!(names.len(), 10_000);
        assert!(names.iter().all(|n| n.len() == 32));
    }

    #[test]
    fn a_file_reads_back_and_a_short_or_missing_one_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let files = ValueFiles::new(
            &dir.path().join("c.db"),
            "Cache",
            Some(4),
            Durability::BeforeCommit,
        );
        let data = vec![7u8; 1000];
        let reference = files.write(0, &data).unwrap();
        let r = FileRef::parse(&reference).unwrap();
        assert_eq!(files.read(&r).unwrap(), Some(data));
        assert_eq!(files.list().unwrap(), vec![r.path.to_owned()]);
        let short = FileRef { len: 999, ..r };
        assert_eq!(files.read(&short).unwrap(), None);
        files.remove(&reference);
        assert_eq!(files.read(&r).unwrap(), None);
        assert!(files.list().unwrap().is_empty());
    }
}
