//! The done-window: which job ids at or above the low-water mark are finished. Every id below
//! the mark is finished, so a replay scans job records from the mark only, and the journal
//! needs no in-flight index (an index costs two writes per job).
//!
//! After a restart the window starts with every id from the mark on pending, and learns which
//! are done as the replay reads their records, so work starts before the scan ends. Until then
//! its pending count is an upper bound.

use std::collections::VecDeque;

use crate::job::JobId;

#[derive(Debug, Clone)]
pub struct DoneWindow {
    /// Every id below this one is done: the low-water mark.
    base: JobId,
    /// `done[i]` is whether `base + i` is done; ids from `base + done.len()` on do not exist yet.
    done: VecDeque<bool>,
    /// Ids in the window not (yet) known to be done.
    pending: u64,
}

impl DoneWindow {
    /// A window over `base..end`, all pending.
    pub fn new(base: JobId, end: JobId) -> DoneWindow {
        let len = end.saturating_sub(base);
        DoneWindow {
            base,
            done: std::iter::repeat_n(false, len as usize).collect(),
            pending: len,
        }
    }

    pub fn pending(&self) -> u64 {
        self.pending
    }

    pub fn base(&self) -> JobId {
        self.base
    }

    /// Ids below `end` exist now (allocated, pending).
    pub fn extend(&mut self, end: JobId) {
        let len = end.saturating_sub(self.base) as usize;
        if len > self.done.len() {
            self.pending += (len - self.done.len()) as u64;
            self.done.resize(len, false);
        }
    }

    /// Marks `id` done and moves the mark past every done id at its front; false if it was
    /// known to be done already (or is outside the window).
    pub fn mark_done(&mut self, id: JobId) -> bool {
        let Some(offset) = id.checked_sub(self.base) else {
            return false;
        };
        let newly = match self.done.get_mut(offset as usize) {
            Some(slot) if !*slot => {
                *slot = true;
                self.pending -= 1;
                true
            }
            _ => false,
        };
        while self.done.front() == Some(&true) {
            self.done.pop_front();
            self.base += 1;
        }
        newly
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
}
