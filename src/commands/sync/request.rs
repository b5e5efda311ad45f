//! What one run of `sync` is asked for: how it narrows the configured run.
//! Nothing in a request can change the bucket, the KMS key or the source
//! directory.

use serde::Deserialize;

use crate::run::shard::Shard;

/// How one invocation narrows the configured run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Back up only this sub-directory of the source (keys stay relative to the source).
    #[serde(default)]
    pub subdir: Option<String>,
    /// Extra prefix inserted between the configured prefix and the file keys.
    #[serde(default)]
    pub sub_prefix: Option<String>,
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Read and hash every file, trusting no size, time and inode match
    /// (`verify` is its deprecated name).
    #[serde(default, alias = "verify")]
    pub rehash: Option<bool>,
    /// Include globs; a file must match these and the configured filter.
    #[serde(default)]
    pub include: Vec<String>,
    /// Further exclude globs.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// One shard of a sharded run, as its plan listed it: back up that
    /// slice of the source into a shard manifest, under the plan's lock.
    #[serde(default)]
    pub shard: Option<Shard>,
}

/// The fields a request may have, for error messages.
pub const FIELDS: &str = "subdir, sub_prefix, dry_run, rehash, include, exclude and shard";
