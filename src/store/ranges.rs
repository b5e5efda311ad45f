//! How a large object is read: in ranges of a part's size, several at
//! once, since one S3 connection carries only some 50-100 MB/s.

/// The ranges' size, and how many are fetched at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranges {
    pub part_size: u64,
    pub at_once: usize,
}

impl Default for Ranges {
    /// What `--part-size` and `--part-concurrency` default to.
    fn default() -> Self {
        Ranges {
            part_size: 8 * 1024 * 1024,
            at_once: 8,
        }
    }
}

impl Ranges {
    /// Whether an object of `size` bytes is read in ranges.
    pub fn apply_to(&self, size: u64) -> bool {
        size > self.part_size
    }

    /// The ranges of an object of `size` bytes, first to last byte.
    pub fn spans(&self, size: u64) -> impl Iterator<Item = (u64, u64)> + use<> {
        let part = self.part_size;
        (0..size)
            .step_by(part as usize)
            .map(move |first| (first, (first + part).min(size) - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_the_object_once() {
        let ranges = Ranges {
            part_size: 10,
            at_once: 2,
        };
        let spans: Vec<_> = ranges.spans(25).collect();
        assert_eq!(spans, [(0, 9), (10, 19), (20, 24)]);
        assert!(!ranges.apply_to(10) && ranges.apply_to(11));
        assert_eq!(ranges.spans(20).last(), Some((10, 19)));
    }
}
