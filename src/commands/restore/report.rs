//! What `restore` did: counts, bytes, and each file that failed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::RunStatus;

/// One file that was not restored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub path: String,
    pub error: String,
}

/// The JSON `restore` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    pub run_id: String,
    /// `succeeded` when every file is in place, `partial` when some failed,
    /// `failed` when none could be restored.
    pub status: RunStatus,
    pub manifest_s3_uri: String,
    pub target_dir: String,
    pub restored: u64,
    /// Already in place with the recorded content.
    pub skipped: u64,
    pub failed: u64,
    /// Dry run: files that would be fetched.
    pub would_restore: u64,
    pub bytes_restored: u64,
    pub dry_run: bool,
    /// S3 requests sent, by operation.
    pub requests: BTreeMap<String, u64>,
    pub duration_ms: u64,
    pub failures: Vec<Failure>,
}

impl RestoreReport {
    pub fn derive_status(&mut self) {
        let ok = self.restored + self.skipped + self.would_restore;
        self.status = if self.failed == 0 {
            RunStatus::Succeeded
        } else if ok == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Partial
        };
    }
}
