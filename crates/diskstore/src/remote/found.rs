//! The values of one batch lookup held in one buffer ([`Found`]), so that a caller
//! building its own objects (the Python binding) reads each value in place instead of
//! receiving one allocation per value.

use std::ops::Range;

use super::RemoteValue;

/// A value of a [`Found`], borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteValueRef<'a> {
    /// An integer.
    Int(i64),
    /// Bytes.
    Bytes(&'a [u8]),
}

impl RemoteValueRef<'_> {
    /// The value, copied.
    pub fn to_value(self) -> RemoteValue {
        match self {
            RemoteValueRef::Int(i) => RemoteValue::Int(i),
            RemoteValueRef::Bytes(b) => RemoteValue::Bytes(b.to_vec()),
        }
    }
}

#[derive(Clone, Debug)]
enum Slot {
    Missing,
    Int(i64),
    Bytes(Range<usize>),
}

/// The values of a batch lookup, in the order of the keys asked for (`None`: missing).
#[derive(Clone, Debug, Default)]
pub struct Found {
    buf: Vec<u8>,
    slots: Vec<Slot>,
}

impl Found {
    /// Room for `capacity` values; the buffer comes with [`with_buffer`](Found::with_buffer).
    pub(crate) fn with_capacity(capacity: usize) -> Found {
        Found {
            buf: Vec::new(),
            slots: Vec::with_capacity(capacity),
        }
    }

    /// These values with `buf` as the buffer the ranges of
    /// [`push_range`](Found::push_range) index.
    #[cfg(feature = "redis")]
    pub(crate) fn with_buffer(self, buf: Vec<u8>) -> Found {
        Found { buf, ..self }
    }

    pub(crate) fn push_missing(&mut self) {
        self.slots.push(Slot::Missing);
    }

    pub(crate) fn push_int(&mut self, i: i64) {
        self.slots.push(Slot::Int(i));
    }

    /// A bytes value at `range` of the buffer.
    pub(crate) fn push_range(&mut self, range: Range<usize>) {
        self.slots.push(Slot::Bytes(range));
    }

    /// How many keys were looked up.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no key was looked up.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The values in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<RemoteValueRef<'_>>> + '_ {
        self.slots.iter().map(|s| match s {
            Slot::Missing => None,
            Slot::Int(i) => Some(RemoteValueRef::Int(*i)),
            Slot::Bytes(r) => Some(RemoteValueRef::Bytes(&self.buf[r.clone()])),
        })
    }

    /// How many keys had a value.
    #[cfg(feature = "redis")]
    pub(crate) fn hits(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| !matches!(s, Slot::Missing))
            .count()
    }
}

impl From<Vec<Option<RemoteValue>>> for Found {
    fn from(values: Vec<Option<RemoteValue>>) -> Found {
        let mut f = Found::with_capacity(values.len());
        for v in values {
            match v {
                None => f.push_missing(),
                Some(RemoteValue::Int(i)) => f.push_int(i),
                Some(RemoteValue::Bytes(b)) => {
                    let start = f.buf.len();
                    f.buf.extend_from_slice(&b);
                    f.push_range(start..f.buf.len());
                }
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_in_order() {
        let f = Found::from(vec![
            Some(RemoteValue::Bytes(b"ab".to_vec())),
            None,
            Some(RemoteValue::Int(-3)),
            Some(RemoteValue::Bytes(Vec::new())),
        ]);
        let got: Vec<_> = f.iter().collect();
        assert_eq!(
            got,
            vec![
                Some(RemoteValueRef::Bytes(b"ab")),
                None,
                Some(RemoteValueRef::Int(-3)),
                Some(RemoteValueRef::Bytes(b"")),
            ]
        );
        assert_eq!(f.len(), 4);
    }
}
