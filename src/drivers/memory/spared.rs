//! The keys a write spares from eviction: its own, about to be stored.

use hashbrown::HashSet;

use super::entry::key_eq;

/// A batch of up to this many keys is searched key by key; a larger one through a set, so
/// that a batch making room one victim at a time does not compare every victim with every
/// key of the batch (a quadratic cost: 1.4 s for an `mset` of 40,000 new keys into a full
/// store, measured).
pub(super) const SCANNED: usize = 16;

/// The keys a write spares: no victim is one of them.
pub(super) struct Spared<'k> {
    keys: &'k [&'k str],
    /// The keys as a set, for a batch of more than [`SCANNED`].
    set: Option<HashSet<&'k str>>,
}

impl<'k> Spared<'k> {
    /// Nothing spared: room made for no write in particular.
    pub(super) const NONE: Spared<'static> = Spared {
        keys: &[],
        set: None,
    };

    #[inline]
    pub(super) fn new(keys: &'k [&'k str]) -> Self {
        let set = (keys.len() > SCANNED).then(|| keys.iter().copied().collect());
        Spared { keys, set }
    }

    /// The write's first key: where its room is made first.
    #[inline]
    pub(super) fn first(&self) -> Option<&'k str> {
        self.keys.first().copied()
    }

    /// Whether no key is spared.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    #[inline]
    pub(super) fn contains(&self, key: &str) -> bool {
        match &self.set {
            None => self.keys.iter().any(|spared| key_eq(spared, key)),
            Some(set) => set.contains(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SCANNED, Spared};

    #[test]
    fn a_key_is_spared_whether_searched_or_looked_up() {
        for n in [0, 1, SCANNED, SCANNED + 1, 1000] {
            let keys: Vec<String> = (0..n).map(|i| format!("key:{i}")).collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let spared = Spared::new(&keys);
            assert_eq!(spared.set.is_some(), n > SCANNED);
            assert!(keys.iter().all(|key| spared.contains(key)));
            assert!(!spared.contains("key:-1") && !spared.contains(""));
            assert_eq!(spared.first(), keys.first().copied());
        }
        assert!(!Spared::NONE.contains("key:0"));
        assert!(Spared::NONE.is_empty() && !Spared::new(&["key:0"]).is_empty());
    }
}
