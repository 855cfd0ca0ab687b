//! The cache's VFS: SQLite's `unix` VFS with each WAL frame written by one `pwrite`
//! instead of two.
//!
//! SQLite writes a WAL frame as its 24-byte header, then the page right after it: two
//! system calls per frame, 6.5 `pwrite`s per cache `set` (about 1 µs each here). This VFS
//! opens every file with the `unix` VFS; a WAL file's handle holds a 24-byte write back
//! and, when the next call on the handle writes right after it (the frame's page, which
//! SQLite always writes next), writes both with one call. Any other call on the handle
//! (a write elsewhere, a read, a sync, a truncate, the size, a file control, the close)
//! first writes what is held back, so the file sees the same bytes in the same order,
//! before anything can read, sync or size it. Nothing is acknowledged earlier than before:
//! the header's write only ever returned to SQLite's own frame writer, which reports an
//! error of either write the same way, and a WAL frame counts only once the WAL index
//! (shared memory, written after all of a commit's frames) names it. A process killed
//! between the two calls leaves a torn frame either way (recovery stops at the first frame
//! whose checksum fails). Locks, shared memory and the database file are `unix`'s own, so
//! connections of this VFS and of `unix` (the checkpoint thread's) share one file safely.

use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use diskstore::rusqlite::ffi;

/// The VFS's registered name.
pub(super) const NAME: &CStr = c"diskstore-dc";

/// A WAL frame header's size: the only write held back.
const FRAME_HEADER: c_int = 24;

/// A WAL file's handle: ours first (SQLite's view), then the `unix` file.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    /// The `unix` file, in the same allocation after [`HEADER`] bytes.
    real: *mut ffi::sqlite3_file,
    /// The bytes held back (header, then room for the page that follows it); `held` of
    /// them at offset `at` are pending.
    buf: *mut Vec<u8>,
    held: usize,
    at: i64,
}

/// Room for our part of a handle, before the `unix` file.
const HEADER: usize = std::mem::size_of::<WalFile>().next_multiple_of(16);

struct Vfs(*mut ffi::sqlite3_vfs);
// SAFETY: the VFS objects are written once (in `register`) and only read afterwards.
unsafe impl Send for Vfs {}
unsafe impl Sync for Vfs {}

static UNIX: OnceLock<Vfs> = OnceLock::new();
static OURS: OnceLock<Option<Vfs>> = OnceLock::new();

fn unix() -> *mut ffi::sqlite3_vfs {
    UNIX.get().map_or(ptr::null_mut(), |v| v.0)
}

/// Registers the VFS once (not as the default); whether it is there to use. Without the
/// `unix` VFS (never on the platforms we build for) the cache opens with SQLite's default.
pub(super) fn register() -> bool {
    OURS.get_or_init(|| {
        // SAFETY: SQLite's VFS API; the objects are leaked and live for the process.
        unsafe {
            let real = ffi::sqlite3_vfs_find(c"unix".as_ptr());
            if real.is_null() {
                return None;
            }
            let _ = UNIX.set(Vfs(real));
            let mut v: ffi::sqlite3_vfs = *real;
            v.szOsFile = (HEADER + (*real).szOsFile as usize) as c_int;
            v.pNext = ptr::null_mut();
            v.zName = NAME.as_ptr();
            v.xOpen = Some(x_open);
            let ours = Box::into_raw(Box::new(v));
            if ffi::sqlite3_vfs_register(ours, 0) != ffi::SQLITE_OK {
                drop(Box::from_raw(ours));
                return None;
            }
            Some(Vfs(ours))
        }
    })
    .is_some()
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
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
    xFetch: Some(f_fetch),
    xUnfetch: Some(f_unfetch),
};

/// Opens with `unix`: in place for every file but a WAL, which gets our handle.
unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let unix = unix();
    // SAFETY: `file` has room for our `szOsFile`: at least `unix`'s at its start, and
    // our header followed by `unix`'s.
    unsafe {
        let Some(open) = (*unix).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return open(unix, name, file, flags, out_flags);
        }
        (*file).pMethods = ptr::null();
        let real = file.cast::<u8>().add(HEADER).cast::<ffi::sqlite3_file>();
        let rc = open(unix, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        ptr::write(
            file.cast::<WalFile>(),
            WalFile {
                base: ffi::sqlite3_file {
                    pMethods: &WAL_METHODS,
                },
                real,
                buf: Box::into_raw(Box::new(Vec::new())),
                held: 0,
                at: 0,
            },
        );
        ffi::SQLITE_OK
    }
}

/// Our handle.
///
/// # Safety
/// `f` is a WAL file this VFS opened, used by one thread at a time (SQLite's rule).
unsafe fn wal<'a>(f: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    // SAFETY: per the contract.
    unsafe { &mut *f.cast::<WalFile>() }
}

/// The `unix` file's methods.
fn methods(w: &WalFile) -> &ffi::sqlite3_io_methods {
    // SAFETY: set by `unix`'s successful open, live until its close.
    unsafe { &*(*w.real).pMethods }
}

/// `unix`'s write of `amt` bytes at `data` to offset `off`.
///
/// # Safety
/// `data` holds `amt` readable bytes.
unsafe fn write(w: &WalFile, data: *const c_void, amt: c_int, off: i64) -> c_int {
    match methods(w).xWrite {
        // SAFETY: forwarding to the `unix` file, per the contract.
        Some(m) => unsafe { m(w.real, data, amt, off) },
        None => ffi::SQLITE_IOERR_WRITE,
    }
}

/// Writes what is held back, if anything.
fn flush(w: &mut WalFile) -> c_int {
    if w.held == 0 {
        return ffi::SQLITE_OK;
    }
    let n = std::mem::take(&mut w.held);
    // SAFETY: our buffer (made in `x_open`, freed in `f_close`) holds `n` bytes.
    unsafe { write(w, (*w.buf).as_ptr().cast(), n as c_int, w.at) }
}

/// Generates a method that writes what is held back, then calls `unix`'s.
macro_rules! after_flush {
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: SQLite calls it with our handle.
            let w = unsafe { wal(f) };
            let rc = flush(w);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            match methods(w).$field {
                // SAFETY: forwarding to the `unix` file.
                Some(m) => unsafe { m(w.real $(, $arg)*) },
                None => ffi::SQLITE_NOTFOUND,
            }
        }
    };
}

after_flush!(f_read, xRead, (buf: *mut c_void, amt: c_int, off: ffi::sqlite3_int64));
after_flush!(f_truncate, xTruncate, (size: ffi::sqlite3_int64));
after_flush!(f_sync, xSync, (flags: c_int));
after_flush!(f_file_size, xFileSize, (size: *mut ffi::sqlite3_int64));
after_flush!(f_lock, xLock, (level: c_int));
after_flush!(f_unlock, xUnlock, (level: c_int));
after_flush!(f_check_reserved, xCheckReservedLock, (out: *mut c_int));
after_flush!(f_file_control, xFileControl, (op: c_int, arg: *mut c_void));
after_flush!(f_shm_map, xShmMap, (pg: c_int, size: c_int, extend: c_int, out: *mut *mut c_void));
after_flush!(f_shm_lock, xShmLock, (off: c_int, n: c_int, flags: c_int));
after_flush!(f_shm_unmap, xShmUnmap, (delete: c_int));
after_flush!(f_fetch, xFetch, (off: ffi::sqlite3_int64, amt: c_int, out: *mut *mut c_void));
after_flush!(f_unfetch, xUnfetch, (off: ffi::sqlite3_int64, p: *mut c_void));

unsafe extern "C" fn f_write(
    f: *mut ffi::sqlite3_file,
    data: *const c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite calls it with our handle and `amt` readable bytes at `data`.
    let w = unsafe { wal(f) };
    let len = usize::try_from(amt).unwrap_or(0);
    if len == 0 || data.is_null() {
        let rc = flush(w);
        // SAFETY: forwarding SQLite's arguments to the `unix` file.
        return if rc == ffi::SQLITE_OK {
            unsafe { write(w, data, amt, off) }
        } else {
            rc
        };
    }
    // SAFETY: as above (`len` bytes, not null).
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
    // SAFETY: our buffer, made in `x_open`, freed in `f_close`.
    let buf = unsafe { &mut *w.buf };
    if w.held > 0 {
        if off == w.at + w.held as i64 && w.held + len <= c_int::MAX as usize {
            // The frame's page: one write for header and page.
            buf.truncate(w.held);
            buf.extend_from_slice(bytes);
            w.held = 0;
            // SAFETY: our buffer's bytes.
            return unsafe { write(w, buf.as_ptr().cast(), buf.len() as c_int, w.at) };
        }
        let rc = flush(w);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    if amt == FRAME_HEADER {
        buf.clear();
        buf.extend_from_slice(bytes);
        w.held = len;
        w.at = off;
        return ffi::SQLITE_OK;
    }
    // SAFETY: SQLite's `amt` bytes at `data`.
    unsafe { write(w, data, amt, off) }
}

unsafe extern "C" fn f_close(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls it once with our handle; nothing uses it afterwards.
    let w = unsafe { wal(f) };
    let flushed = flush(w);
    // SAFETY: forwarding to the `unix` file; our buffer is freed once, here.
    let rc = unsafe {
        let rc = methods(w).xClose.map_or(ffi::SQLITE_OK, |m| m(w.real));
        drop(Box::from_raw(w.buf));
        w.buf = ptr::null_mut();
        rc
    };
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        rc
    }
}

unsafe extern "C" fn f_sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls it with our handle; forwarding to the `unix` file.
    unsafe {
        let w = wal(f);
        methods(w).xSectorSize.map_or(4096, |m| m(w.real))
    }
}

unsafe extern "C" fn f_device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls it with our handle; forwarding to the `unix` file.
    unsafe {
        let w = wal(f);
        methods(w).xDeviceCharacteristics.map_or(0, |m| m(w.real))
    }
}

unsafe extern "C" fn f_shm_barrier(f: *mut ffi::sqlite3_file) {
    // SAFETY: SQLite calls it with our handle; forwarding to the `unix` file.
    unsafe {
        let w = wal(f);
        let _ = flush(w);
        if let Some(m) = methods(w).xShmBarrier {
            m(w.real);
        }
    }
}
