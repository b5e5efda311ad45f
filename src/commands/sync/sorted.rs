//! Values by key in one sorted vector: about half the memory of a hash map
//! at a million keys (no empty buckets, no power-of-two growth), for maps
//! that are filled once and then only read.

/// Filled with [`SortedMap::push`], then [`SortedMap::seal`]ed before any lookup.
#[derive(Debug)]
pub struct SortedMap<V> {
    entries: Vec<(Box<str>, V)>,
}

impl<V> Default for SortedMap<V> {
    fn default() -> Self {
        SortedMap {
            entries: Vec::new(),
        }
    }
}

impl<V> SortedMap<V> {
    pub fn push(&mut self, key: Box<str>, value: V) {
        self.entries.push((key, value));
    }

    /// Sorts by key; of equal keys the last pushed stays, as in a map.
    pub fn seal(&mut self) {
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        self.entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        self.entries.shrink_to_fit();
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.find(key).map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.find(key).map(|i| &mut self.entries[i].1)
    }

    /// The value at `at` in key order.
    pub fn value_at(&self, at: usize) -> &V {
        &self.entries[at].1
    }

    /// Where `key` is in key order.
    pub fn find(&self, key: &str) -> Option<usize> {
        self.entries.binary_search_by(|(k, _)| (**k).cmp(key)).ok()
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| &**k)
    }

    /// Keys and values in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_after_sealing_find_the_last_value_of_a_key() {
        let mut map = SortedMap::default();
        for (key, value) in [("b", 1), ("a", 2), ("c", 3), ("a", 4)] {
            map.push(key.into(), value);
        }
        map.seal();
        assert_eq!(map.len(), 3);
        assert_eq!(map.get("a"), Some(&4));
        assert_eq!(map.get("c"), Some(&3));
        assert_eq!(map.get("d"), None);
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
