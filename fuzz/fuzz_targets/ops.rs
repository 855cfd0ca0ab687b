//! Fuzz target: the fuzzer's bytes decode to a sequence of store operations, run on a real
//! store and on an in-memory model; any disagreement, unexpected error or panic is a crash.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/diskstore/tests/reliability_model.rs"]
mod model;

fuzz_target!(|data: &[u8]| {
    let ops = model::decode(data);
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("a temporary folder");
    if let Err(e) = model::run(dir.path(), &ops) {
        panic!("{e}");
    }
});
