//! Restart strategies: which children a supervisor restarts when one of them exits.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only the child that exited.
    OneForOne,
    /// The child that exited and every child started after it (they depend on it).
    RestForOne,
    /// Every child.
    OneForAll,
}

impl Strategy {
    /// The children (by start order) to stop and restart when child `exited` of `count` exits.
    pub fn affected(self, exited: usize, count: usize) -> Range<usize> {
        match self {
            Strategy::OneForOne => exited..exited + 1,
            Strategy::RestForOne => exited..count,
            Strategy::OneForAll => 0..count,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::OneForOne => "one_for_one",
            Strategy::RestForOne => "rest_for_one",
            Strategy::OneForAll => "one_for_all",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affected_children() {
        assert_eq!(Strategy::OneForOne.affected(1, 3), 1..2);
        assert_eq!(Strategy::RestForOne.affected(0, 2), 0..2);
        assert_eq!(Strategy::RestForOne.affected(1, 2), 1..2);
        assert_eq!(Strategy::OneForAll.affected(2, 3), 0..3);
    }
}
