//! The allocations a snapshot carries over from the one before, as runs.
//!
//! Between two snapshots of a soak test a handful of allocations change; the
//! others keep their order, so they fall into a few runs of consecutive
//! allocations continuing consecutive ones of the snapshot before. What is
//! kept per allocation (heads, kinds, retention keys) is then copied a run at
//! a time, rather than looked up one allocation at a time.

use std::ops::Range;

use crate::decode::Allocation;
use crate::retain::dominators::NONE;
use crate::retain::StartIndex;

/// `len` allocations of this snapshot from `now` on, continuing those of the
/// snapshot before from `before` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CarriedRun {
    pub(super) now: u32,
    pub(super) before: u32,
    pub(super) len: u32,
}

impl CarriedRun {
    /// The run's allocations in the snapshot before.
    pub(super) fn before_range(&self) -> Range<usize> {
        self.before as usize..self.before as usize + self.len as usize
    }

    /// The run's allocations in this snapshot.
    pub(super) fn now_range(&self) -> Range<usize> {
        self.now as usize..self.now as usize + self.len as usize
    }
}

/// The runs of one snapshot, in order.
#[derive(Default)]
pub(super) struct CarriedRuns {
    runs: Vec<CarriedRun>,
    /// Every allocation pushed came after the last in both snapshots. (A
    /// pairing keeps the order, so this is a check: the gaps between runs mean
    /// something only when it holds.)
    ordered: bool,
}

impl CarriedRuns {
    /// Empties the runs, keeping their room.
    pub(super) fn clear(&mut self) {
        self.runs.clear();
        self.ordered = true;
    }

    /// Allocation `now` carries over allocation `before` of the snapshot before.
    pub(super) fn push(&mut self, now: u32, before: u32) {
        self.push_run(now, before, 1);
    }

    /// Allocations `now..now + len` carry over `before..before + len` of the
    /// snapshot before.
    pub(super) fn push_run(&mut self, now: u32, before: u32, len: u32) {
        if len == 0 {
            return;
        }
        if let Some(last) = self.runs.last_mut() {
            let (end_now, end_before) = (last.now.saturating_add(last.len), last.before.saturating_add(last.len));
            if now == end_now && before == end_before {
                last.len += len;
                return;
            }
            self.ordered &= now >= end_now && before >= end_before;
        }
        self.runs.push(CarriedRun { now, before, len });
    }

    /// These runs into `into`, split at the allocations `split` names (by
    /// their index in this snapshot), which are left out.
    pub(super) fn split_into(&self, split: &[bool], into: &mut CarriedRuns) {
        into.clear();
        for run in &self.runs {
            let (mut k, end) = (run.now as usize, run.now_range().end);
            while k < end {
                let stop = split.get(k..end).and_then(|s| s.iter().position(|&x| x)).map_or(end, |p| k + p);
                into.push_run(k as u32, run.before + (k as u32 - run.now), (stop - k) as u32);
                k = stop + 1;
            }
        }
    }

    /// Per allocation of the snapshot before (`before`), the allocation at its
    /// first block in this snapshot ([`NONE`], the number the retention's
    /// nodes use for none, when there is none): a run at a time where
    /// carried over, else found by its first block in `index` (this
    /// snapshot's). `None` when the runs are out of order.
    pub(super) fn old_to_new(&self, before: &[Allocation], index: &StartIndex) -> Option<Vec<u32>> {
        let mut map = vec![NONE; before.len()];
        for run in self.iter() {
            let (to, from) = (map.get_mut(run.before_range())?, run.now);
            to.iter_mut().zip(from..).for_each(|(x, i)| *x = i);
        }
        for j in self.gaps_before(before.len())?.flatten() {
            map[j] = index.at(before.get(j)?.start_block).unwrap_or(NONE);
        }
        Some(map)
    }

    /// Whether every run comes after the one before in both snapshots (a
    /// pairing's runs do).
    pub(super) fn ordered(&self) -> bool {
        self.ordered
    }

    /// The runs, in this snapshot's order.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = &CarriedRun> {
        self.runs.iter()
    }

    /// The allocations of the snapshot before (of `before_len`) that are in no
    /// run, as ranges; `None` when the runs are out of order.
    pub(super) fn gaps_before(&self, before_len: usize) -> Option<impl Iterator<Item = Range<usize>> + '_> {
        self.ordered.then(|| gaps(self.runs.iter().map(CarriedRun::before_range), before_len))
    }

    /// The allocations of this snapshot (of `now_len`) in no run, as ranges;
    /// `None` when the runs are out of order.
    pub(super) fn gaps_now(&self, now_len: usize) -> Option<impl Iterator<Item = Range<usize>> + '_> {
        self.ordered.then(|| gaps(self.runs.iter().map(CarriedRun::now_range), now_len))
    }
}

/// The parts of `0..len` between `ranges` (in order, not overlapping).
fn gaps(ranges: impl Iterator<Item = Range<usize>>, len: usize) -> impl Iterator<Item = Range<usize>> {
    let ends = ranges.map(move |r| (r.start.min(len), r.end.min(len))).chain(std::iter::once((len, len)));
    ends.scan(0, |from, (start, end)| {
        let gap = *from..start.max(*from);
        *from = end.max(*from);
        Some(gap)
    })
    .filter(|g| !g.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs_of(pairs: &[(u32, u32)]) -> CarriedRuns {
        let mut runs = CarriedRuns::default();
        runs.clear();
        pairs.iter().for_each(|&(now, before)| runs.push(now, before));
        runs
    }

    #[test]
    fn consecutive_pairs_make_one_run_and_the_rest_are_gaps() {
        // Snapshot before: 0 1 2 3 4 5 6; 3 is freed, a new allocation comes
        // first, and 6 is decoded again.
        let runs = runs_of(&[(1, 0), (2, 1), (3, 2), (4, 4), (5, 5)]);
        let got: Vec<CarriedRun> = runs.iter().copied().collect();
        assert_eq!(got, vec![CarriedRun { now: 1, before: 0, len: 3 }, CarriedRun { now: 4, before: 4, len: 2 }]);
        assert_eq!(runs.gaps_before(7).unwrap().collect::<Vec<_>>(), vec![3..4, 6..7]);
        assert_eq!(runs.gaps_now(7).unwrap().collect::<Vec<_>>(), vec![0..1, 6..7]);
        assert_eq!(runs_of(&[]).gaps_now(2).unwrap().collect::<Vec<_>>(), vec![0..2]);
    }

    #[test]
    fn runs_out_of_order_have_no_gaps() {
        let runs = runs_of(&[(0, 5), (1, 2)]);
        assert!(runs.gaps_before(8).is_none() && runs.gaps_now(2).is_none());
    }

    #[test]
    fn runs_split_at_the_allocations_named_leave_them_out() {
        let mut runs = CarriedRuns::default();
        runs.clear();
        runs.push_run(0, 0, 3);
        runs.push_run(3, 3, 2); // continues the first
        runs.push_run(6, 7, 4);
        let whole: Vec<CarriedRun> = runs.iter().copied().collect();
        assert_eq!(whole, vec![CarriedRun { now: 0, before: 0, len: 5 }, CarriedRun { now: 6, before: 7, len: 4 }]);
        // 0, 2, 7 and 9 split (9 ends a run); 5 is in no run anyway.
        let split: Vec<bool> = (0..10).map(|k| [0, 2, 5, 7, 9].contains(&k)).collect();
        let mut into = CarriedRuns::default();
        runs.split_into(&split, &mut into);
        let got: Vec<CarriedRun> = into.iter().copied().collect();
        let run = |now, before, len| CarriedRun { now, before, len };
        assert_eq!(got, vec![run(1, 1, 1), run(3, 3, 2), run(6, 7, 1), run(8, 9, 1)]);
        assert_eq!(into.gaps_now(10).unwrap().collect::<Vec<_>>(), vec![0..1, 2..3, 5..6, 7..8, 9..10]);
    }
}
