//! What a run knows before it looks at any file: the last full manifest's
//! index and this run's listing, together answering for one key at a time.

use super::index::{Index, Recorded};
use super::listing::{Listing, Presence};
use crate::manifest::{ManifestLink, PassedOver};

/// What a run knows before it looks at any file: the last full manifest's
/// index and this run's listing, either of which may be missing.
pub struct PriorState {
    pub listing: Option<Listing>,
    pub index: Option<Index>,
    /// The newest manifest of the prefix: this run's link in the chain.
    pub previous: Option<ManifestLink>,
    /// Whether every file is read and hashed this run.
    pub full_rehash: bool,
    pub runs_since_full_rehash: u32,
    /// Newer manifests of the scope not taken as the index, and why.
    pub passed_over: Vec<PassedOver>,
}

impl PriorState {
    /// What is known of `key`; the index notes that the run reached it, so
    /// that a run stopped early carries only the records it never reached.
    pub fn prior(&self, key: &str) -> Prior<'_> {
        let recorded = self.index.as_ref().and_then(|i| i.reach(key));
        Prior {
            recorded,
            presence: self.listing.as_ref().map(|v| v.presence(key, recorded)),
            trust_stamp: !self.full_rehash,
        }
    }
}

/// What the run knows of one key before it looks at the file.
#[derive(Debug, Clone, Default)]
pub struct Prior<'a> {
    /// The last manifest's record of the key.
    pub recorded: Option<&'a Recorded>,
    /// The key in this run's listing; `None` when the run has no listing.
    pub presence: Option<Presence<'a>>,
    /// Whether a record whose stamp matches may stand in for reading the file.
    pub trust_stamp: bool,
}
