//! What `restore` did: counts, bytes, and each file that failed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::{PassedOver, RunStatus};
use crate::trust::Verdict;

/// One file that was not restored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub path: String,
    pub error: String,
}

/// A file whose object is archived and thawing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub path: String,
    pub detail: String,
}

/// The JSON `restore` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    pub run_id: String,
    /// `succeeded` when every file is in place, `partial` when some failed
    /// or are pending, `failed` when none could be restored.
    pub status: RunStatus,
    /// Why the status is not `succeeded`, when no file says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub manifest_s3_uri: String,
    /// Newer manifests that "latest" did not take, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<PassedOver>,
    /// What the manifest's signature proved.
    pub signature: Verdict,
    pub target_dir: String,
    /// Files written, synced, and their directories synced: durable.
    pub restored: u64,
    /// Already in place with the recorded content.
    pub skipped: u64,
    /// Recorded directories in place (made where missing), with their
    /// attributes set.
    pub directories: u64,
    /// Recorded symbolic links made.
    pub symlinks: u64,
    pub failed: u64,
    /// Archived files a thaw was asked for; a later run brings them back.
    pub pending: u64,
    /// Files not started because a signal (Ctrl-C, SIGTERM) stopped the
    /// restore; running it again brings them back.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_started: u64,
    /// Dry run: files that would be fetched.
    pub would_restore: u64,
    pub bytes_restored: u64,
    pub dry_run: bool,
    /// S3 requests sent, by operation.
    pub requests: BTreeMap<String, u64>,
    pub duration_ms: u64,
    pub failures: Vec<Failure>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_files: Vec<Pending>,
}

impl RestoreReport {
    pub fn derive_status(&mut self) {
        let ok = self.restored + self.skipped + self.would_restore;
        self.status = if self.message.is_some() {
            RunStatus::Failed
        } else if self.failed == 0 && self.pending == 0 && self.not_started == 0 {
            RunStatus::Succeeded
        } else if ok == 0 && self.pending == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Partial
        };
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
