//! The done-window: which job ids at or above the low-water mark are finished. Every id below
//! the mark is finished, so a replay scans job records from the mark only, and the journal
//! needs no in-flight index (an index costs two writes per job).
//!
//! After a restart the window starts with every id from the mark on pending, and learns which
//! are done as the replay reads their records, so work starts before the scan ends. Until then
//! its pending count is an upper bound.

use std::collections::VecDeque;

use crate::job::JobId;

/// Ids per word of the bitmap.
const BITS: u64 = 64;

/// One bit per id from the mark on: a job stuck in flight while millions finish after it costs
/// an eighth of a byte per id, not a byte.
#[derive(Debug, Clone)]
pub struct DoneWindow {
    /// Every id below this one is done: the low-water mark.
    base: JobId,
    /// The id of bit 0 of `words[0]`: `base` rounded down to a whole word.
    start: JobId,
    /// Bit `i` of the bitmap is whether `start + i` is done.
    words: VecDeque<u64>,
    /// Ids from here on do not exist yet.
    end: JobId,
    /// Ids in the window not (yet) known to be done.
    pending: u64,
}

impl DoneWindow {
    /// A window over `base..end`, all pending.
    pub fn new(base: JobId, end: JobId) -> DoneWindow {
        let start = base - base % BITS;
        // Bits below the mark are never read: they may stay clear.
        let mut window = DoneWindow {
            base,
            start,
            words: VecDeque::new(),
            end: base,
            pending: 0,
        };
        window.extend(end);
        window
    }

    pub fn pending(&self) -> u64 {
        self.pending
    }

    pub fn base(&self) -> JobId {
        self.base
    }

    /// Ids below `end` exist now (allocated, pending).
    pub fn extend(&mut self, end: JobId) {
        if end <= self.end {
            return;
        }
        self.pending += end - self.end;
        self.end = end;
        let words = (end - self.start).div_ceil(BITS) as usize;
        if words > self.words.len() {
            self.words.resize(words, 0);
        }
    }

    /// Marks `id` done and moves the mark past every done id at its front; false if it was
    /// known to be done already (or is outside the window).
    pub fn mark_done(&mut self, id: JobId) -> bool {
        if id < self.base || id >= self.end {
            return false;
        }
        let offset = id - self.start;
        let (word, bit) = ((offset / BITS) as usize, offset % BITS);
        let Some(slot) = self.words.get_mut(word) else {
            return false;
        };
        if *slot & (1 << bit) != 0 {
            return false;
        }
        *slot |= 1 << bit;
        self.pending -= 1;
        if id == self.base {
            self.advance();
        }
        true
    }

    /// Moves the mark past the done ids at its front, and drops the words wholly below it.
    fn advance(&mut self) {
        while let Some(&word) = self.words.front() {
            let bit = self.base - self.start;
            let ones = u64::from((word >> bit).trailing_ones()).min(BITS - bit);
            self.base += ones;
            if bit + ones < BITS {
                break;
            }
            self.words.pop_front();
            self.start += BITS;
        }
        self.base = self.base.min(self.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_moves_only_past_a_done_prefix() {
        let mut window = DoneWindow::new(5, 8);
        assert!(window.mark_done(6));
        assert!(!window.mark_done(6), "marked once");
        assert_eq!(window.base(), 5, "5 is still pending");
        assert_eq!(window.pending(), 2);
        window.mark_done(5);
        assert_eq!(window.base(), 7);
        window.extend(10);
        window.mark_done(9);
        window.mark_done(7);
        assert_eq!(window.base(), 8);
        window.mark_done(8);
        assert_eq!(window.base(), 10);
        assert_eq!(window.pending(), 0);
    }

    #[test]
    fn ids_outside_the_window_are_ignored() {
        let mut window = DoneWindow::new(5, 6);
        assert!(!window.mark_done(3));
        assert!(!window.mark_done(42));
        assert_eq!(window.base(), 5);
        window.mark_done(5);
        assert_eq!(window.base(), 6);
        window.extend(6);
        window.mark_done(6);
        assert_eq!(window.base(), 6, "6 does not exist yet");
    }

    #[test]
    fn the_mark_crosses_words_and_a_stuck_id_holds_it() {
        let mut window = DoneWindow::new(60, 60);
        window.extend(300);
        assert_eq!(window.pending(), 240);
        for id in (61..300).rev() {
            assert!(window.mark_done(id));
        }
        assert_eq!(window.base(), 60, "60 is stuck");
        assert_eq!(window.pending(), 1);
        assert!(window.mark_done(60));
        assert_eq!((window.base(), window.pending()), (300, 0));
        assert!(window.words.len() <= 1, "words below the mark are dropped");
        window.extend(400);
        for id in 300..400 {
            window.mark_done(id);
        }
        assert_eq!(window.base(), 400);
    }
}
