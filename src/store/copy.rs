//! Re-encryption in place: a server-side copy of an object onto itself
//! under the configured key with a Bucket Key. No byte leaves S3. Every copy
//! is of the current version and conditional on its ETag still being the one
//! that was checked (`x-amz-copy-source-if-match`), so a concurrent writer is
//! never overwritten: a source pinned to a version id would still match after
//! a newer write, and the copy would bring the old content back on top of it.
//! Above S3's 5 GiB CopyObject limit it goes part by part.

use aws_sdk_s3::types::{MetadataDirective, ServerSideEncryption, StorageClass};
use futures::{StreamExt, TryStreamExt};

use super::multipart::{MIB, part_size_for};
use super::object::{reported_encryption, version_of};
use super::{Store, Stored, WriteIf, keys};
use crate::error::{Error, Result};

/// The object a copy starts from, as it was checked.
#[derive(Debug, Clone, Copy)]
pub struct CopySource<'a> {
    pub key: &'a str,
    /// The ETag that was checked: the copy happens only while the current
    /// version still has it.
    pub etag: &'a str,
    pub size: u64,
    /// Kept through the copy (CopyObject would otherwise make it STANDARD).
    pub storage_class: Option<&'a str>,
}

/// The part size of a multipart copy, unless 10,000 parts need more.
const COPY_PART: u64 = 256 * MIB;
/// Parts of a multipart copy in flight at once.
const PARTS_IN_FLIGHT: usize = 8;

impl Store {
    /// Copies `source` onto its own key under the configured key with a
    /// Bucket Key, keeping its metadata; returns the new version.
    pub async fn reencrypt(&self, source: CopySource<'_>) -> Result<Stored> {
        if source.size > self.max_single_copy {
            return self.reencrypt_by_parts(source).await;
        }
        self.count("CopyObject");
        let out = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(source.key)
            .copy_source(self.copy_source(&source))
            .copy_source_if_match(source.etag)
            .metadata_directive(MetadataDirective::Copy)
            .set_storage_class(source.storage_class.map(StorageClass::from))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.kms_key_id)
            .bucket_key_enabled(true)
            .send()
            .await
            .map_err(|err| self.conditional_error("CopyObject", source.key, err))?;
        let stored = Stored {
            etag: out
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .map(str::to_owned),
            version_id: version_of(out.version_id()),
            encryption: reported_encryption!(out),
        };
        self.check_encryption(source.key, &stored.encryption)?;
        Ok(stored)
    }

    fn copy_source(&self, source: &CopySource<'_>) -> String {
        format!("{}/{}", self.bucket, keys::url_encoded(source.key))
    }

    /// A multipart copy: the HEAD supplies what CopyObject would have
    /// copied by itself (user metadata and the content headers); object
    /// tags are not carried over.
    async fn reencrypt_by_parts(&self, source: CopySource<'_>) -> Result<Stored> {
        let key = source.key;
        self.count("HeadObject");
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .if_match(source.etag)
            .send()
            .await
            .map_err(|err| self.conditional_error("HeadObject", key, err))?;
        self.count("CreateMultipartUpload");
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_metadata(head.metadata().cloned())
            .set_content_type(head.content_type().map(str::to_owned))
            .set_content_encoding(head.content_encoding().map(str::to_owned))
            .set_content_disposition(head.content_disposition().map(str::to_owned))
            .set_content_language(head.content_language().map(str::to_owned))
            .set_cache_control(head.cache_control().map(str::to_owned))
            .set_storage_class(source.storage_class.map(StorageClass::from))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.kms_key_id)
            .bucket_key_enabled(true)
            .send()
            .await
            .map_err(|err| Error::s3("CreateMultipartUpload", &self.bucket, key, err))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let copied = self.copy_parts(&source, &upload_id).await;
        let parts = match copied {
            Ok(parts) => parts,
            Err(err) => {
                // The copy failed; an open upload would only cost storage.
                let _ = self.abort_multipart(key, &upload_id).await;
                return Err(err);
            }
        };
        // Only while the key still holds what was copied.
        let completed = self
            .complete_multipart(key, &upload_id, parts, WriteIf::Matches(source.etag))
            .await;
        if completed.is_err() {
            let _ = self.abort_multipart(key, &upload_id).await;
        }
        completed
    }

    async fn copy_parts(
        &self,
        source: &CopySource<'_>,
        upload_id: &str,
    ) -> Result<Vec<aws_sdk_s3::types::CompletedPart>> {
        let part_size = part_size_for(source.size, self.max_single_copy.min(COPY_PART));
        let copy_source = self.copy_source(source);
        let ranges = (0..source.size.div_ceil(part_size)).map(|index| {
            let start = index * part_size;
            let end = (start + part_size).min(source.size) - 1;
            (index as i32 + 1, format!("bytes={start}-{end}"))
        });
        futures::stream::iter(ranges)
            .map(|(number, range)| {
                let copy_source = &copy_source;
                async move {
                    self.count("UploadPartCopy");
                    let out = self
                        .client
                        .upload_part_copy()
                        .bucket(&self.bucket)
                        .key(source.key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .copy_source(copy_source)
                        .copy_source_range(range)
                        .copy_source_if_match(source.etag)
                        .send()
                        .await
                        .map_err(|err| self.conditional_error("UploadPartCopy", source.key, err))?;
                    Ok(aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(
                            out.copy_part_result()
                                .and_then(|r| r.e_tag())
                                .map(str::to_owned),
                        )
                        .build())
                }
            })
            .buffered(PARTS_IN_FLIGHT)
            .try_collect()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_are_url_encoded() {
        let store = Store::new(
            crate::store::s3_client_from(
                &aws_config::SdkConfig::builder()
                    .behavior_version(aws_config::BehaviorVersion::latest())
                    .build(),
                true,
                aws_sdk_s3::config::retry::RetryConfig::standard(),
            ),
            "b",
            "k",
        );
        let source = CopySource {
            key: "dir/sse s3+x.txt",
            etag: "\"e\"",
            size: 3,
            storage_class: None,
        };
        assert_eq!(store.copy_source(&source), "b/dir/sse%20s3%2Bx.txt");
    }
}
