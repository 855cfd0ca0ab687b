//! Helpers shared by the reliability tests (included with `#[path]`; as a test target
//! of its own it has no tests).
//!
//! - [`Rng`]: a small seeded generator, so that every random run can be replayed.
//! - [`child`]: runs this very test binary again as a child process with a role, which
//!   is how the crash and contention tests get real, killable processes.
//! - [`TmpMount`]: a small tmpfs mount (the tests run as root), unmounted on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The environment variable that tells a child process which role to play.
pub const ROLE: &str = "DISKSTORE_REL_ROLE";

/// splitmix64: tiny, fast and good enough to pick operations and timings.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A seed from `DISKSTORE_SEED` if set, else from the clock; printed so a failure
    /// can be replayed.
    pub fn seed_from_env(what: &str) -> u64 {
        let seed = std::env::var("DISKSTORE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("{what}: DISKSTORE_SEED={seed}");
        seed
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// True when the long soak is asked for (`DISKSTORE_SOAK=1`).
pub fn soak() -> bool {
    std::env::var("DISKSTORE_SOAK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A command that runs the test `entry` of this test binary in a child process, with
/// `role` in [`ROLE`] and stdout piped.
pub fn child(entry: &str, role: &str) -> Command {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", entry, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// The role this process was started with, if it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// A tmpfs mounted on a fresh folder; unmounted (lazily) and removed on drop.
pub struct TmpMount {
    /// The mount point.
    pub dir: PathBuf,
    _holder: tempfile::TempDir,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl TmpMount {
    /// Mounts a tmpfs of `size` (e.g. `"2m"`).
    ///
    /// # Errors
    /// When mounting is impossible (not root, no mount permission in this sandbox).
    pub fn new(size: &str) -> Result<TmpMount, String> {
        let holder = tempfile::tempdir().map_err(|e| e.to_string())?;
        let dir = holder.path().join("mnt");
        std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
        run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(&dir))?;
        Ok(TmpMount {
            dir,
            _holder: holder,
        })
    }

    /// Remounts read-only (`ro = true`) or read-write.
    ///
    /// # Errors
    /// When `mount -o remount` fails.
    pub fn remount(&self, ro: bool) -> Result<(), String> {
        let opt = if ro { "remount,ro" } else { "remount,rw" };
        run(Command::new("mount").args(["-o", opt]).arg(&self.dir))
    }

    /// A path inside the mount.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for TmpMount {
    fn drop(&mut self) {
        let _ = run(Command::new("umount").arg("-l").arg(&self.dir));
    }
}

/// Every file in `dir` with its contents, to prove that a failed call changed nothing.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
