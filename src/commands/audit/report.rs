//! What `audit` found and did: counts per kind, a bounded list of findings
//! in the printed report, and every finding in a JSON Lines object under
//! `<prefix>/_audit/`.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::local::hash::Md5Stream;
use crate::run::metrics;
use crate::store::{Finding, PutExtras, Store, WriteIf, file_body};

/// Findings listed in the printed report; the rest are in the findings object.
pub const LISTED_FINDINGS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditStatus {
    /// Every object checked is under the configured key with a Bucket Key.
    Compliant,
    /// Findings remain (or objects could not be checked).
    Findings,
}

/// One object that is not SSE-KMS under the configured key with a Bucket Key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingEntry {
    pub key: String,
    pub kind: Finding,
    /// The encryption found.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `None` for STANDARD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Re-encrypted in place by this audit.
    pub fixed: bool,
    /// Why a fix failed, or why none was tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The Batch Operations manifest of one storage class, and its job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchJob {
    pub storage_class: String,
    pub manifest_uri: String,
    pub rows: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

/// The JSON `audit` prints (and returns under Lambda).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    pub run_id: String,
    pub status: AuditStatus,
    pub bucket: String,
    pub prefix: String,
    /// "listing", or the inventory manifest's URI.
    pub source: String,
    /// Objects judged.
    pub checked: u64,
    pub compliant: u64,
    /// Objects that were not compliant when judged.
    pub findings: u64,
    pub by_kind: BTreeMap<Finding, u64>,
    /// Findings re-encrypted in place (`--fix copy`).
    pub fixed: u64,
    /// Findings still not compliant, and objects that could not be judged.
    pub remaining: u64,
    /// Objects that could not be judged (a HEAD failed), each a finding
    /// entry of its own in the findings object.
    pub errors: u64,
    /// Objects an inventory listed that are gone now.
    pub vanished: u64,
    /// The first findings; `findings_uri` has them all.
    pub listed: Vec<FindingEntry>,
    pub findings_uri: Option<String>,
    /// Rows of the Batch Operations manifests, all classes together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_rows: Option<u64>,
    /// One manifest (and, for `--fix batch`, one job) per storage class:
    /// a copy sets the class it is given, so each job names its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch_jobs: Vec<BatchJob>,
    /// Findings above Batch Copy's 5 GiB limit, left for `--fix copy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub too_large_for_batch: Vec<String>,
    /// Archived findings (GLACIER, DEEP_ARCHIVE), left out of the batch
    /// manifests: a copy of them fails until a RestoreObject thaws them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archived_for_batch: Vec<String>,
    pub requests: BTreeMap<String, u64>,
    pub duration_ms: u64,
}

impl AuditReport {
    pub fn new(run_id: &str, bucket: &str, prefix: &str, source: String) -> Self {
        AuditReport {
            run_id: run_id.to_owned(),
            status: AuditStatus::Compliant,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            source,
            checked: 0,
            compliant: 0,
            findings: 0,
            by_kind: Finding::ALL.iter().map(|kind| (*kind, 0)).collect(),
            fixed: 0,
            remaining: 0,
            errors: 0,
            vanished: 0,
            listed: Vec::new(),
            findings_uri: None,
            batch_rows: None,
            batch_jobs: Vec::new(),
            too_large_for_batch: Vec::new(),
            archived_for_batch: Vec::new(),
            requests: BTreeMap::new(),
            duration_ms: 0,
        }
    }

    /// Counts one finding and keeps it if the listed ones are not full.
    pub fn add(&mut self, entry: &FindingEntry) {
        self.findings += 1;
        *self.by_kind.entry(entry.kind).or_default() += 1;
        if entry.fixed {
            self.fixed += 1;
        } else {
            self.remaining += 1;
        }
        if self.listed.len() < LISTED_FINDINGS {
            self.listed.push(entry.clone());
        }
    }

    pub fn finish(&mut self) {
        self.status = if self.remaining == 0 && self.errors == 0 {
            AuditStatus::Compliant
        } else {
            AuditStatus::Findings
        };
    }

    /// The EMF document of this audit.
    pub fn emf(&self, function_name: &str, timestamp_ms: i64) -> serde_json::Value {
        let metrics = [
            ("AuditChecked", "Count", self.checked),
            ("AuditFindings", "Count", self.findings),
            ("AuditFixed", "Count", self.fixed),
            ("AuditRemaining", "Count", self.remaining + self.errors),
        ];
        let properties = json!({"RunId": self.run_id, "Command": "audit"});
        metrics::document(function_name, timestamp_ms, &metrics, properties)
    }
}

/// Lines written to a temporary file and hashed on the way, then uploaded
/// as one object: the list of findings can outgrow memory, not the disk.
pub struct Spool {
    file: BufWriter<tempfile::NamedTempFile>,
    md5: Md5Stream,
    pub lines: u64,
}

impl Spool {
    pub fn new() -> Result<Self> {
        let file = tempfile::NamedTempFile::new()
            .map_err(|err| Error::io("create", std::env::temp_dir(), err))?;
        Ok(Spool {
            file: BufWriter::new(file),
            md5: Md5Stream::default(),
            lines: 0,
        })
    }

    pub fn line(&mut self, text: &str) -> Result<()> {
        for bytes in [text.as_bytes(), b"\n"] {
            self.md5.update(bytes);
            self.file
                .write_all(bytes)
                .map_err(|err| Error::io("write", self.file.get_ref().path(), err))?;
        }
        self.lines += 1;
        Ok(())
    }

    /// Uploads the lines under `key` with SSE-KMS; returns the new ETag.
    pub async fn upload(self, store: &Store, key: &str, content_type: &str) -> Result<String> {
        let file = self
            .file
            .into_inner()
            .map_err(|err| Error::io("write", std::env::temp_dir(), err.into_error()))?;
        let body = file_body(file.path()).await?;
        let extras = PutExtras {
            content_type: Some(content_type),
            ..PutExtras::default()
        };
        let stored = store
            .put(key, body, self.md5.finish()?, extras, WriteIf::Always)
            .await?;
        Ok(stored.etag.unwrap_or_default())
    }
}
