//! Files that are not healthy stores: garbage, foreign formats, truncated or damaged
//! stores, immutable files and folders, missing files. Each gives a clear error variant
//! and never a panic; files that are refused are left as they were.
//!
//! Read-only cases use `chattr +i` (immutable), which binds root too: the tests run as
//! root, and root ignores permission bits.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use diskstore::{DiskRead, DiskStore, Error};
use tempfile::TempDir;

type Store = DiskStore<String, Vec<u8>>;

fn healthy(path: &Path, rows: usize) {
    let s: Store = DiskStore::open(path).unwrap();
    s.extend((0..rows).map(|i| (format!("key {i:05}"), vec![i as u8; 300])))
        .unwrap();
    // Fold the WAL into the main file so that the file alone holds everything.
    s.table()
        .with_connection(|c| Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?))
        .unwrap();
    drop(s);
}

/// Reads everything a store offers and returns the first error, if any.
fn read_all(path: &Path) -> Result<usize, Error> {
    let s: Store = DiskStore::open(path)?;
    let mut n = 0;
    for item in s.iter() {
        item?;
        n += 1;
    }
    s.len()?;
    let problems = s.check()?;
    if !problems.is_empty() {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            message: problems.join("; "),
        });
    }
    Ok(n)
}

#[test]
fn random_garbage_is_not_a_database_and_stays_untouched() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("garbage.db");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(&path, &bytes).unwrap();
    let e = Store::open(&path).err().unwrap();
    assert!(matches!(e, Error::NotADatabase { .. }), "{e:?}");
    assert!(e.to_string().contains("garbage.db"), "{e}");
    let e = DiskRead::<String, Vec<u8>>::open(&path).err().unwrap();
    assert!(matches!(e, Error::NotADatabase { .. }), "{e:?}");
    assert!(fs::read(&path).unwrap() == bytes, "the file changed");
}

#[test]
fn a_png_is_not_a_database() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("picture.db");
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    png.resize(4096, 0);
    fs::write(&path, &png).unwrap();
    let e = Store::open(&path).err().unwrap();
    assert!(matches!(e, Error::NotADatabase { .. }), "{e:?}");
    assert!(fs::read(&path).unwrap() == png, "the file changed");
}

#[test]
fn an_empty_file_becomes_a_new_store() {
    // SQLite treats a zero-length file as an empty database.
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("empty.db");
    fs::write(&path, b"").unwrap();
    let s: Store = DiskStore::open(&path).unwrap();
    s.insert("a", &vec![1]).unwrap();
    assert_eq!(s.get("a").unwrap(), Some(vec![1]));
}

#[test]
fn a_truncated_store_reports_corruption() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("cut.db");
    healthy(&path, 2000);
    let len = fs::metadata(&path).unwrap().len();
    assert!(len > 16384 * 8, "the store spans many pages ({len} bytes)");
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let r = read_all(&path);
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
}

#[test]
fn a_store_with_damaged_pages_reports_corruption() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("damaged.db");
    healthy(&path, 2000);
    let mut bytes = fs::read(&path).unwrap();
    // Overwrite the middle of the file (table pages), page size 16 KiB.
    let page = 16384;
    let pages = bytes.len() / page;
    for p in [pages / 3, pages / 2, pages - 2] {
        for (i, b) in bytes[p * page..(p + 1) * page].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
    }
    fs::write(&path, &bytes).unwrap();
    let r = read_all(&path);
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    if let Err(e) = r {
        assert!(e.to_string().contains("damaged.db"), "{e}");
    }
}

#[test]
fn a_damaged_header_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("header.db");
    healthy(&path, 10);
    let mut bytes = fs::read(&path).unwrap();
    bytes[..16].copy_from_slice(b"SQLite format 2\0");
    fs::write(&path, &bytes).unwrap();
    let e = Store::open(&path).err().unwrap();
    assert!(matches!(e, Error::NotADatabase { .. }), "{e:?}");
}

#[test]
fn diskread_of_a_missing_file_is_not_found_and_creates_nothing() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("absent.db");
    let e = DiskRead::<String, Vec<u8>>::open(&path).err().unwrap();
    match &e {
        Error::NotFound { path: p } => assert_eq!(p, &path),
        other => panic!("{other:?}"),
    }
    assert!(!path.exists());
    // A read-only open of a file without the table is a schema error, not a new table.
    healthy(&path, 1);
    let e = DiskRead::<String, Vec<u8>>::builder(&path)
        .table("Other")
        .open_read_only()
        .err()
        .unwrap();
    assert!(
        matches!(&e, Error::Schema { table, .. } if table == "Other"),
        "{e:?}"
    );
}

/// Marks a path immutable for as long as it lives (`chattr +i`; root cannot write it).
struct Immutable(PathBuf);

impl Immutable {
    fn new(path: &Path) -> Immutable {
        let st = Command::new("chattr").arg("+i").arg(path).status().unwrap();
        assert!(st.success(), "chattr +i {} failed", path.display());
        Immutable(path.to_owned())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn an_immutable_file_reads_but_refuses_writes() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("frozen.db");
    healthy(&path, 5);
    let before = fs::read(&path).unwrap();
    let _guard = Immutable::new(&path);
    assert!(
        fs::OpenOptions::new().append(true).open(&path).is_err(),
        "immutability must bind this process for the test to mean anything"
    );
    // SQLite falls back to a read-only connection, so the store opens and reads…
    let s: Store = DiskStore::open(&path).unwrap();
    assert_eq!(s.get("key 00003").unwrap(), Some(vec![3; 300]));
    assert_eq!(s.len().unwrap(), 5);
    // …and every write is refused clearly.
    let e = s.insert("new", &vec![0]).unwrap_err();
    assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
    let e = s.remove("key 00001").unwrap_err();
    assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
    let e = s.begin().and_then(|tx| {
        s.insert("in tx", &vec![])?;
        tx.commit()
    });
    assert!(matches!(e, Err(Error::ReadOnly { .. })), "{e:?}");
    let ro: DiskRead<String, Vec<u8>> = DiskRead::open(&path).unwrap();
    assert_eq!(ro.len().unwrap(), 5);
    // A table that would have to be created cannot be.
    let e = DiskStore::<String, i64>::builder(&path)
        .table("New")
        .open()
        .err()
        .unwrap();
    assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
    assert!(fs::read(&path).unwrap() == before, "the file changed");
}

#[test]
fn an_immutable_folder_refuses_a_new_store_clearly() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("locked");
    fs::create_dir(&folder).unwrap();
    let _guard = Immutable::new(&folder);
    let path = folder.join("new.db");
    let e = Store::open(&path).err().unwrap();
    assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
    assert!(!path.exists());
}

#[test]
fn an_immutable_folder_with_a_store_in_it_still_reads() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("locked");
    fs::create_dir(&folder).unwrap();
    let path = folder.join("s.db");
    healthy(&path, 3);
    let _guard = Immutable::new(&folder);
    // Writing needs the -wal and -shm files beside the store, which cannot be created.
    match Store::open(&path) {
        Ok(s) => {
            let e = s.insert("x", &vec![]).unwrap_err();
            assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
        }
        Err(e) => assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}"),
    }
    assert!(!folder.join("s.db-wal").exists());
}
