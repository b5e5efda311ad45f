//! A slice of the source by relative path, as a shard of a sharded run
//! covers it: the paths after `after` up to and including `until`, compared
//! as strings with `/` separators. A key is its prefix joined to that
//! string, so the same bounds cut the key space exactly where they cut the
//! tree, and the shards of one plan cover every file exactly once.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl PathRange {
    /// Whether the range holds every path.
    pub fn is_whole(&self) -> bool {
        self.after.is_none() && self.until.is_none()
    }

    /// Whether the entry at `relative` belongs to this range.
    pub fn holds(&self, relative: &Path) -> bool {
        // The walk asks of every entry: the whole range answers without
        // spelling the path.
        self.is_whole() || self.holds_slashed(&slashed(relative))
    }

    /// The same for a path spelled as its key spells it (`a/b.txt`).
    pub fn holds_slashed(&self, path: &str) -> bool {
        self.after.as_deref().is_none_or(|a| path > a)
            && self.until.as_deref().is_none_or(|u| path <= u)
    }

    /// Whether anything under the directory `relative` may belong to this
    /// range: every path under it starts with `relative/`, so the directory
    /// is left out only when that whole block of strings lies outside.
    pub fn may_hold_under(&self, relative: &Path) -> bool {
        if self.is_whole() {
            return true;
        }
        let mut block = slashed(relative);
        if !block.is_empty() {
            block.push('/');
        }
        let past_after = self
            .after
            .as_deref()
            .is_none_or(|a| a < block.as_str() || a.starts_with(&block));
        let before_until = self.until.as_deref().is_none_or(|u| block.as_str() < u);
        past_after && before_until
    }
}

/// The path as its key spells it: components joined by `/`.
fn slashed(relative: &Path) -> String {
    let parts: Vec<_> = relative
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(name) => Some(name.to_string_lossy()),
            _ => None,
        })
        .collect();
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(after: Option<&str>, until: Option<&str>) -> PathRange {
        PathRange {
            after: after.map(Into::into),
            until: until.map(Into::into),
        }
    }

    #[test]
    fn ranges_cut_paths_as_keys_sort() {
        let r = range(Some("a"), Some("b/m"));
        assert!(!r.holds(Path::new("a")));
        // '.' sorts before '/', so "a.txt" comes before "a/x" as keys do.
        assert!(r.holds(Path::new("a.txt")) && r.holds(Path::new("a/x")));
        assert!(r.holds(Path::new("b/m")) && !r.holds(Path::new("b/n")));
        assert!(range(None, None).holds(Path::new("anything")));
    }

    #[test]
    fn a_directory_is_walked_only_if_it_may_hold_paths_in_range() {
        let r = range(Some("b/k"), Some("d"));
        assert!(r.may_hold_under(Path::new("")), "the root holds everything");
        assert!(!r.may_hold_under(Path::new("a")));
        assert!(r.may_hold_under(Path::new("b")), "b/z is after b/k");
        assert!(r.may_hold_under(Path::new("c")));
        assert!(!r.may_hold_under(Path::new("d")), "d/x is after d");
        assert!(r.may_hold_under(Path::new("b/k")), "b/k/x is after b/k");
        assert!(!r.may_hold_under(Path::new("b/a")));
        // Under "c", "c.d" sorts before "c/": the block of c/ is after it.
        assert!(range(Some("c.d"), None).may_hold_under(Path::new("c")));
        assert!(!range(None, Some("c.d")).may_hold_under(Path::new("c")));
    }

    /// Consecutive ranges split any set of paths without gap or overlap.
    #[test]
    fn consecutive_ranges_cover_each_path_once() {
        let cuts = [None, Some("a.b"), Some("a/c"), Some("b"), None];
        let ranges: Vec<_> = cuts.windows(2).map(|w| range(w[0], w[1])).collect();
        for path in [
            "a", "a.b", "a.c", "a/b", "a/c", "a/d", "a-z", "b", "b/x", "c",
        ] {
            let holders = ranges.iter().filter(|r| r.holds(Path::new(path))).count();
            assert_eq!(holders, 1, "{path}");
            let walked: Vec<_> = ranges
                .iter()
                .filter(|r| r.holds(Path::new(path)))
                .filter(|r| {
                    let parent = Path::new(path).parent().unwrap_or(Path::new(""));
                    r.may_hold_under(parent)
                })
                .collect();
            assert_eq!(walked.len(), 1, "{path}'s directory is pruned");
        }
    }
}
