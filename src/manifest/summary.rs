//! What a run returns: the counts, the status and where the manifest went.

use serde::{Deserialize, Serialize};

use super::record::{FileRecord, FileStatus};
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Partial,
    Failed,
    /// Another run held the lock; this one did nothing.
    Skipped,
}

/// What the Lambda function returns and the CLI prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub run_id: String,
    pub status: RunStatus,
    pub uploaded: u64,
    pub skipped: u64,
    /// Unchanged files whose objects were copied in place under the
    /// configured key (a key change, another writer, no Bucket Key).
    #[serde(default)]
    pub reencrypted: u64,
    pub failed: u64,
    pub would_upload: u64,
    /// Bytes of file content read from disk (hashing and uploading).
    #[serde(default)]
    pub bytes_read: u64,
    /// Files left for the next run because the time limit came first.
    pub not_reached: u64,
    /// Files the walk did not reach before the time limit, whose records
    /// were carried from the last manifest (status `carried`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub carried: u64,
    /// Directories and symbolic links recorded in the manifest (status
    /// `recorded`), so that a restore gives them back.
    #[serde(default)]
    pub recorded: u64,
    pub bytes_uploaded: u64,
    pub duration_ms: u64,
    pub dry_run: bool,
    /// Whether every file found was processed.
    pub complete: bool,
    pub manifest_s3_uri: Option<String>,
    pub manifest_local_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_error: Option<String>,
    /// Older manifests re-encrypted under the key after this run found a
    /// key change (it re-encrypted files). Known once the manifest is
    /// sent, so never part of it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub manifests_reencrypted: u64,
    /// The KMS key ARN that signed the uploaded manifest. Known only once
    /// it is sent, so never part of the manifest itself, whose
    /// `signing_key_id` says whether it is meant to be signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Why a run did nothing (the lock was held), or what else went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The source held far fewer files than the last complete run recorded
    /// (a missing mount, a mass deletion): the run is never `succeeded` then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_shrunk: Option<SourceShrunk>,
    /// Newer manifests of the run's scope that it did not take as its
    /// index, and why (unsigned, misnamed, ...): with none taken, the run
    /// read and hashed every file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index_passed_over: Vec<super::PassedOver>,
    /// A paged snapshot's nodes, and those this run sent (the rest were
    /// stored by earlier runs), with their compressed bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<PagesSent>,
}

/// What a paged snapshot cost its run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagesSent {
    pub nodes: u64,
    pub sent: u64,
    pub bytes_sent: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How far the source shrank since the last complete run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceShrunk {
    /// Files this run found.
    pub found: u64,
    /// Files the last complete run recorded as stored.
    pub recorded: u64,
}

impl SourceShrunk {
    /// Whether a run over the whole source that found `found` files falls
    /// below `ratio` of the `recorded` count: an empty mount point looks
    /// exactly like a source whose files were all deleted, and must not
    /// pass as a success.
    pub fn check(ratio: f64, recorded: Option<u64>, found: u64) -> Option<Self> {
        let recorded = recorded?;
        ((found as f64) < ratio * recorded as f64).then_some(SourceShrunk { found, recorded })
    }
}

/// File counts by outcome, kept as records go by instead of the records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub uploaded: u64,
    pub skipped: u64,
    pub reencrypted: u64,
    pub failed: u64,
    pub would_upload: u64,
    /// Records carried from the last manifest for files not walked.
    pub carried: u64,
    /// Directories and symbolic links recorded.
    pub recorded: u64,
    pub bytes_uploaded: u64,
}

impl Tally {
    pub fn add(&mut self, record: &FileRecord) {
        match record.status {
            FileStatus::Uploaded => {
                self.uploaded += 1;
                self.bytes_uploaded += record.size_bytes;
            }
            FileStatus::Skipped => self.skipped += 1,
            FileStatus::Reencrypted => self.reencrypted += 1,
            FileStatus::Failed => self.failed += 1,
            FileStatus::WouldUpload => self.would_upload += 1,
            // A record read from a paged snapshot is carried as it was.
            FileStatus::Carried | FileStatus::Stored => self.carried += 1,
            FileStatus::Recorded => self.recorded += 1,
        }
    }

    /// The counts a run's summary gives: what a merge adds up, its shards'
    /// records unread.
    pub fn of_summary(summary: &Summary) -> Self {
        Tally {
            uploaded: summary.uploaded,
            skipped: summary.skipped,
            reencrypted: summary.reencrypted,
            failed: summary.failed,
            would_upload: summary.would_upload,
            carried: summary.carried,
            recorded: summary.recorded,
            bytes_uploaded: summary.bytes_uploaded,
        }
    }

    pub fn absorb(&mut self, other: Tally) {
        self.uploaded += other.uploaded;
        self.skipped += other.skipped;
        self.reencrypted += other.reencrypted;
        self.failed += other.failed;
        self.would_upload += other.would_upload;
        self.carried += other.carried;
        self.recorded += other.recorded;
        self.bytes_uploaded += other.bytes_uploaded;
    }

    /// Entries this run walked and recorded (carried records are not walked).
    pub fn files(&self) -> u64 {
        self.uploaded
            + self.skipped
            + self.reencrypted
            + self.failed
            + self.would_upload
            + self.recorded
    }
}

impl Summary {
    pub fn tally(
        run_id: &str,
        dry_run: bool,
        files: &[FileRecord],
        not_reached: u64,
        duration_ms: u64,
    ) -> Self {
        let mut tally = Tally::default();
        files.iter().for_each(|record| tally.add(record));
        Summary::of(run_id, dry_run, tally, not_reached, duration_ms)
    }

    /// The summary of a run whose records were counted as they went by.
    pub fn of(
        run_id: &str,
        dry_run: bool,
        tally: Tally,
        not_reached: u64,
        duration_ms: u64,
    ) -> Self {
        let mut summary = Summary {
            run_id: run_id.to_owned(),
            status: RunStatus::Succeeded,
            uploaded: tally.uploaded,
            skipped: tally.skipped,
            reencrypted: tally.reencrypted,
            failed: tally.failed,
            would_upload: tally.would_upload,
            carried: tally.carried,
            recorded: tally.recorded,
            bytes_read: 0,
            not_reached,
            bytes_uploaded: tally.bytes_uploaded,
            duration_ms,
            dry_run,
            complete: not_reached == 0,
            manifest_s3_uri: None,
            manifest_local_path: None,
            manifest_error: None,
            manifests_reencrypted: 0,
            signed_by: None,
            message: None,
            source_shrunk: None,
            index_passed_over: Vec::new(),
            pages: None,
        };
        summary.status = summary.derive_status();
        summary
    }

    /// The summary of a run that did nothing, and why (another run held the lock).
    pub fn skipped(run_id: &str, why: String, elapsed: std::time::Duration) -> Self {
        let mut summary = Summary::tally(run_id, false, &[], 0, elapsed.as_millis() as u64);
        summary.status = RunStatus::Skipped;
        summary.complete = false;
        summary.message = Some(format!("skipped: {why}"));
        summary
    }

    /// `failed` when nothing succeeded, `partial` when something went wrong
    /// (a file, the manifest, or the run stopped early), `succeeded` otherwise.
    fn derive_status(&self) -> RunStatus {
        let ok = self.uploaded + self.skipped + self.reencrypted + self.would_upload;
        if self.failed > 0 && ok == 0 {
            RunStatus::Failed
        } else if self.failed > 0
            || !self.complete
            || self.manifest_error.is_some()
            || self.source_shrunk.is_some()
        {
            RunStatus::Partial
        } else {
            RunStatus::Succeeded
        }
    }

    /// The walk stopped at the time limit: files it never reached are not in
    /// `not_reached` either, and the run is incomplete.
    pub fn record_walk_cut_short(&mut self) {
        self.complete = false;
        self.status = self.derive_status();
    }

    /// The run lost its lease: another run may be working on the prefix, so
    /// this one started no more files and its manifest is incomplete.
    pub fn record_lost_lease(&mut self, why: &str) {
        self.complete = false;
        self.add_message(format!(
            "lost the lock ({why}); stopped starting files, the next run finishes the rest"
        ));
    }

    /// A signal asked the process to stop: files not reached are missing.
    pub fn record_interrupted(&mut self, signal: i32) {
        self.complete = false;
        self.add_message(format!(
            "stopped by signal {signal}; the files in flight were finished, the next run does the rest"
        ));
    }

    /// Shard manifests the merge did not take (unsigned, of another run, a
    /// record outside their slice): their files are not in this snapshot.
    pub fn record_refused_shards(&mut self, refused: &[String]) {
        self.complete = false;
        self.add_message(format!("shard manifests refused: {}", refused.join("; ")));
    }

    /// Shards of a sharded run stored no manifest, or stopped before their
    /// slice was done: the run's manifest lacks files, so it is incomplete.
    pub fn record_missing_shards(&mut self, missing: &[u32], incomplete: &[u32]) {
        self.complete = false;
        let list = |shards: &[u32]| {
            let shown: Vec<String> = shards.iter().take(20).map(u32::to_string).collect();
            shown.join(", ")
        };
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!(
                "{} shards stored no manifest ({})",
                missing.len(),
                list(missing)
            ));
        }
        if !incomplete.is_empty() {
            parts.push(format!(
                "{} shards stopped before their slice was done ({})",
                incomplete.len(),
                list(incomplete)
            ));
        }
        self.add_message(format!(
            "{}; the next run backs their files up",
            parts.join(" and ")
        ));
    }

    /// The source shrank below the allowed share of the last complete run:
    /// what was found is backed up, but the run does not count as a success.
    pub fn record_shrunk_source(&mut self, shrunk: SourceShrunk) {
        self.source_shrunk = Some(shrunk);
        self.add_message(format!(
            "the source holds {} files where the last complete run recorded {}: \
             is the file system mounted? (SYNC_MIN_SOURCE_RATIO sets the threshold)",
            shrunk.found, shrunk.recorded
        ));
    }

    /// Adds to the message, after what it already says; the status follows.
    fn add_message(&mut self, text: String) {
        self.message = Some(match self.message.take() {
            Some(earlier) => format!("{earlier}; {text}"),
            None => text,
        });
        self.status = self.derive_status();
    }

    pub fn record_manifest_error(&mut self, error: &Error) {
        let message = error.to_string();
        self.manifest_error = Some(match self.manifest_error.take() {
            Some(earlier) => format!("{earlier}; {message}"),
            None => message,
        });
        self.status = self.derive_status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::record::tests::record;

    #[test]
    fn status_follows_the_counts() {
        let ok = [
            record(FileStatus::Uploaded, 5),
            record(FileStatus::Skipped, 7),
        ];
        let summary = Summary::tally("r", false, &ok, 0, 1);
        assert_eq!(
            (summary.uploaded, summary.skipped, summary.bytes_uploaded),
            (1, 1, 5)
        );
        assert_eq!(summary.status, RunStatus::Succeeded);

        let mixed = [
            record(FileStatus::Uploaded, 5),
            record(FileStatus::Failed, 7),
        ];
        assert_eq!(
            Summary::tally("r", false, &mixed, 0, 1).status,
            RunStatus::Partial
        );
        let bad = [record(FileStatus::Failed, 7)];
        assert_eq!(
            Summary::tally("r", false, &bad, 0, 1).status,
            RunStatus::Failed
        );

        let mut summary = Summary::tally("r", false, &ok, 0, 1);
        summary.record_manifest_error(&Error::Config("x".into()));
        assert_eq!(summary.status, RunStatus::Partial);
    }
}
