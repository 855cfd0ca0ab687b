//! Paging by rowid: where the next page of an insertion-order pass starts and ends.
//!
//! One pager serves every iterator that reads a table in pages (the typed [`Iter`], the
//! Python binding's iterators): a page is the rows with rowids in `from..=to` read in
//! `direction`, up to a page size; after it, the pager moves past the last rowid read. A
//! forward pass ends at the largest rowid present when it reads its first page, so a loop
//! that adds a row per row read ends.
//!
//! [`Iter`]: crate::Iter

use crate::error::Result;
use crate::table::Direction;

/// The position of a pass over a table in rowid order.
#[derive(Clone, Debug)]
pub struct RowidPager {
    from: i64,
    to: i64,
    direction: Direction,
    /// Set once the forward end is fixed (from the largest rowid at the first page).
    end_fixed: bool,
    done: bool,
}

impl RowidPager {
    /// A pass from the oldest row (`Forward`) or the newest (`Reverse`).
    pub fn new(direction: Direction) -> RowidPager {
        RowidPager {
            from: i64::MIN,
            to: i64::MAX,
            direction,
            end_fixed: direction == Direction::Reverse,
            done: false,
        }
    }

    /// The direction of the pass.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// True once the pass has read its last page.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Ends the pass (after an error, say): no more pages.
    pub fn finish(&mut self) {
        self.done = true;
    }

    /// The rowids of the next page (`from`, `to`, direction), or `None` at the end. A
    /// forward pass calls `last_rowid` once, before its first page, to fix where it ends.
    ///
    /// # Errors
    /// Errors from `last_rowid`.
    pub fn next_range(
        &mut self,
        last_rowid: impl FnOnce() -> Result<Option<i64>>,
    ) -> Result<Option<(i64, i64, Direction)>> {
        if !self.done && !self.end_fixed {
            self.end_fixed = true;
            match last_rowid()? {
                Some(last) => self.to = last,
                None => self.done = true,
            }
        }
        Ok((!self.done).then_some((self.from, self.to, self.direction)))
    }

    /// Moves past a page that read `n` rows of at most `page`, the last with rowid `last`.
    pub fn advance(&mut self, n: usize, page: usize, last: Option<i64>) {
        match (last, self.direction) {
            (Some(r), Direction::Forward) => match r.checked_add(1) {
                Some(next) => self.from = next,
                None => self.done = true,
            },
            (Some(r), Direction::Reverse) => match r.checked_sub(1) {
                Some(next) => self.to = next,
                None => self.done = true,
            },
            (None, _) => {}
        }
        if n < page || self.from > self.to {
            self.done = true;
        }
    }

    /// Turns the pass around: the rows not yet returned, the next of which has rowid
    /// `next` (`None`: all rows read so far were returned), in the other direction.
    pub fn reverse(&mut self, next: Option<i64>) {
        if let Some(rowid) = next {
            match self.direction {
                Direction::Forward => self.from = rowid,
                Direction::Reverse => self.to = rowid,
            }
            self.done = self.from > self.to;
        }
        self.end_fixed = true;
        self.direction = match self.direction {
            Direction::Forward => Direction::Reverse,
            Direction::Reverse => Direction::Forward,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_pass_ends_at_the_last_rowid_it_saw_first() {
        let mut p = RowidPager::new(Direction::Forward);
        let r = p.next_range(|| Ok(Some(500))).unwrap();
        assert_eq!(r, Some((i64::MIN, 500, Direction::Forward)));
        p.advance(256, 256, Some(256));
        // The end is not asked again.
        let r = p.next_range(|| panic!("asked twice")).unwrap();
        assert_eq!(r, Some((257, 500, Direction::Forward)));
        p.advance(10, 256, Some(500));
        assert!(p.is_done());
        assert_eq!(p.next_range(|| Ok(None)).unwrap(), None);
    }

    #[test]
    fn empty_tables_reverse_passes_and_the_last_rowid() {
        let mut p = RowidPager::new(Direction::Forward);
        assert_eq!(p.next_range(|| Ok(None)).unwrap(), None);
        let mut p = RowidPager::new(Direction::Reverse);
        let r = p
            .next_range(|| panic!("a reverse pass needs no end"))
            .unwrap();
        assert_eq!(r, Some((i64::MIN, i64::MAX, Direction::Reverse)));
        p.advance(256, 256, Some(i64::MIN));
        assert!(p.is_done());
        let mut p = RowidPager::new(Direction::Forward);
        p.next_range(|| Ok(Some(i64::MAX))).unwrap();
        p.advance(1, 256, Some(i64::MAX));
        assert!(p.is_done());
    }
}
