//! A test VFS over SQLite's `unix` VFS that simulates power loss and injects I/O faults,
//! in the manner of SQLite's own `test6.c` (crash simulation) and its I/O-error tests.
//!
//! Every write, truncate and size change goes through to the real file at once (that is
//! the operating system's page cache: every connection of the process sees it), and is
//! also recorded per file until that file's next successful `xSync`, together with the
//! bytes it replaced. Creating and deleting files is recorded the same way, per directory,
//! until the directory is synced (SQLite syncs it at the first sync of a new `-wal` or
//! `-journal` file, and on a delete that asks for it).
//!
//! A simulated power cut ([`cut_now`], or automatically at a chosen mutating call) first
//! undoes everything recorded (giving the files as last synced), then re-applies a
//! seeded-random choice of it: each write kept whole, lost, torn at 512 B or 4 KiB sector
//! boundaries (some sectors new, some old), or lost while the file keeps its new size
//! (zeros); each truncate kept or lost; a random prefix of the directory operations kept.
//! Later writes may be kept while earlier ones are lost. The process then leaves with
//! `_exit`, so no connection touches the files again; the files are reopened elsewhere
//! through the normal VFS.
//!
//! Faults: the n-th `xWrite`, `xSync`, `xTruncate` or `xRead` (and the calls of that kind
//! right after it, `count` in all) fails with an I/O error, a full disk, or (writes) a
//! short write that stores only part of the data and reports a full disk.
//!
//! The device characteristics and sector size are the unix VFS's own (4 KiB sectors,
//! "powersafe overwrite": a torn write never damages bytes outside its own range), which
//! is the contract this simulation honours. The VFS is registered as the default VFS of
//! the process that calls [`install`], so the engine opens files through it unchanged.

#![allow(clippy::missing_safety_doc)]

use std::collections::BTreeMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use diskstore::rusqlite::ffi;

use crate::support::Rng;

/// The exit status of a process whose power was cut.
pub const CUT_EXIT: i32 = 77;

/// Which kind of call a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// `xWrite`
    Write,
    /// `xSync`
    Sync,
    /// `xTruncate`
    Truncate,
    /// `xRead`
    Read,
}

/// What a faulted call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// `EIO`: the call fails with SQLite's I/O error for that call.
    Eio,
    /// `ENOSPC`: the call fails with `SQLITE_FULL` (writes) or an I/O error (others).
    Enospc,
    /// A write that stores only its first bytes, then reports a full disk.
    Short,
}

/// A planned fault: calls `nth ..= nth + count - 1` of `kind` (counted from 1 since
/// [`reset`]) fail with `error`.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// The kind of call.
    pub kind: FaultKind,
    /// The first failing call of that kind.
    pub nth: u64,
    /// How many calls in a row fail.
    pub count: u64,
    /// How they fail.
    pub error: FaultError,
}

/// How the recorded writes fare at a power cut.
#[derive(Clone, Copy, Debug)]
pub struct CutPolicy {
    /// Percent of writes kept whole.
    pub keep: u64,
    /// Percent of writes torn (of the rest: lost).
    pub tear: u64,
    /// Tear granularity in bytes (512 or 4096).
    pub sector: u64,
    /// A file system that lies about fsync: a sync makes nothing durable (used to show
    /// that the checks notice lost acknowledged writes).
    pub lie: bool,
}

/// Counts of calls, by kind, since [`reset`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// `xWrite` calls.
    pub writes: u64,
    /// `xSync` calls.
    pub syncs: u64,
    /// `xTruncate` calls.
    pub truncates: u64,
    /// `xRead` calls.
    pub reads: u64,
    /// Calls that change files (writes, truncates, syncs, deletes, size hints): the
    /// points a power cut can come before.
    pub mutations: u64,
    /// Faults injected so far.
    pub injected: u64,
}

/// What a power cut did, for the report.
#[derive(Clone, Copy, Debug, Default)]
pub struct CutStats {
    /// Recorded (unsynced) writes at the cut.
    pub pending: u64,
    /// Of those: kept whole.
    pub kept: u64,
    /// Torn.
    pub torn: u64,
    /// Lost.
    pub lost: u64,
    /// Directory operations undone.
    pub dir_undone: u64,
    /// Of the unsynced writes: those to the cache's value files.
    pub value_pending: u64,
}

/// A change to a file's bytes, recorded until the file's next sync.
pub enum Op {
    /// Bytes `data` written at `off`; `old` were the bytes there (within `old_size`).
    Write {
        off: u64,
        data: Vec<u8>,
        old: Vec<u8>,
        old_size: u64,
    },
    /// The size set from `old_size` to `size`; `tail` were the bytes cut off.
    Resize {
        size: u64,
        old_size: u64,
        tail: Vec<u8>,
    },
}

/// A change to a directory, recorded until that directory's next sync.
pub enum DirOp {
    /// A file created.
    Create(String),
    /// A deleted file and its content as last synced.
    Delete(String, Vec<u8>),
    /// A file renamed (from, to) within its directory.
    Rename(String, String),
    /// A directory created.
    Mkdir(String),
}

impl DirOp {
    /// The directory whose sync makes this operation durable.
    fn dir(&self) -> Option<&Path> {
        match self {
            DirOp::Create(p) | DirOp::Delete(p, _) | DirOp::Rename(_, p) | DirOp::Mkdir(p) => {
                Path::new(p).parent()
            }
        }
    }
}

/// Makes the recorded operations of directory `dir` durable (its `fsync`).
pub fn dir_synced(s: &mut State, dir: &Path) {
    s.dir.retain(|op| op.dir() != Some(dir));
}

/// What the simulation records, shared by the VFS and the value files' file system
/// (`valuefs.rs`): one power cut hits both.
pub struct State {
    /// False until [`reset`]: calls pass through unrecorded.
    pub recording: bool,
    /// Unsynced changes per file path.
    pub files: BTreeMap<String, Vec<Op>>,
    /// Unsynced directory operations, oldest first.
    pub dir: Vec<DirOp>,
    counts: Counts,
    cut_at: Option<u64>,
    /// The cut policy of this run.
    pub policy: CutPolicy,
    /// The run's random numbers (cuts, short writes).
    pub rng: Option<Rng>,
    fault: Option<Fault>,
}

static STATE: Mutex<State> = Mutex::new(State {
    recording: false,
    files: BTreeMap::new(),
    dir: Vec::new(),
    counts: Counts {
        writes: 0,
        syncs: 0,
        truncates: 0,
        reads: 0,
        mutations: 0,
        injected: 0,
    },
    cut_at: None,
    policy: CutPolicy {
        keep: 50,
        tear: 30,
        sector: 512,
        lie: false,
    },
    rng: None,
    fault: None,
});

/// Raised to the workload's acknowledged count at every successful sync of a `-wal`
/// file: everything acknowledged before it is durable from then on (see [`floor`]).
static FLOOR: AtomicU64 = AtomicU64::new(0);
/// The workload's count of acknowledged operations (set by the harness).
static ACKED: AtomicU64 = AtomicU64::new(0);
/// Called just before a cut process exits (the harness reports through it).
static BEFORE_EXIT: OnceLock<fn(&CutStats)> = OnceLock::new();

/// The simulation's state, locked.
pub fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts recording with a fresh state: no cut, no fault, counters at zero.
pub fn reset(seed: u64, policy: CutPolicy) {
    let mut s = state();
    s.recording = true;
    s.files.clear();
    s.dir.clear();
    s.counts = Counts::default();
    s.cut_at = None;
    s.policy = policy;
    s.rng = Some(Rng::new(seed));
    s.fault = None;
    FLOOR.store(0, Ordering::SeqCst);
    ACKED.store(0, Ordering::SeqCst);
}

/// Cuts the power just before the `n`-th mutating call (counted from 1).
pub fn cut_before(n: u64) {
    state().cut_at = Some(n);
}

/// Plans a fault (replacing any other).
pub fn set_fault(f: Option<Fault>) {
    state().fault = f;
}

/// The counts so far.
pub fn counts() -> Counts {
    state().counts
}

/// The harness's acknowledged-operation count, read at each `-wal` sync.
pub fn set_acked(n: u64) {
    ACKED.store(n, Ordering::SeqCst);
}

/// The acknowledged count at the last successful `-wal` sync: with `synchronous=NORMAL`,
/// the operations that a power cut may no longer take back.
pub fn floor() -> u64 {
    FLOOR.load(Ordering::SeqCst)
}

/// Sets the function called with the cut's statistics just before the process exits.
pub fn on_cut(f: fn(&CutStats)) {
    let _ = BEFORE_EXIT.set(f);
}

/// Cuts the power now: applies the random subset of unsynced changes to the files and
/// exits the process with [`CUT_EXIT`].
pub fn cut_now() -> ! {
    let mut s = state();
    let stats = apply_cut(&mut s);
    if let Some(f) = BEFORE_EXIT.get() {
        f(&stats);
    }
    // SAFETY: ends the process at once; nothing runs after it.
    unsafe { libc::_exit(CUT_EXIT) }
}

// ---------------------------------------------------------------------------------------
// The cut itself.

/// A file's current bytes (empty when it is missing).
pub fn read_all(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

fn write_all(path: &str, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("the simulation writes the file after a cut");
}

fn set_len(buf: &mut Vec<u8>, size: u64) {
    buf.resize(size as usize, 0);
}

fn put(buf: &mut Vec<u8>, off: u64, bytes: &[u8]) {
    let off = off as usize;
    if buf.len() < off + bytes.len() {
        buf.resize(off + bytes.len(), 0);
    }
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

/// The content as last synced: `current` with every recorded change undone.
pub fn undo(mut buf: Vec<u8>, ops: &[Op]) -> Vec<u8> {
    for op in ops.iter().rev() {
        match op {
            Op::Write {
                off, old, old_size, ..
            } => {
                put(&mut buf, *off, old);
                set_len(&mut buf, *old_size);
            }
            Op::Resize {
                old_size,
                tail,
                size,
            } => {
                set_len(&mut buf, *old_size);
                if !tail.is_empty() {
                    put(&mut buf, *size, tail);
                }
            }
        }
    }
    buf
}

fn apply_cut(s: &mut State) -> CutStats {
    let mut stats = CutStats::default();
    let policy = s.policy;
    let rng = s.rng.get_or_insert_with(|| Rng::new(1));
    let mut rng = rng.clone();
    let files = std::mem::take(&mut s.files);
    let mut paths: Vec<_> = files.keys().cloned().collect();
    paths.sort();
    for path in paths {
        let ops = &files[&path];
        if ops.is_empty() || !Path::new(&path).exists() {
            continue;
        }
        let mut buf = undo(read_all(&path), ops);
        let value_file = path.contains("-values/");
        for op in ops {
            match op {
                Op::Write { off, data, .. } => {
                    stats.pending += 1;
                    stats.value_pending += u64::from(value_file);
                    let roll = rng.below(100);
                    if roll < policy.keep {
                        stats.kept += 1;
                        put(&mut buf, *off, data);
                    } else if roll < policy.keep + policy.tear {
                        stats.torn += 1;
                        tear(&mut rng, &mut buf, *off, data, policy.sector);
                    } else {
                        stats.lost += 1;
                        let end = off + data.len() as u64;
                        // A lost write past the end may still have grown the file (zeros).
                        if end > buf.len() as u64 && rng.chance(25) {
                            set_len(&mut buf, end);
                        }
                    }
                }
                Op::Resize { size, .. } => {
                    if rng.below(100) < policy.keep.max(50) {
                        set_len(&mut buf, *size);
                    }
                }
            }
        }
        write_all(&path, &buf);
    }
    // Directory operations: a prefix survives (file systems journal them in order).
    let dir = std::mem::take(&mut s.dir);
    let keep = if rng.chance(policy.keep) {
        dir.len()
    } else {
        rng.below(dir.len() as u64 + 1) as usize
    };
    for op in dir[keep..].iter().rev() {
        stats.dir_undone += 1;
        match op {
            DirOp::Create(path) => {
                let _ = std::fs::remove_file(path);
            }
            DirOp::Delete(path, bytes) => write_all(path, bytes),
            DirOp::Rename(from, to) => {
                if Path::new(to).exists() {
                    let _ = std::fs::rename(to, from);
                }
            }
            DirOp::Mkdir(path) => {
                let _ = std::fs::remove_dir_all(path);
            }
        }
    }
    stats
}

/// Applies a random subset of `data`'s sectors (aligned to absolute file offsets),
/// keeping at least one sector old and one new when the write spans several.
fn tear(rng: &mut Rng, buf: &mut Vec<u8>, off: u64, data: &[u8], sector: u64) {
    let end = off + data.len() as u64;
    let mut start = off;
    let mut pieces = Vec::new();
    while start < end {
        let next = ((start / sector) + 1) * sector;
        pieces.push((start, next.min(end)));
        start = next.min(end);
    }
    for (a, b) in pieces {
        if rng.chance(50) {
            put(buf, a, &data[(a - off) as usize..(b - off) as usize]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The VFS.

#[repr(C)]
struct SimFile {
    base: ffi::sqlite3_file,
    /// The real (unix) file, in the same allocation after this header.
    real: *mut ffi::sqlite3_file,
    /// The full path; null for temporary files (not recorded).
    path: *mut String,
    /// SQLite syncs the directory at this handle's first sync.
    dirsync: bool,
    is_wal: bool,
}

const HEADER: usize = std::mem::size_of::<SimFile>().next_multiple_of(16);

struct Vfs(*mut ffi::sqlite3_vfs);
// SAFETY: the VFS object is written once (in `install`) and only read afterwards.
unsafe impl Send for Vfs {}
unsafe impl Sync for Vfs {}

static UNIX: OnceLock<Vfs> = OnceLock::new();
static SIM: OnceLock<Vfs> = OnceLock::new();

fn unix() -> *mut ffi::sqlite3_vfs {
    UNIX.get().expect("installed").0
}

/// Registers the simulating VFS (once) as the process's default VFS.
pub fn install() {
    SIM.get_or_init(|| {
        // SAFETY: SQLite's documented VFS API; the objects are leaked and live forever.
        unsafe {
            let real = ffi::sqlite3_vfs_find(c"unix".as_ptr());
            assert!(!real.is_null(), "the unix VFS exists");
            let _ = UNIX.set(Vfs(real));
            let mut v: ffi::sqlite3_vfs = *real;
            v.szOsFile = (HEADER + (*real).szOsFile as usize) as c_int;
            v.pNext = ptr::null_mut();
            v.zName = c"powerloss".as_ptr();
            v.pAppData = ptr::null_mut();
            v.xOpen = Some(x_open);
            v.xDelete = Some(x_delete);
            v.xAccess = Some(x_access);
            v.xFullPathname = Some(x_full_pathname);
            v.xDlOpen = Some(x_dl_open);
            v.xDlError = Some(x_dl_error);
            v.xDlSym = Some(x_dl_sym);
            v.xDlClose = Some(x_dl_close);
            v.xRandomness = Some(x_randomness);
            v.xSleep = Some(x_sleep);
            v.xCurrentTime = Some(x_current_time);
            v.xGetLastError = Some(x_get_last_error);
            v.xCurrentTimeInt64 = Some(x_current_time_int64);
            v.xSetSystemCall = None;
            v.xGetSystemCall = None;
            v.xNextSystemCall = None;
            v.iVersion = 2;
            Vfs(Box::into_raw(Box::new(v)))
        }
    });
    // SAFETY: the VFS object lives forever.
    let rc = unsafe { ffi::sqlite3_vfs_register(SIM.get().expect("set").0, 1) };
    assert_eq!(rc, ffi::SQLITE_OK, "registering the VFS");
}

static IO_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    // Version 2: shared memory (WAL) but no xFetch, so every read goes through xRead and
    // can be faulted (SQLite then reads without memory mapping).
    iVersion: 2,
    xClose: Some(f_close),
    xRead: Some(f_read),
    xWrite: Some(f_write),
    xTruncate: Some(f_truncate),
    xSync: Some(f_sync),
    xFileSize: Some(f_file_size),
    xLock: Some(f_lock),
    xUnlock: Some(f_unlock),
    xCheckReservedLock: Some(f_check_reserved),
    xFileControl: Some(f_file_control),
    xSectorSize: Some(f_sector_size),
    xDeviceCharacteristics: Some(f_device_characteristics),
    xShmMap: Some(f_shm_map),
    xShmLock: Some(f_shm_lock),
    xShmBarrier: Some(f_shm_barrier),
    xShmUnmap: Some(f_shm_unmap),
    xFetch: None,
    xUnfetch: None,
};

unsafe fn sim<'a>(f: *mut ffi::sqlite3_file) -> &'a mut SimFile {
    // SAFETY: SQLite hands back the file object our xOpen filled in.
    unsafe { &mut *(f as *mut SimFile) }
}

unsafe fn real_methods(f: &SimFile) -> &ffi::sqlite3_io_methods {
    // SAFETY: set by the unix VFS's successful xOpen.
    unsafe { &*(*f.real).pMethods }
}

fn path_of(f: &SimFile) -> Option<&str> {
    // SAFETY: made by Box::into_raw in x_open, freed in f_close.
    (!f.path.is_null()).then(|| unsafe { (*f.path).as_str() })
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let _ = vfs;
    // SAFETY: `file` has room for szOsFile bytes: our header, then the unix file.
    unsafe {
        let f = file as *mut SimFile;
        let real = (file as *mut u8).add(HEADER) as *mut ffi::sqlite3_file;
        (*file).pMethods = ptr::null();
        let path = if name.is_null() {
            None
        } else {
            Some(CStr::from_ptr(name).to_string_lossy().into_owned())
        };
        let existed = path.as_deref().is_some_and(|p| Path::new(p).exists());
        let rc = ((*unix()).xOpen.expect("unix xOpen"))(unix(), name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let journal = flags
            & (ffi::SQLITE_OPEN_WAL
                | ffi::SQLITE_OPEN_MAIN_JOURNAL
                | ffi::SQLITE_OPEN_SUPER_JOURNAL)
            != 0;
        let create = flags & ffi::SQLITE_OPEN_CREATE != 0;
        if let Some(p) = &path
            && !existed
        {
            let mut s = state();
            if s.recording {
                s.dir.push(DirOp::Create(p.clone()));
            }
        }
        ptr::write(
            f,
            SimFile {
                base: ffi::sqlite3_file {
                    pMethods: &IO_METHODS,
                },
                real,
                path: path.map_or(ptr::null_mut(), |p| Box::into_raw(Box::new(p))),
                dirsync: journal && create,
                is_wal: flags & ffi::SQLITE_OPEN_WAL != 0,
            },
        );
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn x_delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    let _ = vfs;
    // SAFETY: SQLite passes a NUL-terminated path.
    let path = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    {
        let mut s = state();
        if s.recording {
            if let Some(rc) = mutation(&mut s) {
                return rc;
            }
            if Path::new(&path).exists() {
                let ops = s.files.remove(&path).unwrap_or_default();
                let durable = undo(read_all(&path), &ops);
                s.dir.push(DirOp::Delete(path.clone(), durable));
            }
            if sync_dir != 0
                && let Some(dir) = Path::new(&path).parent()
            {
                dir_synced(&mut s, dir);
            }
        }
    }
    // SAFETY: forwarding to the unix VFS.
    unsafe { ((*unix()).xDelete.expect("unix xDelete"))(unix(), name, sync_dir) }
}

unsafe extern "C" fn x_access(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    // SAFETY: forwarding to the unix VFS.
    unsafe { ((*unix()).xAccess.expect("unix"))(unix(), name, flags, out) }
}

unsafe extern "C" fn x_full_pathname(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: forwarding to the unix VFS.
    unsafe { ((*unix()).xFullPathname.expect("unix"))(unix(), name, n, out) }
}

unsafe extern "C" fn x_dl_open(_vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    // SAFETY: forwarding to the unix VFS.
    unsafe { ((*unix()).xDlOpen.expect("unix"))(unix(), name) }
}

unsafe extern "C" fn x_dl_error(_vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) {
    // SAFETY: forwarding to the unix VFS.
    unsafe { ((*unix()).xDlError.expect("unix"))(unix(), n, out) }
}

type DlSym = Option<unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char)>;

unsafe extern "C" fn x_dl_sym(
    _vfs: *mut ffi::sqlite3_vfs,
    h: *mut c_void,
    sym: *const c_char,
) -> DlSym {
    // SAFETY: forwarding to the unix VFS.
    unsafe { ((*unix()).xDlSym.expect("unix"))(unix(), h, sym) }
}

unsafe extern "C" fn x_dl_close(_vfs: *mut ffi::sqlite3_vfs, h: *mut c_void) {
    // SAFETY: forwarding to the unix VFS.
    unsafe { ((*unix()).xDlClose.expect("unix"))(unix(), h) }
}

unsafe extern "C" fn x_randomness(
    _vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: forwarding to the unix VFS.
    unsafe { ((*unix()).xRandomness.expect("unix"))(unix(), n, out) }
}

unsafe extern "C" fn x_sleep(_vfs: *mut ffi::sqlite3_vfs, us: c_int) -> c_int {
    // SAFETY: forwarding to the unix VFS.
    unsafe { ((*unix()).xSleep.expect("unix"))(unix(), us) }
}

unsafe extern "C" fn x_current_time(_vfs: *mut ffi::sqlite3_vfs, t: *mut f64) -> c_int {
    // SAFETY: forwarding to the unix VFS.
    unsafe { ((*unix()).xCurrentTime.expect("unix"))(unix(), t) }
}

unsafe extern "C" fn x_get_last_error(
    _vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: forwarding to the unix VFS.
    unsafe { ((*unix()).xGetLastError.expect("unix"))(unix(), n, out) }
}

unsafe extern "C" fn x_current_time_int64(
    _vfs: *mut ffi::sqlite3_vfs,
    t: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: forwarding to the unix VFS.
    unsafe { ((*unix()).xCurrentTimeInt64.expect("unix"))(unix(), t) }
}

/// Counts a mutating call and cuts the power when it is the chosen one.
pub fn mutation(s: &mut State) -> Option<c_int> {
    s.counts.mutations += 1;
    if s.cut_at == Some(s.counts.mutations) {
        let stats = apply_cut(s);
        if let Some(f) = BEFORE_EXIT.get() {
            f(&stats);
        }
        // SAFETY: ends the process at once.
        unsafe { libc::_exit(CUT_EXIT) }
    }
    None
}

/// True when `POWERLOSS_TRACE` is set: every recorded call is printed to stderr.
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("POWERLOSS_TRACE").is_some_and(|v| !v.is_empty()))
}

/// Prints `what` when tracing.
pub fn trace(what: &str) {
    if tracing() {
        eprintln!("{what}");
    }
}

/// Counts a call of `kind` and returns the error to inject, if any.
pub fn fault(s: &mut State, kind: FaultKind) -> Option<FaultError> {
    let n = match kind {
        FaultKind::Write => {
            s.counts.writes += 1;
            s.counts.writes
        }
        FaultKind::Sync => {
            s.counts.syncs += 1;
            s.counts.syncs
        }
        FaultKind::Truncate => {
            s.counts.truncates += 1;
            s.counts.truncates
        }
        FaultKind::Read => {
            s.counts.reads += 1;
            s.counts.reads
        }
    };
    let hit = s
        .fault
        .filter(|f| f.kind == kind && n >= f.nth && s.counts.injected < f.count);
    if tracing() {
        eprintln!(
            "vfs: {kind:?} #{n} (mutation #{}){}",
            s.counts.mutations,
            if hit.is_some() { " FAULT" } else { "" }
        );
    }
    let f = hit?;
    s.counts.injected += 1;
    Some(f.error)
}

unsafe fn real_size(f: &SimFile) -> u64 {
    let mut size: ffi::sqlite3_int64 = 0;
    // SAFETY: the real file is open.
    let rc = unsafe { (real_methods(f).xFileSize.expect("unix"))(f.real, &mut size) };
    assert_eq!(rc, ffi::SQLITE_OK, "the simulation reads the file size");
    size as u64
}

unsafe fn real_bytes(f: &SimFile, off: u64, len: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len as usize];
    if len > 0 {
        // SAFETY: the real file is open; `buf` has room for `len` bytes.
        let rc = unsafe {
            (real_methods(f).xRead.expect("unix"))(
                f.real,
                buf.as_mut_ptr().cast(),
                len as c_int,
                off as ffi::sqlite3_int64,
            )
        };
        assert_eq!(rc, ffi::SQLITE_OK, "the simulation reads the old bytes");
    }
    buf
}

unsafe extern "C" fn f_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: our file object.
    unsafe {
        let f = sim(file);
        let rc = (real_methods(f).xClose.expect("unix"))(f.real);
        if !f.path.is_null() {
            drop(Box::from_raw(f.path));
            f.path = ptr::null_mut();
        }
        rc
    }
}

unsafe extern "C" fn f_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: our file object; forwarding to the unix file.
    unsafe {
        let f = sim(file);
        if !f.path.is_null() {
            let mut s = state();
            if s.recording && fault(&mut s, FaultKind::Read).is_some() {
                return ffi::SQLITE_IOERR_READ;
            }
        }
        (real_methods(f).xRead.expect("unix"))(f.real, buf, amt, off)
    }
}

unsafe extern "C" fn f_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: our file object; `buf` holds `amt` bytes.
    unsafe {
        let f = sim(file);
        let Some(path) = path_of(f).map(str::to_owned) else {
            return (real_methods(f).xWrite.expect("unix"))(f.real, buf, amt, off);
        };
        let mut s = state();
        if !s.recording {
            drop(s);
            return (real_methods(f).xWrite.expect("unix"))(f.real, buf, amt, off);
        }
        if let Some(rc) = mutation(&mut s) {
            return rc;
        }
        let mut amt = amt;
        let injected = fault(&mut s, FaultKind::Write);
        if tracing() {
            eprintln!("    write {path} @{off} +{amt}");
        }
        match injected {
            Some(FaultError::Eio) => return ffi::SQLITE_IOERR_WRITE,
            Some(FaultError::Enospc) => return ffi::SQLITE_FULL,
            Some(FaultError::Short) => {
                if amt <= 1 {
                    return ffi::SQLITE_FULL;
                }
                let rng = s.rng.get_or_insert_with(|| Rng::new(1));
                amt = 1 + rng.below(amt as u64 - 1) as c_int;
            }
            None => {}
        }
        let off_u = off as u64;
        let old_size = real_size(f);
        let old_end = (off_u + amt as u64).min(old_size);
        let old = if old_end > off_u {
            real_bytes(f, off_u, old_end - off_u)
        } else {
            Vec::new()
        };
        let data = std::slice::from_raw_parts(buf as *const u8, amt as usize).to_vec();
        let rc = (real_methods(f).xWrite.expect("unix"))(f.real, buf, amt, off);
        if rc == ffi::SQLITE_OK {
            s.files.entry(path).or_default().push(Op::Write {
                off: off_u,
                data,
                old,
                old_size,
            });
        }
        if injected.is_some() {
            return ffi::SQLITE_FULL;
        }
        rc
    }
}

/// Records a size change of `f` from its current size to `size` and makes it.
unsafe fn resize(f: &SimFile, s: &mut State, size: u64, make: impl FnOnce() -> c_int) -> c_int {
    // SAFETY: the real file is open.
    unsafe {
        let old_size = real_size(f);
        let tail = if size < old_size {
            real_bytes(f, size, old_size - size)
        } else {
            Vec::new()
        };
        let rc = make();
        let new_size = real_size(f);
        if new_size != old_size {
            assert!(
                new_size == size,
                "a size change to {new_size} where {size} was asked for"
            );
            let path = path_of(f).expect("recorded").to_owned();
            s.files.entry(path).or_default().push(Op::Resize {
                size,
                old_size,
                tail,
            });
        }
        rc
    }
}

unsafe extern "C" fn f_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    // SAFETY: our file object.
    unsafe {
        let f = sim(file);
        let real = real_methods(f).xTruncate.expect("unix");
        if f.path.is_null() {
            return real(f.real, size);
        }
        let mut s = state();
        if !s.recording {
            drop(s);
            return real(f.real, size);
        }
        if let Some(rc) = mutation(&mut s) {
            return rc;
        }
        if fault(&mut s, FaultKind::Truncate).is_some() {
            return ffi::SQLITE_IOERR_TRUNCATE;
        }
        let fr = f.real;
        resize(f, &mut s, size as u64, || real(fr, size))
    }
}

unsafe extern "C" fn f_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: our file object.
    unsafe {
        let f = sim(file);
        let Some(path) = path_of(f).map(str::to_owned) else {
            return ffi::SQLITE_OK;
        };
        let mut s = state();
        if !s.recording {
            drop(s);
            return (real_methods(f).xSync.expect("unix"))(f.real, flags);
        }
        if let Some(rc) = mutation(&mut s) {
            return rc;
        }
        let injected = fault(&mut s, FaultKind::Sync);
        if tracing() {
            eprintln!("    sync {path}");
        }
        if let Some(e) = injected {
            let _ = e;
            return ffi::SQLITE_IOERR_FSYNC;
        }
        // The simulation is the durability: the real fsync is skipped (it only costs time).
        if s.policy.lie {
            return ffi::SQLITE_OK;
        }
        s.files.remove(&path);
        if f.dirsync {
            f.dirsync = false;
            if let Some(dir) = Path::new(&path).parent() {
                dir_synced(&mut s, dir);
            }
        }
        if f.is_wal {
            FLOOR.fetch_max(ACKED.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn f_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: forwarding to the unix file.
    unsafe {
        let f = sim(file);
        (real_methods(f).xFileSize.expect("unix"))(f.real, size)
    }
}

unsafe extern "C" fn f_lock(file: *mut ffi::sqlite3_file, l: c_int) -> c_int {
    // SAFETY: forwarding to the unix file.
    unsafe {
        let f = sim(file);
        (real_methods(f).xLock.expect("unix"))(f.real, l)
    }
}

unsafe extern "C" fn f_unlock(file: *mut ffi::sqlite3_file, l: c_int) -> c_int {
    // SAFETY: forwarding to the unix file.
    unsafe {
        let f = sim(file);
        (real_methods(f).xUnlock.expect("unix"))(f.real, l)
    }
}

unsafe extern "C" fn f_check_reserved(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: forwarding to the unix file.
    unsafe {
        let f = sim(file);
        (real_methods(f).xCheckReservedLock.expect("unix"))(f.real, out)
    }
}

unsafe extern "C" fn f_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: forwarding to the unix file; a size hint may grow the file (with memory
    // mapping on), which is recorded like a truncate.
    unsafe {
        let f = sim(file);
        let real = real_methods(f).xFileControl.expect("unix");
        if op == ffi::SQLITE_FCNTL_SIZE_HINT && !f.path.is_null() {
            let mut s = state();
            if s.recording {
                if let Some(rc) = mutation(&mut s) {
                    return rc;
                }
                let fr = f.real;
                let want = *(arg as *const ffi::sqlite3_int64) as u64;
                let old = real_size(f);
                if want < old {
                    // Never a shrink in practice; recorded exactly if it happens.
                    return resize(f, &mut s, want, || real(fr, op, arg));
                }
                let rc = real(fr, op, arg);
                let new = real_size(f);
                if new != old {
                    let path = path_of(f).expect("recorded").to_owned();
                    s.files.entry(path).or_default().push(Op::Resize {
                        size: new,
                        old_size: old,
                        tail: Vec::new(),
                    });
                }
                return rc;
            }
        }
        real(f.real, op, arg)
    }
}

unsafe extern "C" fn f_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: forwarding to the unix file.
    unsafe {
        let f = sim(file);
        (real_methods(f).xSectorSize.expect("unix"))(f.real)
    }
}

unsafe extern "C" fn f_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: forwarding to the unix file.
    unsafe {
        let f = sim(file);
        (real_methods(f).xDeviceCharacteristics.expect("unix"))(f.real)
    }
}

unsafe extern "C" fn f_shm_map(
    file: *mut ffi::sqlite3_file,
    pg: c_int,
    sz: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: forwarding to the unix file.
    unsafe {
        let f = sim(file);
        (real_methods(f).xShmMap.expect("unix"))(f.real, pg, sz, extend, out)
    }
}

unsafe extern "C" fn f_shm_lock(
    file: *mut ffi::sqlite3_file,
    off: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: forwarding to the unix file.
    unsafe {
        let f = sim(file);
        (real_methods(f).xShmLock.expect("unix"))(f.real, off, n, flags)
    }
}

unsafe extern "C" fn f_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: forwarding to the unix file.
    unsafe {
        let f = sim(file);
        (real_methods(f).xShmBarrier.expect("unix"))(f.real)
    }
}

unsafe extern "C" fn f_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    // SAFETY: forwarding to the unix file.
    unsafe {
        let f = sim(file);
        (real_methods(f).xShmUnmap.expect("unix"))(f.real, delete)
    }
}
