//! `bench`'s mp figure, measured as the Python workers measure it: two processes on one
//! store, each running a seeded plan of 90 % gets and 10 % sets on random keys for a fixed
//! time; the figure is the sum of their ops/s. The parent re-runs this program as the hidden
//! `bench-mp-child` command, once per process.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use diskstore::DiskStore;

use crate::bench::{GET, TABLE, UPSERT, floor_connection, key, value};
use crate::fail::{Fail, Outcome};

/// Length of a process's plan of ops (then it starts over).
const PLAN: usize = 65_536;
/// Ops between two looks at the clock.
const STRIDE: usize = 64;
/// How long the children get to open their store before they start together.
const LEAD: Duration = Duration::from_millis(700);

/// Which store an mp process drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    /// The diskstore crate.
    Ours,
    /// Plain rusqlite with the same SQL and pragmas.
    Floor,
}

/// What one child process is told to do.
pub struct Child<'a> {
    /// The store to drive.
    pub system: System,
    /// Its file, holding keys `0..keys`.
    pub path: &'a Path,
    /// How many keys the store holds.
    pub keys: usize,
    /// Bytes per value written.
    pub value_size: usize,
    /// Seconds to run.
    pub seconds: f64,
    /// Seed of the plan (each process has its own).
    pub seed: u64,
    /// Unix time (ns) at which to start, so that both processes run at once.
    pub start_ns: u128,
}

/// Runs two children of `system` on `path` (holding `keys` keys); their summed ops/s.
pub fn measure(
    system: System,
    path: &Path,
    keys: usize,
    value_size: usize,
    seconds: f64,
) -> Outcome<f64> {
    let exe = std::env::current_exe()
        .map_err(|e| Fail::new(format!("cannot find this program to run mp: {e}")))?;
    let start_ns = unix_ns() + LEAD.as_nanos();
    let name = clap::ValueEnum::to_possible_value(&system)
        .map(|v| v.get_name().to_owned())
        .ok_or_else(|| Fail::new("mp: a system without a name"))?;
    let children = (0..2u64)
        .map(|seed| {
            Command::new(&exe)
                .arg("bench-mp-child")
                .args(["--system", &name, "--path"])
                .arg(path)
                .args(["--keys", &keys.to_string()])
                .args(["--value-size", &value_size.to_string()])
                .args(["--seconds", &seconds.to_string()])
                .args(["--seed", &seed.to_string()])
                .args(["--start-ns", &start_ns.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| Fail::new(format!("cannot start an mp process: {e}")))
        })
        .collect::<Outcome<Vec<_>>>()?;
    let mut rate = 0.0;
    for child in children {
        let out = child
            .wait_with_output()
            .map_err(|e| Fail::new(format!("mp process: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let parsed = text
            .split_whitespace()
            .map(str::parse::<f64>)
            .collect::<Result<Vec<_>, _>>();
        match (out.status.success(), parsed.as_deref()) {
            (true, Ok([ops, secs])) if *secs > 0.0 => rate += ops / secs,
            _ => {
                let err = String::from_utf8_lossy(&out.stderr);
                return Err(Fail::new(format!(
                    "mp process failed ({}): {}",
                    out.status,
                    err.trim()
                )));
            }
        }
    }
    Ok(rate)
}

/// One child: opens the store, waits for the common start, runs its plan for the given
/// time and prints `ops seconds`.
pub fn child(c: &Child<'_>) -> Outcome<()> {
    let keys: Vec<String> = (0..c.keys).map(key).collect();
    let val = value(c.value_size, 3);
    let plan = plan(c.seed, c.keys);
    let (ops, secs) = match c.system {
        System::Ours => {
            let store: DiskStore<String, Vec<u8>> = DiskStore::builder(c.path)
                .table(TABLE)
                .open()
                .map_err(|e| Fail::engine(c.path, e))?;
            let of = |e| Fail::engine(c.path, e);
            run(c, &plan, |set, k| {
                if set {
                    store.insert(&keys[k], &val).map_err(of)
                } else {
                    std::hint::black_box(store.get(&keys[k]).map_err(of)?);
                    Ok(())
                }
            })?
        }
        System::Floor => {
            let conn = floor_connection(c.path)?;
            let ff = |e: diskstore::rusqlite::Error| Fail::at(c.path, e);
            run(c, &plan, |set, k| {
                if set {
                    let mut st = conn.prepare_cached(UPSERT).map_err(ff)?;
                    st.execute(diskstore::rusqlite::params![keys[k], val])
                        .map_err(ff)?;
                } else {
                    let mut st = conn.prepare_cached(GET).map_err(ff)?;
                    let mut rows = st.query([&keys[k]]).map_err(ff)?;
                    if let Some(r) = rows.next().map_err(ff)? {
                        std::hint::black_box(r.get::<_, Vec<u8>>(1).map_err(ff)?);
                    }
                }
                Ok(())
            })?
        }
    };
    println!("{ops} {secs}");
    Ok(())
}

/// Warms up, waits for the start, then runs `op` over the plan until the time is up;
/// returns (ops, seconds).
fn run(
    c: &Child<'_>,
    plan: &[(bool, usize)],
    mut op: impl FnMut(bool, usize) -> Outcome<()>,
) -> Outcome<(usize, f64)> {
    for &(_, k) in &plan[..100.min(plan.len())] {
        op(false, k)?;
    }
    let wait = c.start_ns.saturating_sub(unix_ns());
    std::thread::sleep(Duration::from_nanos(u64::try_from(wait).unwrap_or(0)));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(c.seconds.max(0.0));
    let mut ops = 0;
    loop {
        let at = ops % PLAN;
        for &(set, k) in &plan[at..at + STRIDE] {
            op(set, k)?;
        }
        ops += STRIDE;
        if Instant::now() >= deadline {
            break;
        }
    }
    Ok((ops, t0.elapsed().as_secs_f64()))
}

/// A seeded plan: (is a set, key index) pairs, 10 % sets, keys uniform over `keys`.
fn plan(seed: u64, keys: usize) -> Vec<(bool, usize)> {
    // splitmix64: small, fast and good enough to spread keys and choose sets.
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03;
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let n = keys.max(1) as u64;
    (0..PLAN)
        .map(|_| (next() % 100 < 10, (next() % n) as usize))
        .collect()
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_seeded_mostly_gets_and_cover_the_keys() {
        let a = plan(1, 1000);
        assert_eq!(a, plan(1, 1000));
        assert_ne!(a, plan(2, 1000));
        let sets = a.iter().filter(|(s, _)| *s).count() as f64 / PLAN as f64;
        assert!((0.08..0.12).contains(&sets), "{sets}");
        assert!(a.iter().all(|&(_, k)| k < 1000));
        let distinct: std::collections::HashSet<_> = a.iter().map(|&(_, k)| k).collect();
        assert!(distinct.len() > 990);
    }
}
