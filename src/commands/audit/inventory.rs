//! An S3 Inventory report as the audit's list of objects: its
//! `manifest.json` names the source bucket, the data files and their
//! `fileSchema`, which is read rather than assumed; each gzipped CSV data
//! file is streamed row by row, its MD5 checked against the manifest.

use std::io::Read;

use aws_sdk_s3::types::ServerSideEncryption;
use flate2::read::GzDecoder;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::scan::{Candidate, Scope};
use crate::error::{Error, Result};
use crate::local::hash::{HashingReader, Md5Stream};
use crate::store::{Encryption, Store, decode_listed_key, keys};

/// What the audit needs of an inventory's `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InventoryManifest {
    source_bucket: String,
    /// `arn:aws:s3:::<bucket>`, where the data files are.
    destination_bucket: String,
    file_format: String,
    file_schema: String,
    files: Vec<DataFile>,
}

#[derive(Debug, Deserialize)]
struct DataFile {
    key: String,
    #[serde(rename = "MD5checksum", default)]
    md5: Option<String>,
}

/// Where each field the audit reads is in a row, from `fileSchema`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    bucket: usize,
    key: usize,
    encryption_status: usize,
    version_id: Option<usize>,
    is_latest: Option<usize>,
    is_delete_marker: Option<usize>,
    size: Option<usize>,
    etag: Option<usize>,
    storage_class: Option<usize>,
    bucket_key_status: Option<usize>,
}

impl Columns {
    pub fn from_schema(schema: &str) -> Result<Self> {
        let names: Vec<&str> = schema.split(',').map(str::trim).collect();
        let find = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        let require = |name: &str| {
            find(name).ok_or_else(|| {
                Error::Config(format!(
                    "the inventory's fileSchema has no {name} field ({schema:?}): add EncryptionStatus and BucketKeyStatus to the inventory configuration's optional fields"
                ))
            })
        };
        Ok(Columns {
            bucket: require("Bucket")?,
            key: require("Key")?,
            encryption_status: require("EncryptionStatus")?,
            version_id: find("VersionId"),
            is_latest: find("IsLatest"),
            is_delete_marker: find("IsDeleteMarker"),
            size: find("Size"),
            etag: find("ETag"),
            storage_class: find("StorageClass"),
            bucket_key_status: find("BucketKeyStatus"),
        })
    }

    /// One row as a candidate; `None` for rows the audit does not judge:
    /// noncurrent versions, delete markers, keys outside the scope.
    pub fn candidate(&self, row: &csv::StringRecord, scope: &Scope) -> Option<Candidate> {
        let field = |index: Option<usize>| index.and_then(|i| row.get(i)).filter(|v| !v.is_empty());
        let key = decode_listed_key(field(Some(self.key))?);
        if field(Some(self.bucket)) != Some(scope.bucket.as_str())
            || field(self.is_latest).is_some_and(|v| v.eq_ignore_ascii_case("false"))
            || field(self.is_delete_marker).is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || !scope.covers(&key)
        {
            return None;
        }
        let bucket_key = field(self.bucket_key_status).map(|v| v.eq_ignore_ascii_case("ENABLED"));
        let encryption = match field(Some(self.encryption_status))? {
            "SSE-KMS" => Encryption {
                algorithm: Some(ServerSideEncryption::AwsKms),
                bucket_key_enabled: bucket_key,
                ..Encryption::default()
            },
            "DSSE-KMS" => Encryption {
                algorithm: Some(ServerSideEncryption::AwsKmsDsse),
                ..Encryption::default()
            },
            "SSE-S3" => Encryption {
                algorithm: Some(ServerSideEncryption::Aes256),
                ..Encryption::default()
            },
            "SSE-C" => Encryption {
                customer_key: true,
                ..Encryption::default()
            },
            _ => Encryption::default(),
        };
        Some(Candidate {
            version_id: field(self.version_id).map(str::to_owned),
            size: field(self.size).and_then(|s| s.parse().ok()),
            // The inventory writes ETags unquoted; S3's headers quote them.
            etag: field(self.etag).map(|e| format!("\"{}\"", e.trim_matches('"'))),
            storage_class: field(self.storage_class)
                .filter(|c| *c != "STANDARD")
                .map(str::to_owned),
            encryption: Some(encryption),
            key,
        })
    }
}

/// Streams the candidates of the report whose `manifest.json` is at `uri`
/// into `sender`, data file after data file. The first error ends it.
pub async fn read(
    store: &Store,
    uri: &str,
    scope: &Scope,
    sender: mpsc::Sender<Result<Candidate>>,
) -> Result<()> {
    let (bucket, key) = keys::parse_s3_uri(uri)
        .map_err(|detail| Error::Config(format!("--inventory {uri:?}: {detail}")))?;
    let manifest_store = store.for_bucket(bucket);
    let body = manifest_store
        .get(key)
        .await?
        .ok_or_else(|| {
            Error::Config(format!(
                "no inventory manifest at {uri}: pass the s3:// URI of a report's manifest.json to --inventory"
            ))
        })?
        .bytes()
        .await?;
    let manifest: InventoryManifest = serde_json::from_slice(&body)?;
    if manifest.source_bucket != store.bucket() {
        return Err(Error::Config(format!(
            "the inventory at {uri} lists bucket {}, not {}: pass a report of the backup bucket",
            manifest.source_bucket,
            store.bucket()
        )));
    }
    if !manifest.file_format.eq_ignore_ascii_case("CSV") {
        return Err(Error::Config(format!(
            "the inventory at {uri} is {}; audit reads CSV reports: set the inventory configuration's format to CSV",
            manifest.file_format
        )));
    }
    let columns = Columns::from_schema(&manifest.file_schema)?;
    let data = store.for_bucket(
        manifest
            .destination_bucket
            .rsplit(':')
            .next()
            .unwrap_or_default(),
    );
    for file in manifest.files {
        let fetched = data.get(&file.key).await?.ok_or_else(|| {
            Error::s3_detail(
                "GetObject",
                data.bucket(),
                &file.key,
                "an inventory data file its manifest lists is missing",
            )
        })?;
        let reader = fetched.into_blocking_read();
        let (columns, scope, sender) = (columns.clone(), scope.clone(), sender.clone());
        let where_ = data.uri(&file.key);
        tokio::task::spawn_blocking(move || {
            read_data_file(
                reader,
                file.md5.as_deref(),
                &columns,
                &scope,
                &sender,
                &where_,
            )
        })
        .await??;
    }
    Ok(())
}

fn read_data_file(
    reader: impl Read,
    md5: Option<&str>,
    columns: &Columns,
    scope: &Scope,
    sender: &mpsc::Sender<Result<Candidate>>,
    where_: &str,
) -> Result<()> {
    let mut compressed = HashingReader {
        inner: reader,
        hash: Md5Stream::default(),
    };
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(GzDecoder::new(&mut compressed));
    let mut row = csv::StringRecord::new();
    let bad = |detail: String| Error::Config(format!("inventory data file {where_}: {detail}"));
    while rows.read_record(&mut row).map_err(|e| bad(e.to_string()))? {
        if let Some(candidate) = columns.candidate(&row, scope)
            && sender.blocking_send(Ok(candidate)).is_err()
        {
            return Ok(());
        }
    }
    drop(rows);
    std::io::copy(&mut compressed, &mut std::io::sink())
        .map_err(|err| Error::io("read", where_, err))?;
    let actual = compressed.hash.finish()?.hex();
    match md5 {
        Some(expected) if !expected.eq_ignore_ascii_case(&actual) => Err(bad(format!(
            "its MD5 is {actual}, the inventory manifest records {expected}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, ETag, StorageClass, EncryptionStatus, BucketKeyStatus";

    fn row(fields: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(fields.to_vec())
    }

    #[test]
    fn rows_are_read_by_the_schema_they_name() {
        let scope = Scope::new("b", "p");
        let columns = Columns::from_schema(SCHEMA).unwrap();
        let kms = columns
            .candidate(
                &row(&[
                    "b",
                    "p/sse+s3%2Bx.txt",
                    "v1",
                    "true",
                    "false",
                    "3",
                    "abc",
                    "STANDARD_IA",
                    "SSE-KMS",
                    "DISABLED",
                ]),
                &scope,
            )
            .unwrap();
        assert_eq!(kms.key, "p/sse s3+x.txt");
        assert_eq!(kms.etag.as_deref(), Some("\"abc\""));
        assert_eq!(kms.storage_class.as_deref(), Some("STANDARD_IA"));
        let encryption = kms.encryption.unwrap();
        assert_eq!(encryption.algorithm, Some(ServerSideEncryption::AwsKms));
        assert_eq!(encryption.bucket_key_enabled, Some(false));
        let noncurrent = row(&[
            "b", "p/a", "v0", "false", "false", "3", "e", "STANDARD", "NOT-SSE", "DISABLED",
        ]);
        assert!(columns.candidate(&noncurrent, &scope).is_none());
        let elsewhere = row(&[
            "b", "q/a", "v0", "true", "false", "3", "e", "STANDARD", "NOT-SSE", "DISABLED",
        ]);
        assert!(columns.candidate(&elsewhere, &scope).is_none());
        let sse_c = row(&[
            "b", "p/c", "", "true", "false", "3", "e", "STANDARD", "SSE-C", "DISABLED",
        ]);
        assert!(
            columns
                .candidate(&sse_c, &scope)
                .unwrap()
                .encryption
                .unwrap()
                .customer_key
        );
    }

    #[test]
    fn a_schema_without_encryption_status_is_refused_with_the_fix() {
        let err = Columns::from_schema("Bucket, Key, Size").unwrap_err();
        assert!(err.to_string().contains("EncryptionStatus"), "{err}");
    }
}
