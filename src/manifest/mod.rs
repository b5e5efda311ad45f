//! The manifest: one JSON document per run, a snapshot of what the run
//! stored. It is written locally and uploaded under `<prefix>/_manifests/`;
//! every command reads manifests through the one streamed reader in [`read`].

pub mod catalog;
pub mod chain;
pub mod forgotten;
pub mod local_dir;
mod locate;
mod name;
pub mod paged;
pub mod publish;
pub mod read;
mod record;
mod snapshot;
pub mod spool;
pub mod stream;
mod summary;
pub mod trusted;
mod write;

use serde::{Deserialize, Serialize};

/// A link of the manifest chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestLink {
    pub key: String,
    /// Hex SHA-256 of the manifest's bytes, when the run read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The manifest's ETag as listed: an opaque version token that any
    /// rewrite changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

pub use locate::{Located, PassedOver, header_of, locate};
pub use name::{
    NameScope, ScopeFields, file_name, is_full_manifest_name, is_index_for, is_manifest_name,
    is_narrowed_name, narrowed_tag_of, scope_tag_of, stamp, timestamp,
};
pub use record::{EntryKind, FileRecord, FileStatus};
pub use snapshot::{Facts, Kind, Snapshot};
pub use summary::{PagesSent, RunStatus, SourceShrunk, Summary, Tally};
pub use write::Written;

/// The run's record, as written locally and to `<prefix>/_manifests/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    /// Every stamp in `files` was taken after this moment; the next run
    /// trusts a stamp only if it had settled by then.
    pub started_at: String,
    pub finished_at: String,
    pub source_dir: String,
    /// The directory this run walked (the source, or a sub-directory of it).
    pub walked_dir: String,
    pub bucket: String,
    pub prefix: String,
    pub kms_key_id: String,
    /// The configured include and exclude globs: a run with other globs
    /// covers other files, so its manifests are another line of snapshots
    /// (marked by a scope tag in their names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// The globs of the event that narrowed the run, if any: with the
    /// walked directory and the prefix, what its line's tag is made of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_exclude: Vec<String>,
    pub dry_run: bool,
    /// Whether the run covered only part of the source (a sub-directory, a
    /// sub-prefix, an event's filter or a shard). Signed with the rest, so
    /// that the name a manifest is stored under must agree with it.
    #[serde(default)]
    pub narrowed: bool,
    /// Whether every file found was processed.
    pub complete: bool,
    /// How many files the source is expected to hold: what this run found,
    /// or, when the source shrank, the count it shrank from (see
    /// `SYNC_MIN_SOURCE_RATIO`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_files: Option<u64>,
    /// The manifest before this one in the prefix's folder (of any run, full
    /// or narrowed), by key and SHA-256: rewriting or deleting an older
    /// manifest breaks the chain that newer ones hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_manifest: Option<ManifestLink>,
    /// Whether every file was read and hashed, rather than trusted by its stamp.
    #[serde(default, alias = "full_verify")]
    pub full_rehash: bool,
    /// Runs since every file was last read and hashed.
    #[serde(default, alias = "runs_since_full_verify")]
    pub runs_since_full_rehash: u32,
    /// Where the walk of a run stopped by the time limit got to: every path
    /// from where it began (the last run's `resume_after`) up to and
    /// including this one was walked and its files processed. The next run
    /// walks on from here, and wraps round to the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_after: Option<String>,
    /// The KMS key that signs this manifest (the signature is kept with
    /// its object, since it covers these bytes); `null`: unsigned.
    #[serde(default)]
    pub signing_key_id: Option<String>,
    /// 1 (absent): the records are in `files`; [`paged::FORMAT`]: they are
    /// in the tree under `root`, and the stored object has no `files`.
    #[serde(default = "format_one", skip_serializing_if = "is_format_one")]
    pub format: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<paged::Root>,
    pub summary: Summary,
    /// None inline in a paged snapshot's object: its root names them.
    #[serde(default)]
    pub files: Vec<FileRecord>,
}

fn format_one() -> u32 {
    1
}

fn is_format_one(format: &u32) -> bool {
    *format == 1
}

impl Manifest {
    /// What its name must say of its scope.
    pub fn scope_fields(&self) -> ScopeFields<'_> {
        ScopeFields {
            source_dir: &self.source_dir,
            walked_dir: &self.walked_dir,
            prefix: &self.prefix,
            configured: (&self.include, &self.exclude),
            event: (&self.event_include, &self.event_exclude),
        }
    }

    /// The records of regular files: what has an object in S3, or failed to.
    pub fn file_records(&self) -> impl Iterator<Item = &FileRecord> {
        self.files.iter().filter(|f| f.kind == EntryKind::File)
    }
}
