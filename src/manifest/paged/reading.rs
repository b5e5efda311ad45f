//! How much of a snapshot's tree a reader reads: the pages that may hold
//! some paths, none already read for another snapshot, none that another
//! snapshot shares with it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// How much of a tree a reader reads: the pages that may hold some paths
/// only, and none that it read already for another snapshot (a reader that
/// gathers what many snapshots reference needs each distinct page once).
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub narrow: Option<Narrow>,
    pub seen: Option<Arc<Mutex<HashSet<String>>>>,
    /// Nodes left out: pages another snapshot holds too, which a comparison
    /// of the two need not read.
    pub skip: Option<Arc<HashSet<String>>>,
}

impl Reading {
    /// Reads each distinct node once, across every snapshot read with it.
    pub fn distinct() -> Reading {
        Reading {
            seen: Some(Arc::default()),
            ..Reading::default()
        }
    }

    pub fn narrowed(narrow: Option<Narrow>) -> Reading {
        Reading {
            narrow,
            ..Reading::default()
        }
    }

    /// No page at all: of a paged snapshot, its object only (a document of
    /// the first format is still read whole).
    pub fn header_only() -> Reading {
        Reading::narrowed(Some(Narrow::default()))
    }

    /// Whether no path can be met, so no node need be read.
    pub fn reads_nothing(&self) -> bool {
        self.narrow.as_ref().is_some_and(|n| n.prefixes.is_empty())
    }

    /// Leaves out the pages `skip` names.
    pub fn skipping(skip: HashSet<String>) -> Reading {
        Reading {
            skip: Some(Arc::new(skip)),
            ..Reading::default()
        }
    }

    pub(super) fn skips(&self, sha256: &str) -> bool {
        self.skip.as_ref().is_some_and(|skip| skip.contains(sha256))
    }

    /// Whether the node `sha256` is to be read (and is noted as read).
    pub(super) fn first_sight(&self, sha256: &str) -> bool {
        let Some(seen) = &self.seen else {
            return true;
        };
        seen.lock()
            .map_or(true, |mut seen| seen.insert(sha256.to_owned()))
    }

    /// The nodes a distinct reading has read so far, across its snapshots.
    pub fn read_nodes(&self) -> Vec<String> {
        let seen = self.seen.as_ref().and_then(|seen| seen.lock().ok());
        seen.map(|seen| seen.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the whole tree is read, so its record count must hold.
    pub(super) fn whole(&self) -> bool {
        self.narrow.is_none() && self.seen.is_none() && self.skip.is_none()
    }
}

/// The part of a snapshot a reader needs: the records whose local path
/// starts with one of `prefixes` (and maybe a few around them). Only the
/// nodes whose range of paths meets one are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrow {
    pub prefixes: Vec<String>,
}

impl Narrow {
    /// Paths relative to `source_dir` made the local paths records hold.
    pub fn under(&self, source_dir: &str) -> Narrow {
        let source = source_dir.trim_end_matches('/');
        Narrow {
            prefixes: self
                .prefixes
                .iter()
                .map(|relative| format!("{source}/{relative}"))
                .collect(),
        }
    }

    /// Whether the node whose paths run from `first` up to `next` (the next
    /// node's first path; the end of the tree when `None`) may hold a path
    /// under one of the prefixes.
    pub(super) fn meets(&self, first: &str, next: Option<&str>) -> bool {
        self.prefixes.iter().any(|prefix| {
            let below_end = next.is_none_or(|next| next > prefix.as_str());
            let above_start = first <= prefix.as_str() || first.starts_with(prefix.as_str());
            below_end && above_start
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrowed_read_keeps_the_nodes_that_may_hold_its_paths() {
        let narrow = Narrow {
            prefixes: vec!["/s/b/x".into()],
        };
        assert!(narrow.meets("/s/a", Some("/s/c")), "the range spans it");
        assert!(narrow.meets("/s/b/x", Some("/s/b/y")));
        assert!(narrow.meets("/s/b/x/1", None), "the node starts inside it");
        assert!(
            !narrow.meets("/s/a", Some("/s/b/w")),
            "the range ends before it"
        );
        assert!(!narrow.meets("/s/b/y", None), "the range starts after it");
    }
}
