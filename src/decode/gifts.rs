//! The roles objects give, kept from one snapshot to the next.
//!
//! An allocation's role is the best of the roles pointers give it (a dict its
//! table, a list its items, ...): it depends on every object that points at
//! it. Made whole, the roles stage visits every allocation of every snapshot.
//! A run decoder keeps them instead in a [`GiftBook`], by target then giver:
//! the next snapshot drops the gifts of the objects that changed or were
//! decoded again, gives theirs again, and makes again only the roles of the
//! allocations those gifts reach (and of those not carried over).
//!
//! What a giver reads to give its roles is recorded as its own reads (its
//! words, and the blocks its pointers are looked up at), so a giver whose
//! target changed, or which points at a block where an allocation now starts,
//! is decoded again ([`crate::incremental`]): the gifts of the others are as
//! they were.

use std::collections::BTreeMap;

use super::roles::Roles;
use super::{Category, Role};

/// One role given: its category, the detailed role and the object that gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Gift {
    pub(super) category: Category,
    pub(super) role: Role,
    pub(super) owner: Option<u64>,
}

/// The roles the heap's objects gave in one snapshot, and those the VM's
/// state and the qstr pools gave (given after the objects', as the roles
/// stage gives them).
#[derive(Clone, Debug, Default)]
pub struct GiftBook {
    /// (target's first block, giver's first block, the gift's number among
    /// the giver's): the gifts to a target, in the order the stage gives them.
    by_target: BTreeMap<(u64, u64, u32), Gift>,
    /// Per giver (first block), its gifts' keys in `by_target`.
    by_giver: BTreeMap<u64, Vec<(u64, u32)>>,
    /// The VM state's and the qstr pools' gifts, by target's first block.
    globals: Vec<(u64, Gift)>,
}

impl GiftBook {
    /// Forgets the gifts of the giver starting at `giver`, and says which
    /// targets they went to (first blocks, pushed to `touched`).
    pub(super) fn drop_giver(&mut self, giver: u64, touched: &mut Vec<u64>) {
        for (target, k) in self.by_giver.remove(&giver).unwrap_or_default() {
            self.by_target.remove(&(target, giver, k));
            touched.push(target);
        }
    }

    /// Records that `giver` gave `target` (both first blocks) `gift`.
    pub(super) fn give(&mut self, giver: u64, target: u64, gift: Gift) {
        let keys = self.by_giver.entry(giver).or_default();
        let k = keys.len() as u32;
        keys.push((target, k));
        self.by_target.insert((target, giver, k), gift);
    }

    /// The global gifts, replaced by `globals`; the targets of both, old and
    /// new, are pushed to `touched`.
    pub(super) fn replace_globals(&mut self, mut globals: Vec<(u64, Gift)>, touched: &mut Vec<u64>) {
        // By target, each target's in the order given (a stable sort); a gift
        // given again changes nothing, so repeats go (each qstr of a chunk
        // gives it its role).
        globals.sort_by_key(|&(t, _)| t);
        globals.dedup();
        touched.extend(self.globals.iter().chain(&globals).map(|&(t, _)| t));
        self.globals = globals;
    }

    /// Gives allocation `i` (starting at `target`) its role afresh: every
    /// object's gift to it in order, then the global ones.
    pub(super) fn role_of(&self, i: usize, target: u64, roles: &mut Roles) {
        roles.reset(i);
        for g in self.by_target.range((target, 0, 0)..=(target, u64::MAX, u32::MAX)).map(|(_, g)| g) {
            roles.give(i, g.category, g.role, g.owner);
        }
        let from = self.globals.partition_point(|&(t, _)| t < target);
        for (_, g) in self.globals[from..].iter().take_while(|(t, _)| *t == target) {
            roles.give(i, g.category, g.role, g.owner);
        }
    }

    /// How many gifts the objects gave.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_target.len()
    }
}

/// Where the roles given go, one giver at a time: into the roles, and, for a
/// run decoder, into the book kept for the next snapshot.
pub(super) struct Giving<'a> {
    pub(super) roles: Option<&'a mut Roles>,
    pub(super) book: Option<&'a mut GiftBook>,
    /// The giver's first block, and the first block of each allocation.
    pub(super) giver: u64,
    pub(super) starts: &'a [super::Allocation],
    /// The targets given to (first blocks), when asked for.
    pub(super) touched: Option<&'a mut Vec<u64>>,
}

impl Giving<'_> {
    /// Allocation `i` is given `category`, `role` by `owner` (see [`Roles::give`]).
    pub(super) fn give(&mut self, i: usize, category: Category, role: Role, owner: Option<u64>) {
        if let Some(r) = self.roles.as_deref_mut() {
            r.give(i, category, role, owner);
        }
        if self.book.is_none() && self.touched.is_none() {
            return;
        }
        let Some(target) = self.starts.get(i).map(|a| a.start_block) else { return };
        if let Some(book) = self.book.as_deref_mut() {
            book.give(self.giver, target, Gift { category, role, owner });
        }
        if let Some(t) = self.touched.as_deref_mut() {
            t.push(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_made_again_from_the_book_is_the_one_given_in_order() {
        let gift = |category, role, owner| Gift { category, role, owner };
        let mut book = GiftBook::default();
        // Two givers give block 7 the same role: the first one's owner stays.
        book.give(3, 7, gift(Category::MapTable, Role::DictTable, Some(0x30)));
        book.give(1, 7, gift(Category::MapTable, Role::DictTable, Some(0x10)));
        book.give(1, 9, gift(Category::StringData, Role::StrData, Some(0x10)));
        let mut roles = Roles::new(2);
        book.role_of(0, 7, &mut roles);
        assert_eq!(roles.of(0), (Category::MapTable, Role::DictTable, Some(0x10)));
        // With the giver at block 1 gone, block 7's role is the other's.
        let mut touched = Vec::new();
        book.drop_giver(1, &mut touched);
        assert_eq!(touched, vec![7, 9]);
        book.role_of(0, 7, &mut roles);
        assert_eq!(roles.of(0), (Category::MapTable, Role::DictTable, Some(0x30)));
        book.role_of(1, 9, &mut roles);
        assert_eq!(roles.of(1), (Category::Unknown, Role::None, None));
        assert_eq!(book.len(), 1);
        // A global gift comes after the objects'.
        book.replace_globals(vec![(9, gift(Category::StringData, Role::ReadlineLine, None))], &mut touched);
        book.role_of(1, 9, &mut roles);
        assert_eq!(roles.of(1), (Category::StringData, Role::ReadlineLine, None));
    }
}
