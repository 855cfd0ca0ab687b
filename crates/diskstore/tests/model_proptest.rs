//! Random operation sequences against in-memory models: every result and the final
//! iteration order (both directions) must match.
//!
//! Text keys use an insertion-ordered model (an overwrite keeps its place, a removed key
//! that comes back goes to the end). Integer keys are the rowid, so their model is a
//! `BTreeMap` ordered by key, and `push` takes the largest key plus one.

use std::collections::BTreeMap;

use diskstore::DiskStore;
use proptest::prelude::*;
use tempfile::TempDir;

/// One operation; `Tx` runs a batch inside a transaction that commits or rolls back.
#[derive(Clone, Debug)]
enum Op<K> {
    Insert(K, i64),
    Add(K, i64),
    Remove(K),
    Get(K),
    Contains(K),
    GetOrInsert(K, i64),
    GetMany(Vec<K>),
    Extend(Vec<(K, i64)>),
    Range(K, K),
    PopFirst,
    PopLast,
    Push(i64),
    Len,
    Clear,
    Tx(Vec<Op<K>>, bool),
}

/// What an operation returned, in a form both sides produce.
#[derive(Clone, Debug, PartialEq)]
enum Out<K> {
    Unit,
    Bool(bool),
    Value(Option<i64>),
    Values(Vec<Option<i64>>),
    Item(Option<(K, i64)>),
    Items(Vec<(K, i64)>),
    Key(K),
    Count(u64),
}

/// The model's side: the entries in iteration order.
trait Model<K>: Clone {
    fn entries(&self) -> Vec<(K, i64)>;
    fn set(&mut self, k: K, v: i64);
    fn remove(&mut self, k: &K) -> Option<i64>;
    fn get(&self, k: &K) -> Option<i64>;
    fn push(&mut self, v: i64) -> Option<K>;
    fn clear(&mut self);
}

/// Insertion order: a vector of entries.
#[derive(Clone, Default)]
struct Ordered(Vec<(String, i64)>);

impl Model<String> for Ordered {
    fn entries(&self) -> Vec<(String, i64)> {
        self.0.clone()
    }
    fn set(&mut self, k: String, v: i64) {
        match self.0.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => self.0.push((k, v)),
        }
    }
    fn remove(&mut self, k: &String) -> Option<i64> {
        let i = self.0.iter().position(|(key, _)| key == k)?;
        Some(self.0.remove(i).1)
    }
    fn get(&self, k: &String) -> Option<i64> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| *v)
    }
    fn push(&mut self, _: i64) -> Option<String> {
        None
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Key order: integer keys are rowids.
#[derive(Clone, Default)]
struct ByKey(BTreeMap<i64, i64>);

impl Model<i64> for ByKey {
    fn entries(&self) -> Vec<(i64, i64)> {
        self.0.iter().map(|(k, v)| (*k, *v)).collect()
    }
    fn set(&mut self, k: i64, v: i64) {
        self.0.insert(k, v);
    }
    fn remove(&mut self, k: &i64) -> Option<i64> {
        self.0.remove(k)
    }
    fn get(&self, k: &i64) -> Option<i64> {
        self.0.get(k).copied()
    }
    fn push(&mut self, v: i64) -> Option<i64> {
        let k = self.0.keys().next_back().map_or(1, |m| m + 1);
        self.0.insert(k, v);
        Some(k)
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

fn model_apply<K: Clone + Ord, M: Model<K>>(m: &mut M, op: &Op<K>) -> Vec<Out<K>> {
    let out = match op {
        Op::Insert(k, v) => {
            m.set(k.clone(), *v);
            Out::Unit
        }
        Op::Add(k, v) => {
            let absent = m.get(k).is_none();
            if absent {
                m.set(k.clone(), *v);
            }
            Out::Bool(absent)
        }
        Op::Remove(k) => Out::Value(m.remove(k)),
        Op::Get(k) => Out::Value(m.get(k)),
        Op::Contains(k) => Out::Bool(m.get(k).is_some()),
        Op::GetOrInsert(k, v) => {
            let got = m.get(k).unwrap_or_else(|| {
                m.set(k.clone(), *v);
                *v
            });
            Out::Value(Some(got))
        }
        Op::GetMany(ks) => Out::Values(ks.iter().map(|k| m.get(k)).collect()),
        Op::Extend(items) => {
            for (k, v) in items {
                m.set(k.clone(), *v);
            }
            Out::Count(items.len() as u64)
        }
        Op::Range(lo, hi) => {
            let mut items: Vec<(K, i64)> = m
                .entries()
                .into_iter()
                .filter(|(k, _)| lo <= k && k < hi)
                .collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            Out::Items(items)
        }
        Op::PopFirst => {
            let first = m.entries().into_iter().next();
            if let Some((k, _)) = &first {
                m.remove(k);
            }
            Out::Item(first)
        }
        Op::PopLast => {
            let last = m.entries().into_iter().next_back();
            if let Some((k, _)) = &last {
                m.remove(k);
            }
            Out::Item(last)
        }
        Op::Push(v) => match m.push(*v) {
            Some(k) => Out::Key(k),
            None => Out::Unit, // not generated for text keys
        },
        Op::Len => Out::Count(m.entries().len() as u64),
        Op::Clear => {
            m.clear();
            Out::Unit
        }
        Op::Tx(ops, commit) => {
            let mut inner = m.clone();
            let outs = ops
                .iter()
                .flat_map(|o| model_apply(&mut inner, o))
                .collect();
            if *commit {
                *m = inner;
            }
            return outs;
        }
    };
    vec![out]
}

fn store_apply<K>(s: &DiskStore<K, i64>, op: &Op<K>) -> Vec<Out<K>>
where
    K: diskstore::Key + Clone,
{
    let out = match op {
        Op::Insert(k, v) => {
            s.insert(k, v).unwrap();
            Out::Unit
        }
        Op::Add(k, v) => Out::Bool(s.add(k, v).unwrap()),
        Op::Remove(k) => Out::Value(s.remove(k).unwrap()),
        Op::Get(k) => Out::Value(s.get(k).unwrap()),
        Op::Contains(k) => Out::Bool(s.contains_key(k).unwrap()),
        Op::GetOrInsert(k, v) => Out::Value(Some(s.get_or_insert(k, v).unwrap())),
        Op::GetMany(ks) => Out::Values(s.get_many(ks).unwrap()),
        Op::Extend(items) => Out::Count(s.extend(items.iter().cloned()).unwrap() as u64),
        Op::Range(lo, hi) => Out::Items(
            s.range(lo.clone()..hi.clone())
                .collect::<Result<_, _>>()
                .unwrap(),
        ),
        Op::PopFirst => Out::Item(s.pop_first().unwrap()),
        Op::PopLast => Out::Item(s.pop_last().unwrap()),
        Op::Push(v) => Out::Key(s.push(v).unwrap()),
        Op::Len => Out::Count(s.len().unwrap()),
        Op::Clear => {
            s.clear().unwrap();
            Out::Unit
        }
        Op::Tx(ops, commit) => {
            let tx = s.begin().unwrap();
            let outs = ops.iter().flat_map(|o| store_apply(s, o)).collect();
            if *commit {
                tx.commit().unwrap();
            } else {
                tx.rollback().unwrap();
            }
            return outs;
        }
    };
    vec![out]
}

fn run<K, M>(s: &DiskStore<K, i64>, mut model: M, ops: &[Op<K>]) -> Result<(), TestCaseError>
where
    K: diskstore::Key + Clone + Ord + std::fmt::Debug,
    M: Model<K>,
{
    for (step, op) in ops.iter().enumerate() {
        let want = model_apply(&mut model, op);
        let got = store_apply(s, op);
        prop_assert_eq!(got, want, "step {}: {:?}", step, op);
    }
    let want = model.entries();
    let got: Vec<(K, i64)> = s.iter().collect::<Result<_, _>>().unwrap();
    prop_assert_eq!(&got, &want);
    let mut rev = want.clone();
    rev.reverse();
    let got: Vec<(K, i64)> = s.iter().rev().collect::<Result<_, _>>().unwrap();
    prop_assert_eq!(got, rev);
    prop_assert_eq!(s.len().unwrap(), want.len() as u64);
    Ok(())
}

fn ops<K: Clone + std::fmt::Debug + 'static>(
    key: impl Strategy<Value = K> + Clone + 'static,
    with_push: bool,
) -> impl Strategy<Value = Vec<Op<K>>> {
    let v = any::<i64>();
    let simple = prop_oneof![
        4 => (key.clone(), v).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (key.clone(), v).prop_map(|(k, v)| Op::Add(k, v)),
        3 => key.clone().prop_map(Op::Remove),
        3 => key.clone().prop_map(Op::Get),
        1 => key.clone().prop_map(Op::Contains),
        2 => (key.clone(), v).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
        1 => prop::collection::vec(key.clone(), 0..4).prop_map(Op::GetMany),
        2 => prop::collection::vec((key.clone(), v), 0..6).prop_map(Op::Extend),
        1 => (key.clone(), key.clone()).prop_map(|(a, b)| Op::Range(a, b)),
        1 => Just(Op::PopFirst),
        1 => Just(Op::PopLast),
        2 => v.prop_map(move |x| if with_push { Op::Push(x) } else { Op::Len }),
        1 => Just(Op::Len),
        1 => Just(Op::Clear),
    ];
    let with_tx = prop_oneof![
        8 => simple.clone(),
        1 => (prop::collection::vec(simple, 0..6), any::<bool>())
            .prop_map(|(ops, commit)| Op::Tx(ops, commit)),
    ];
    prop::collection::vec(with_tx, 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn text_keys_behave_like_an_insertion_ordered_map(ops in ops("[abcdé]{0,2}", false)) {
        let dir = TempDir::new().unwrap();
        let s: DiskStore<String, i64> = DiskStore::open(dir.path().join("m.db")).unwrap();
        run(&s, Ordered::default(), &ops)?;
    }

    #[test]
    fn integer_keys_behave_like_a_sorted_map(ops in ops(-20i64..20, true)) {
        let dir = TempDir::new().unwrap();
        let s: DiskStore<i64, i64> = DiskStore::open(dir.path().join("m.db")).unwrap();
        run(&s, ByKey::default(), &ops)?;
    }
}
