//! The record of one run: one entry per file, a header, and the summary the
//! function returns.

use std::borrow::Cow;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::{Md5Digest, Md5Stream, Sha256Stream};
use crate::walk::Stamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Uploaded,
    Skipped,
    Failed,
    /// Dry run only: the file would have been uploaded.
    WouldUpload,
}

/// One file's entry in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub local_path: String,
    pub s3_key: Option<String>,
    pub s3_uri: Option<String>,
    pub size_bytes: u64,
    pub status: FileStatus,
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Why the file was uploaded, skipped or left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The ETag S3 returned for this upload: an opaque version token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The S3 version that holds this file's content (versioned buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The file's modification and change times (ns) and inode when it was
    /// read: the next run reuses `md5` without reading a file whose size,
    /// times and inode are all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctime_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
}

impl FileRecord {
    /// A pending record; the caller sets the outcome.
    pub fn new(path: &Path, size_bytes: u64) -> Self {
        FileRecord {
            local_path: path.to_string_lossy().into_owned(),
            s3_key: None,
            s3_uri: None,
            size_bytes,
            status: FileStatus::Failed,
            timestamp: timestamp(Utc::now()),
            md5: None,
            reason: None,
            error: None,
            etag: None,
            version_id: None,
            mtime_ns: None,
            ctime_ns: None,
            inode: None,
        }
    }

    pub fn set_stamp(&mut self, stamp: Stamp) {
        self.size_bytes = stamp.size;
        self.mtime_ns = Some(stamp.mtime_ns);
        self.ctime_ns = Some(stamp.ctime_ns);
        self.inode = Some(stamp.inode);
    }

    pub fn stamp(&self) -> Option<Stamp> {
        Some(Stamp {
            size: self.size_bytes,
            mtime_ns: self.mtime_ns?,
            ctime_ns: self.ctime_ns?,
            inode: self.inode?,
        })
    }

    pub fn fail(&mut self, error: String) {
        self.status = FileStatus::Failed;
        self.error = Some(error);
    }
}

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
    pub failed: u64,
    pub would_upload: u64,
    /// Bytes of file content read from disk (hashing and uploading).
    #[serde(default)]
    pub bytes_read: u64,
    /// Files left for the next run because the time limit came first.
    pub not_reached: u64,
    pub bytes_uploaded: u64,
    pub duration_ms: u64,
    pub dry_run: bool,
    /// Whether every file found was processed.
    pub complete: bool,
    pub manifest_s3_uri: Option<String>,
    pub manifest_local_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_error: Option<String>,
    /// Why a run did nothing (the lock was held).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Summary {
    pub fn tally(
        run_id: &str,
        dry_run: bool,
        files: &[FileRecord],
        not_reached: u64,
        duration_ms: u64,
    ) -> Self {
        let count = |status| files.iter().filter(|f| f.status == status).count() as u64;
        let bytes_uploaded = files
            .iter()
            .filter(|f| f.status == FileStatus::Uploaded)
            .map(|f| f.size_bytes)
            .sum();
        let mut summary = Summary {
            run_id: run_id.to_owned(),
            status: RunStatus::Succeeded,
            uploaded: count(FileStatus::Uploaded),
            skipped: count(FileStatus::Skipped),
            failed: count(FileStatus::Failed),
            would_upload: count(FileStatus::WouldUpload),
            bytes_read: 0,
            not_reached,
            bytes_uploaded,
            duration_ms,
            dry_run,
            complete: not_reached == 0,
            manifest_s3_uri: None,
            manifest_local_path: None,
            manifest_error: None,
            message: None,
        };
        summary.status = summary.derive_status();
        summary
    }

    /// The summary of a run that found the lock held and did nothing.
    pub fn lock_held(
        run_id: &str,
        holder: &crate::lease::Holder,
        elapsed: std::time::Duration,
    ) -> Self {
        let mut summary = Summary::tally(run_id, false, &[], 0, elapsed.as_millis() as u64);
        summary.status = RunStatus::Skipped;
        summary.complete = false;
        summary.message = Some(format!(
            "skipped: another run holds the lock ({} since {}, until {})",
            holder.run_id,
            timestamp(holder.acquired_at),
            timestamp(holder.expires_at)
        ));
        summary
    }

    /// `failed` when nothing succeeded, `partial` when something went wrong
    /// (a file, the manifest, or the run stopped early), `succeeded` otherwise.
    fn derive_status(&self) -> RunStatus {
        let ok = self.uploaded + self.skipped + self.would_upload;
        if self.failed > 0 && ok == 0 {
            RunStatus::Failed
        } else if self.failed > 0 || !self.complete || self.manifest_error.is_some() {
            RunStatus::Partial
        } else {
            RunStatus::Succeeded
        }
    }

    /// The run lost its lease: another run may be working on the prefix, so
    /// this one started no more files and its manifest is incomplete.
    pub fn record_lost_lease(&mut self, why: &str) {
        self.complete = false;
        self.message = Some(format!(
            "lost the lock ({why}); stopped starting files, the next run finishes the rest"
        ));
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
    pub dry_run: bool,
    /// Whether every file found was processed.
    pub complete: bool,
    /// Whether every file was read and hashed, rather than trusted by its stamp.
    #[serde(default)]
    pub full_verify: bool,
    #[serde(default)]
    pub runs_since_full_verify: u32,
    pub summary: Summary,
    pub files: Vec<FileRecord>,
}

impl Manifest {
    /// Writes the local copy, readable by its owner only, streamed through a
    /// temporary file so that neither memory holds the whole document nor a
    /// reader sees half of it. Returns the digests of what was written.
    pub fn write_local(&self, path: &Path) -> Result<Written> {
        let partial = path.with_extension("json.partial");
        let file = crate::manifest_dir::create_private(&partial)
            .map_err(|err| Error::io("create", &partial, err))?;
        let (out, written) = self.write_hashed(std::io::BufWriter::new(file))?;
        out.into_inner()
            .map_err(|err| Error::io("write", &partial, err.into_error()))?
            .sync_all()
            .map_err(|err| Error::io("write", &partial, err))?;
        std::fs::rename(&partial, path).map_err(|err| Error::io("rename", path, err))?;
        Ok(written)
    }

    /// The document in memory, with its digests: the upload when no local
    /// copy could be written.
    pub fn to_json_with_digests(&self) -> Result<(Vec<u8>, Written)> {
        self.write_hashed(Vec::new())
    }

    /// Writes compact JSON to `out`, hashing it on the way: at a million
    /// files every byte of indentation counts (`jq .` prints it readably).
    fn write_hashed<W: std::io::Write>(&self, out: W) -> Result<(W, Written)> {
        let mut out = HashingWriter {
            inner: out,
            md5: Md5Stream::default(),
            sha256: Sha256Stream::default(),
        };
        serde_json::to_writer(&mut out, self)?;
        let written = Written {
            md5: out.md5.finish(),
            sha256: out.sha256.finish_hex(),
        };
        Ok((out.inner, written))
    }
}

/// The digests of a written manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub md5: Md5Digest,
    /// Hex SHA-256: stored with the S3 object, so a local copy can be proven.
    pub sha256: String,
}

/// Passes bytes on and hashes them on the way.
struct HashingWriter<W> {
    inner: W,
    md5: Md5Stream,
    sha256: Sha256Stream,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.md5.update(&bytes[..written]);
        self.sha256.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Suffix of the manifests of narrowed runs (a sub-directory, a sub-prefix
/// or an event's filter): they describe part of the source only, so they
/// never serve as the index of a run.
const NARROWED_SUFFIX: &str = ".narrowed.json";

/// A manifest file name: sortable by start time, unique by run id, and
/// marked when the run covered only part of the source.
pub fn file_name(started: DateTime<Utc>, run_id: &str, narrowed: bool) -> String {
    let suffix = if narrowed { NARROWED_SUFFIX } else { ".json" };
    format!("{}-{run_id}{suffix}", started.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// Whether `name` (a file name, no folder) is the manifest of a run over the
/// whole source: what the next run may take as its index.
pub fn is_full_manifest_name(name: &str) -> bool {
    name.ends_with(".json")
        && !name.ends_with(NARROWED_SUFFIX)
        && !name.contains('/')
        && name.starts_with(|c: char| c.is_ascii_digit())
}

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: FileStatus, size: u64) -> FileRecord {
        FileRecord {
            local_path: "/d/f".into(),
            s3_key: Some("f".into()),
            s3_uri: Some("s3://b/f".into()),
            size_bytes: size,
            status,
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            md5: None,
            reason: None,
            error: None,
            etag: None,
            version_id: None,
            mtime_ns: None,
            ctime_ns: None,
            inode: None,
        }
    }

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

    #[test]
    fn records_keep_the_recipe_field_names() {
        let mut failed = record(FileStatus::Failed, 1);
        failed.error = Some("boom".into());
        let value = serde_json::to_value(&failed).unwrap();
        for field in [
            "local_path",
            "s3_key",
            "s3_uri",
            "size_bytes",
            "status",
            "timestamp",
            "error",
        ] {
            assert!(value.get(field).is_some(), "{field} missing");
        }
        assert_eq!(value["status"], "failed");
        let back: FileRecord = serde_json::from_value(value).unwrap();
        assert_eq!(back, failed);
    }

    #[test]
    fn names_sort_by_time_and_stay_unique() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T02:37:06.5Z")
            .unwrap()
            .to_utc();
        assert_eq!(file_name(t, "abc", false), "20261122T023706.500Z-abc.json");
        assert_ne!(file_name(t, "a", false), file_name(t, "b", false));
        let narrowed = file_name(t, "abc", true);
        assert_eq!(narrowed, "20261122T023706.500Z-abc.narrowed.json");
        assert!(is_full_manifest_name(&file_name(t, "abc", false)));
        assert!(!is_full_manifest_name(&narrowed));
        assert!(!is_full_manifest_name("lock.json"));
    }
}
