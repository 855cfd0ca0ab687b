//! The cache's value files under the power-loss simulation: a [`ValueFileSystem`] that
//! records every write until the file's next `fdatasync`, and every creation, rename,
//! removal and new folder until its folder's `fsync`, in the same [`vfs::State`] as the
//! SQLite files. So one counter numbers the mutating calls of both (a cut comes before any
//! of them), one power cut undoes and re-applies the unsynced changes of both with the
//! same policy, and a planned write or sync fault can hit a value file as well.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use diskstore::{RealFileSystem, ValueFileSystem};

use crate::support::Rng;
use crate::vfs::{self, DirOp, FaultError, FaultKind, Op, State};

/// The simulated file system (stateless: its records are in [`vfs::state`]).
#[derive(Debug)]
pub struct SimFs;

static SIM_FS: SimFs = SimFs;

/// When set (in the parent, before forking), syncs of value files make nothing durable,
/// while SQLite's files stay honest: for the self-test that the value checks can fail.
static LYING: AtomicBool = AtomicBool::new(false);

/// Makes the value files' syncs lie (or not) in children forked from now on.
pub fn set_lying(lie: bool) {
    LYING.store(lie, Ordering::SeqCst);
}

fn lying(s: &State) -> bool {
    s.policy.lie || LYING.load(Ordering::SeqCst)
}

/// Makes every cache opened in this process write its value files through [`SimFs`].
pub fn install() {
    let _ = diskstore::set_value_file_system(&SIM_FS);
}

fn name(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Counts a mutating call (the power may be cut here) and returns the fault to inject.
fn enter(s: &mut State, kind: FaultKind, what: &str, path: &Path) -> Option<FaultError> {
    vfs::mutation(s);
    let f = vfs::fault(s, kind);
    vfs::trace(&format!("    value file: {what} {}", path.display()));
    f
}

/// A sync: the file's recorded writes become durable (unless the file system lies).
fn synced(s: &mut State, path: &Path) {
    if !lying(s) {
        s.files.remove(&name(path));
    }
}

impl ValueFileSystem for SimFs {
    fn write_new(&self, path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
        let mut s = vfs::state();
        if !s.recording {
            drop(s);
            return RealFileSystem.write_new(path, bytes, sync);
        }
        let mut data = bytes;
        let injected = enter(&mut s, FaultKind::Write, "write", path);
        match injected {
            Some(FaultError::Eio) => return Err(os_error(libc::EIO)),
            Some(FaultError::Enospc) => return Err(os_error(libc::ENOSPC)),
            Some(FaultError::Short) if data.len() <= 1 => return Err(os_error(libc::ENOSPC)),
            Some(FaultError::Short) => {
                let rng = s.rng.get_or_insert_with(|| Rng::new(1));
                data = &data[..1 + rng.below(data.len() as u64 - 1) as usize];
            }
            None => {}
        }
        let p = name(path);
        let old = path.exists().then(|| vfs::read_all(&p));
        std::fs::write(path, data)?;
        match old {
            None => s.dir.push(DirOp::Create(p.clone())),
            Some(tail) => s.files.entry(p.clone()).or_default().push(Op::Resize {
                size: 0,
                old_size: tail.len() as u64,
                tail,
            }),
        }
        s.files.entry(p).or_default().push(Op::Write {
            off: 0,
            data: data.to_vec(),
            old: Vec::new(),
            old_size: 0,
        });
        if injected.is_some() {
            return Err(os_error(libc::ENOSPC));
        }
        if sync {
            if enter(&mut s, FaultKind::Sync, "fdatasync", path).is_some() {
                return Err(os_error(libc::EIO));
            }
            synced(&mut s, path);
        }
        Ok(())
    }

    fn sync_data(&self, path: &Path) -> io::Result<()> {
        let mut s = vfs::state();
        if !s.recording {
            drop(s);
            return RealFileSystem.sync_data(path);
        }
        if enter(&mut s, FaultKind::Sync, "fdatasync", path).is_some() {
            return Err(os_error(libc::EIO));
        }
        if !path.is_file() {
            return Err(os_error(libc::ENOENT));
        }
        synced(&mut s, path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = vfs::state();
        if !s.recording {
            drop(s);
            return RealFileSystem.sync_dir(dir);
        }
        if enter(&mut s, FaultKind::Sync, "fsync folder", dir).is_some() {
            return Err(os_error(libc::EIO));
        }
        if !dir.is_dir() {
            return Err(os_error(libc::ENOENT));
        }
        if !lying(&s) {
            vfs::dir_synced(&mut s, dir);
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = vfs::state();
        if !s.recording {
            drop(s);
            return RealFileSystem.rename(from, to);
        }
        vfs::mutation(&mut s);
        vfs::trace(&format!("    value file: rename {}", to.display()));
        let (f, t) = (name(from), name(to));
        if to.exists() {
            // Replacing a file (never done by the cache, whose names are unique).
            let ops = s.files.remove(&t).unwrap_or_default();
            let durable = vfs::undo(vfs::read_all(&t), &ops);
            s.dir.push(DirOp::Delete(t.clone(), durable));
        }
        std::fs::rename(from, to)?;
        if let Some(ops) = s.files.remove(&f) {
            s.files.insert(t.clone(), ops);
        }
        s.dir.push(DirOp::Rename(f, t));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = vfs::state();
        if !s.recording {
            drop(s);
            return RealFileSystem.remove_file(path);
        }
        vfs::mutation(&mut s);
        vfs::trace(&format!("    value file: remove {}", path.display()));
        let p = name(path);
        if path.is_file() {
            let ops = s.files.remove(&p).unwrap_or_default();
            let durable = vfs::undo(vfs::read_all(&p), &ops);
            std::fs::remove_file(path)?;
            s.dir.push(DirOp::Delete(p, durable));
            Ok(())
        } else {
            std::fs::remove_file(path)
        }
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = vfs::state();
        if !s.recording {
            drop(s);
            return RealFileSystem.create_dir(dir);
        }
        vfs::mutation(&mut s);
        vfs::trace(&format!("    value file: mkdir {}", dir.display()));
        std::fs::create_dir(dir)?;
        s.dir.push(DirOp::Mkdir(name(dir)));
        Ok(())
    }
}
