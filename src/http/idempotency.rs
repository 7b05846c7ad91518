//! `Idempotency-Key` for `POST /v1/jobs`: a retried request (the same key and body) returns the
//! jobs the first one made instead of making new ones; concurrent retries wait for the first.
//! Kept in memory, bounded in keys, bytes and age (a daemon restart forgets them: a client
//! that retries across one gets new jobs, and README says so).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// Keys remembered at once.
pub const MAX_KEYS: usize = 10_000;
/// Bytes of request bodies the remembered answers stand for (a proxy for their own size).
pub const MAX_BYTES: usize = 64 << 20;
/// How long a key is remembered.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

struct Entry<T> {
    fingerprint: u64,
    weight: usize,
    at: Instant,
    answer: Arc<OnceCell<T>>,
}

pub struct Idempotency<T> {
    entries: HashMap<String, Entry<T>>,
    /// Keys oldest first, with the time they were claimed (a key claimed again after it was
    /// evicted has a newer time, so a stale line here is skipped).
    order: VecDeque<(Instant, String)>,
    bytes: usize,
}

impl<T> Default for Idempotency<T> {
    fn default() -> Self {
        Idempotency {
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }
}

/// Whether a key is usable: visible ASCII, 1 to [`MAX_KEY_LEN`] bytes.
pub fn valid_key(key: &[u8]) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len()) && key.iter().all(|b| (0x21..=0x7e).contains(b))
}

impl<T> Idempotency<T> {
    /// The answer cell for `key`: empty if the request is new (the caller fills it once it
    /// succeeds), set or being set if it is a retry. Err if the key was used for another body.
    pub fn claim(
        &mut self,
        key: &str,
        fingerprint: u64,
        weight: usize,
        now: Instant,
    ) -> Result<Arc<OnceCell<T>>, String> {
        self.evict(now, weight);
        if let Some(entry) = self.entries.get(key) {
            if entry.fingerprint != fingerprint {
                return Err(format!(
                    "Idempotency-Key {key:?} was used for a different request in the last \
                     {}h: use a new key for new jobs",
                    KEEP.as_secs() / 3600
                ));
            }
            return Ok(Arc::clone(&entry.answer));
        }
        let answer = Arc::new(OnceCell::new());
        self.entries.insert(
            key.to_string(),
            Entry {
                fingerprint,
                weight,
                at: now,
                answer: Arc::clone(&answer),
            },
        );
        self.order.push_back((now, key.to_string()));
        self.bytes += weight;
        Ok(answer)
    }

    /// Forgets expired keys, and the oldest ones while a new one of `weight` would not fit.
    fn evict(&mut self, now: Instant, weight: usize) {
        while let Some((at, key)) = self.order.front() {
            let expired = now.saturating_duration_since(*at) >= KEEP;
            let full = self.entries.len() >= MAX_KEYS || self.bytes + weight > MAX_BYTES;
            if !expired && !full {
                return;
            }
            if self.entries.get(key).is_some_and(|e| e.at == *at) {
                if let Some(entry) = self.entries.remove(key) {
                    self.bytes -= entry.weight;
                }
            }
            self.order.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_gets_the_first_answer_and_another_body_is_refused() {
        let mut keys = Idempotency::<u32>::default();
        let now = Instant::now();
        let first = keys.claim("k", 1, 10, now).unwrap();
        first.set(7).unwrap();
        let retry = keys.claim("k", 1, 10, now).unwrap();
        assert_eq!(retry.get(), Some(&7));
        assert!(keys.claim("k", 2, 10, now).is_err());
    }

    #[test]
    fn keys_expire_and_the_oldest_go_first_when_full() {
        let mut keys = Idempotency::<u32>::default();
        let start = Instant::now();
        keys.claim("old", 1, 10, start).unwrap().set(1).unwrap();
        let later = start + KEEP;
        let fresh = keys.claim("old", 2, 10, later).unwrap();
        assert!(fresh.get().is_none(), "an expired key is new again");
        for k in 0..MAX_KEYS + 5 {
            keys.claim(&k.to_string(), 0, 1, later).unwrap();
        }
        assert_eq!(keys.len(), MAX_KEYS);
        keys.claim("big", 0, MAX_BYTES, later).unwrap();
        assert_eq!(
            keys.len(),
            1,
            "a claim that needs every byte evicts the rest"
        );
    }

    #[test]
    fn keys_are_visible_ascii_of_a_bounded_length() {
        assert!(valid_key(b"3f1c-retry-1"));
        assert!(!valid_key(b""));
        assert!(!valid_key(b"has space"));
        assert!(!valid_key("é".as_bytes()));
        assert!(!valid_key(&[b'a'; MAX_KEY_LEN + 1]));
    }
}
