//! Where pages end: after a record whose path hashes to a value with its
//! low bits zero, within a minimum and a maximum length. The boundaries
//! depend on the paths around them only, so an edit moves none but its own
//! page's, however large the directory and however deep the tree.

use sha2::{Digest, Sha256};

/// A cutting rule for one level of the tree.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cut {
    /// A boundary where `hash & mask == 0`: pages average `mask + 1` items.
    mask: u64,
    min: usize,
    max: usize,
    /// Mixed into the hash, so levels cut at different places.
    salt: u8,
}

/// Record pages: about 32 records (some 5 KB compressed), so a change of
/// 1% spread over a tree rewrites few bytes beyond what changed.
pub(super) const RECORDS: Cut = Cut {
    mask: 31,
    min: 4,
    max: 256,
    salt: 0,
};

/// Index nodes: about 64 entries, so a million files need three levels and
/// one file is found in four reads.
pub(super) const INDEX: Cut = Cut {
    mask: 63,
    min: 4,
    max: 512,
    salt: 1,
};

impl Cut {
    /// Whether a node of `len` items ends after the item at `path`.
    pub(super) fn ends_after(&self, path: &str, len: usize) -> bool {
        if len >= self.max {
            return true;
        }
        len >= self.min && self.hash(path) & self.mask == 0
    }

    fn hash(&self, path: &str) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update([self.salt]);
        hasher.update(path.as_bytes());
        let digest = hasher.finalize();
        let mut low = [0; 8];
        low.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts(paths: &[String]) -> Vec<usize> {
        let mut len = 0;
        let mut ends = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            len += 1;
            if RECORDS.ends_after(path, len) {
                ends.push(i);
                len = 0;
            }
        }
        ends
    }

    #[test]
    fn an_insertion_moves_only_nearby_boundaries() {
        let paths: Vec<String> = (0..5000).map(|i| format!("/d/{i:06}")).collect();
        let before = cuts(&paths);
        let mut edited = paths.clone();
        edited.insert(2500, "/d/002499a".into());
        let after: Vec<usize> = cuts(&edited)
            .into_iter()
            .map(|i| if i > 2500 { i - 1 } else { i })
            .collect();
        let moved = before.iter().filter(|end| !after.contains(end)).count();
        assert!(moved <= 2, "{moved} boundaries moved");
        let average = paths.len() / before.len();
        assert!((16..=64).contains(&average), "pages of {average} records");
    }

    #[test]
    fn no_page_exceeds_the_maximum() {
        let mut len = 0;
        for i in 0..10_000 {
            len += 1;
            assert!(len <= RECORDS.max);
            if RECORDS.ends_after(&format!("{i}"), len) {
                len = 0;
            }
        }
    }
}
