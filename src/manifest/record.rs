//! One file's entry in a manifest.

use std::borrow::Cow;
use std::path::Path;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::name::timestamp;
use crate::local::attributes::Attributes;
use crate::local::stamp::Stamp;
use crate::store::NULL_VERSION;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Uploaded,
    Skipped,
    /// Unchanged, and copied in place under the configured key.
    Reencrypted,
    Failed,
    /// Dry run only: the file would have been uploaded.
    WouldUpload,
    /// Not walked by this run (the time limit came first): the record is the
    /// last manifest's, carried unchanged, so the manifest stays a whole
    /// snapshot. Its object was stored and verified by an earlier run, at
    /// `timestamp`; the next run walks it first.
    Carried,
    /// A directory or a symbolic link: kept in the manifest only, with its
    /// attributes (and a link's target); nothing is sent to S3.
    Recorded,
    /// Read from a paged snapshot, whose records describe content only: the
    /// file is stored under its key; what the run did to it is in its summary.
    Stored,
}

/// What a record describes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    #[default]
    File,
    Directory,
    Symlink,
}

impl EntryKind {
    fn is_file(&self) -> bool {
        *self == EntryKind::File
    }
}

impl FileStatus {
    /// Whether the record describes an object stored under its key.
    pub fn is_stored(self) -> bool {
        matches!(
            self,
            FileStatus::Uploaded
                | FileStatus::Skipped
                | FileStatus::Reencrypted
                | FileStatus::Carried
                | FileStatus::Stored
        )
    }
}

/// One file's entry in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub local_path: String,
    /// A file unless it says otherwise (manifests before directories and
    /// links were recorded hold files only).
    #[serde(default, skip_serializing_if = "EntryKind::is_file")]
    pub kind: EntryKind,
    pub s3_key: Option<String>,
    pub s3_uri: Option<String>,
    pub size_bytes: u64,
    pub status: FileStatus,
    /// When the run settled the file; absent from a paged snapshot's
    /// records, which describe content only.
    #[serde(default)]
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
    /// The KMS key S3 reported for the stored object, and whether it is
    /// under the bucket's S3 Bucket Key: what a key change is checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_key: Option<bool>,
    /// The file's modification and change times (ns) and inode when it was
    /// read: the next run reuses `md5` without reading a file whose size,
    /// times and inode are all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctime_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    /// Permission bits (with setuid, setgid, sticky), owner and group, as
    /// `lstat` gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// A symbolic link's target, as the link holds it (never followed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

impl FileRecord {
    /// A pending record; the caller sets the outcome.
    pub fn new(path: &Path, size_bytes: u64) -> Self {
        FileRecord {
            local_path: path.to_string_lossy().into_owned(),
            kind: EntryKind::File,
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
            kms_key_id: None,
            bucket_key: None,
            mtime_ns: None,
            ctime_ns: None,
            inode: None,
            mode: None,
            uid: None,
            gid: None,
            link_target: None,
        }
    }

    /// The record of a directory or a symbolic link: kept in the manifest
    /// only, with its attributes and mtime.
    pub fn entry(path: &Path, kind: EntryKind, attributes: Attributes, mtime_ns: i64) -> Self {
        let mut record = FileRecord::new(path, 0);
        record.kind = kind;
        record.status = FileStatus::Recorded;
        record.mtime_ns = Some(mtime_ns);
        record.set_attributes(attributes);
        record
    }

    pub fn set_stamp(&mut self, stamp: Stamp) {
        self.size_bytes = stamp.size;
        self.mtime_ns = Some(stamp.mtime_ns);
        self.ctime_ns = Some(stamp.ctime_ns);
        self.inode = Some(stamp.inode);
    }

    pub fn set_attributes(&mut self, attributes: Attributes) {
        self.mode = Some(attributes.mode);
        self.uid = Some(attributes.uid);
        self.gid = Some(attributes.gid);
    }

    /// The recorded mode, owner and group; `None` for a record written
    /// before they were kept.
    pub fn attributes(&self) -> Option<Attributes> {
        Some(Attributes {
            mode: self.mode?,
            uid: self.uid?,
            gid: self.gid?,
        })
    }

    pub fn stamp(&self) -> Option<Stamp> {
        Some(Stamp {
            size: self.size_bytes,
            mtime_ns: self.mtime_ns?,
            ctime_ns: self.ctime_ns?,
            inode: self.inode?,
        })
    }

    /// The S3 version that holds this file's content. A write that S3
    /// answered without a version id went to an unversioned bucket, where
    /// the object is the version "null" (S3 User Guide, "Working with
    /// objects in a versioning-enabled bucket"): once versioning is on,
    /// only that id still reaches it.
    /// Whether the record is a regular file with a stored object.
    pub fn is_stored_file(&self) -> bool {
        self.kind == EntryKind::File && self.status.is_stored()
    }

    pub fn version(&self) -> &str {
        self.version_id.as_deref().unwrap_or(NULL_VERSION)
    }

    pub fn fail(&mut self, error: String) {
        self.status = FileStatus::Failed;
        self.error = Some(error);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(status: FileStatus, size: u64) -> FileRecord {
        let mut record = FileRecord::new(Path::new("/d/f"), size);
        record.s3_key = Some("f".into());
        record.s3_uri = Some("s3://b/f".into());
        record.status = status;
        record
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
}
