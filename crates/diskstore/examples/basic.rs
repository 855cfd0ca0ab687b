//! The basic map operations on a store of text keys and text values.
//!
//! Run: `cargo run -p diskstore --example basic [path]` (default: a temporary folder).

use diskstore::{DiskStore, Query, Value};

fn main() -> diskstore::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| dir.path().join("basic.db"), Into::into);
    let store: DiskStore<String, String> = DiskStore::open(&path)?;
    store.clear()?;

    store.insert("apple", &"red".to_string())?;
    store.insert("banana", &"yellow".to_string())?;
    store.insert("cherry", &"dark red".to_string())?;
    store.insert("apple", &"green".to_string())?; // an overwrite keeps its place

    println!("{} entries in {}", store.len()?, store.path().display());
    for item in store.iter() {
        let (fruit, colour) = item?;
        println!("  {fruit}: {colour}");
    }

    // Insert-if-absent, atomic get-or-insert, removal with the old value.
    assert!(!store.add("banana", &"brown".to_string())?);
    let plum = store.get_or_insert("plum", &"purple".to_string())?;
    println!("plum is {plum}");
    println!("removed cherry: {:?}", store.remove("cherry")?);

    // Many writes in one transaction: all or nothing.
    let n = store.extend([("kiwi", "brown".to_string()), ("lime", "green".to_string())])?;
    println!("added {n} in one transaction");

    // A key range and a trusted SQL query.
    let b_to_k: Vec<String> = store
        .range("b".."l")
        .map(|r| r.map(|(k, _)| k))
        .collect::<diskstore::Result<_>>()?;
    println!("keys from b to l: {b_to_k:?}");
    let green = store
        .query(&Query::new().filter("value = ?", [Value::from("green")]))
        .and_then(|q| q.collect::<Result<Vec<_>, _>>())?;
    println!("green: {green:?}");

    // Newest first, then take the newest out.
    let newest_first: Vec<String> = store.keys().rev().collect::<diskstore::Result<_>>()?;
    println!("newest first: {newest_first:?}");
    println!("popped: {:?}", store.pop_last()?);
    Ok(())
}
