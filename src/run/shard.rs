//! A sharded run, for a tree that one invocation cannot finish: a plan takes
//! the lock and cuts the tree into shards, a sync per shard (one invocation
//! each, from a Step Functions Distributed Map) backs its slice up and
//! stores a shard manifest, and a merge writes the run's manifest from them
//! and releases the lock. What one step hands the next lives under
//! `<prefix>/_manifests/shards/<run id>/`, never in an event, so an event
//! names only which run and which shard.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::lease::Lease;
use crate::error::{Error, Result};
use crate::local::range::PathRange;
use crate::manifest::ManifestLink;
use crate::store::keys;

/// One shard, as the plan lists it and the Distributed Map hands it to a
/// sync (`{"command": "sync", "shard": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    pub run_id: String,
    pub index: u32,
    /// The slice of the tree: consecutive shards' ranges meet, so every
    /// file is in exactly one.
    #[serde(default)]
    pub range: PathRange,
}

/// What the plan decided for the whole run, read by each shard and the merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub run_id: String,
    /// Every stamp a shard takes is later than this: the run's start.
    pub started_at: DateTime<Utc>,
    pub shards: u32,
    /// The lock the plan took; the merge releases it.
    pub lease: Lease,
    /// The manifest every shard takes its index from (the newest full one).
    pub index_manifest: Option<String>,
    /// The run's link of the chain: the newest manifest when it was planned.
    pub previous_manifest: Option<ManifestLink>,
    /// The files the index manifest expected: the merge's shrunk-source check.
    pub expected_files: Option<u64>,
    pub full_rehash: bool,
    pub runs_since_full_rehash: u32,
}

/// The folder of one sharded run's plan, shard list and shard manifests.
pub fn folder(prefix: &str, run_id: &str) -> String {
    keys::manifest_key(prefix, &format!("shards/{run_id}/"))
}

pub fn plan_key(prefix: &str, run_id: &str) -> String {
    format!("{}plan.json", folder(prefix, run_id))
}

/// The shard list: a JSON array, as a Distributed Map's `ItemReader` reads it.
pub fn list_key(prefix: &str, run_id: &str) -> String {
    format!("{}shards.json", folder(prefix, run_id))
}

pub fn manifest_key(prefix: &str, run_id: &str, index: u32) -> String {
    format!("{}shard-{index:05}.json", folder(prefix, run_id))
}

/// An event names a run by its id, which becomes part of a key: only the
/// run ids this tool makes (UUIDs) are taken.
pub fn check_run_id(run_id: &str) -> Result<()> {
    match uuid::Uuid::parse_str(run_id) {
        Ok(id) if id.hyphenated().to_string() == run_id => Ok(()),
        _ => Err(Error::Event(format!(
            "run_id {run_id:?} is not a run id this tool made (a UUID)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_shard_reads_as_the_map_hands_it_on() {
        let id = "0b6ec4a4-32b5-4a2f-9a6e-0a5c8e0f6a11";
        let shard: Shard = serde_json::from_value(json!({
            "run_id": id, "index": 2, "range": {"after": "a/x", "until": "c"}
        }))
        .unwrap();
        assert_eq!(shard.range.after.as_deref(), Some("a/x"));
        assert_eq!(shard.range.until.as_deref(), Some("c"));
        assert_eq!(
            manifest_key("p", id, shard.index),
            format!("p/_manifests/shards/{id}/shard-00002.json")
        );
        let widened = json!({"run_id": id, "index": 0, "bucket": "x"});
        assert!(serde_json::from_value::<Shard>(widened).is_err());
    }

    #[test]
    fn only_run_ids_this_tool_makes_name_a_folder() {
        assert!(check_run_id("0b6ec4a4-32b5-4a2f-9a6e-0a5c8e0f6a11").is_ok());
        for bad in ["../x", "0b6ec4a432b54a2f9a6e0a5c8e0f6a11", "", "a/b"] {
            assert!(check_run_id(bad).is_err(), "{bad}");
        }
    }
}
