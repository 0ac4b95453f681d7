//! Work a key (a session, a user) has in progress at once, counted in this process: open
//! event streams per session, uploads being received per user. A [`Slot`] is given back when
//! it drops, however its work ends (finished, refused, the client gone, a panic), so a count
//! never leaks. Per replica: N replicas behind a load balancer allow up to N times the limit,
//! which bounds what one client can hold on any one of them.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex, PoisonError},
};

type Counts<K> = Arc<Mutex<HashMap<K, usize>>>;

#[derive(Debug)]
pub struct InFlight<K: Eq + Hash> {
    counts: Counts<K>,
}

impl<K: Eq + Hash> Default for InFlight<K> {
    fn default() -> Self {
        Self { counts: Arc::default() }
    }
}

impl<K: Eq + Hash> Clone for InFlight<K> {
    fn clone(&self) -> Self {
        Self { counts: self.counts.clone() }
    }
}

/// One unit of work of `key` in progress; dropping it ends it.
#[derive(Debug)]
pub struct Slot<K: Eq + Hash> {
    counts: Counts<K>,
    key: K,
}

impl<K: Eq + Hash + Clone> InFlight<K> {
    /// A slot for `key` while it holds fewer than `max`; `None` when it holds them all.
    pub fn take(&self, key: &K, max: usize) -> Option<Slot<K>> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let held = counts.entry(key.clone()).or_insert(0);
        if *held >= max {
            if *held == 0 {
                counts.remove(key);
            }
            return None;
        }
        *held += 1;
        Some(Slot { counts: self.counts.clone(), key: key.clone() })
    }
}

impl<K: Eq + Hash> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = counts.get_mut(&self.key) {
            *held = held.saturating_sub(1);
            // Keys without work are forgotten, so the map holds only what is in progress.
            if *held == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_max_and_a_dropped_slot_frees_its_place() {
        let in_flight = InFlight::default();
        let first = in_flight.take(&"a", 2).expect("first");
        let _second = in_flight.take(&"a", 2).expect("second");
        assert!(in_flight.take(&"a", 2).is_none(), "a third is refused");
        assert!(in_flight.take(&"b", 2).is_some(), "another key is not affected");
        drop(first);
        assert!(in_flight.take(&"a", 2).is_some(), "a place came free");
        assert!(in_flight.take(&"c", 0).is_none(), "a limit of 0 refuses all");
        assert!(!in_flight.counts.lock().expect("lock").contains_key("c"), "nothing kept for a refusal");
    }
}
