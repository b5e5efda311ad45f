//! Multipart uploads, and S3's limits on their parts.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};

use super::object::{reported_encryption, stored_by};
use super::{MD5_METADATA, Store, Stored, WriteIf};
use crate::error::{Error, Result};
use crate::local::hash::Md5Digest;

pub const MIB: u64 = 1024 * 1024;
/// S3's smallest part (all but the last) and largest part of a multipart upload.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// S3's largest single PUT.
pub const MAX_SINGLE_PUT: u64 = 5 * 1024 * MIB;
/// S3's limit on the number of parts of one multipart upload.
pub const MAX_PARTS: u64 = 10_000;

/// The part size for a file: at least `min_part`, grown in whole MiB so the
/// file fits in 10,000 parts.
pub fn part_size_for(file_size: u64, min_part: u64) -> u64 {
    let needed = file_size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    needed.max(min_part).min(MAX_PART_SIZE)
}

impl Store {
    /// Starts a multipart upload; the whole-file MD5 goes into the metadata.
    pub async fn create_multipart(&self, key: &str, md5: Md5Digest) -> Result<String> {
        self.count("CreateMultipartUpload");
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.kms_key_id)
            .bucket_key_enabled(true)
            .metadata(MD5_METADATA, md5.hex())
            .send()
            .await
            .map_err(|err| Error::s3("CreateMultipartUpload", &self.bucket, key, err))?;
        self.check_encryption(key, &reported_encryption!(out))?;
        out.upload_id().map(str::to_owned).ok_or_else(|| {
            Error::s3_detail(
                "CreateMultipartUpload",
                &self.bucket,
                key,
                "the response has no upload id",
            )
        })
    }

    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Vec<u8>,
    ) -> Result<CompletedPart> {
        let md5 = Md5Digest::of(&body);
        self.count("UploadPart");
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .content_md5(md5.base64())
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|err| Error::s3("UploadPart", &self.bucket, key, err))?;
        Ok(CompletedPart::builder()
            .part_number(part_number)
            .set_e_tag(out.e_tag().map(str::to_owned))
            .build())
    }

    /// Completes an upload; `condition` holds as for a PUT: a re-encrypting
    /// copy completes only while the key still has the ETag it copied
    /// (`If-Match`), so a write that landed meanwhile is never overwritten
    /// with the old content.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        condition: WriteIf<'_>,
    ) -> Result<Stored> {
        self.count("CompleteMultipartUpload");
        let request = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        let conditional = !matches!(condition, WriteIf::Always);
        let request = match condition {
            WriteIf::Always => request,
            WriteIf::Absent => request.if_none_match("*"),
            WriteIf::Matches(etag) => request.if_match(etag),
        };
        let out = request.send().await.map_err(|err| match conditional {
            true => self.conditional_error("CompleteMultipartUpload", key, err),
            false => Error::s3("CompleteMultipartUpload", &self.bucket, key, err),
        })?;
        let mut stored = stored_by!(out, no_sse_c);
        self.check_encryption(key, &stored.encryption)?;
        if stored.encryption.bucket_key_enabled.is_none() {
            // S3 names the Bucket Key here; a server that does not is asked,
            // so that the record says what the object has.
            let reported = self.head_at(key, stored.version_id.as_deref()).await?;
            stored.encryption.bucket_key_enabled = reported
                .and_then(|object| object.encryption)
                .and_then(|e| e.bucket_key_enabled);
        }
        Ok(stored)
    }

    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.count("AbortMultipartUpload");
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|err| Error::s3("AbortMultipartUpload", &self.bucket, key, err))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_never_exceed_ten_thousand() {
        let min = 8 * MIB;
        assert_eq!(part_size_for(0, min), min);
        assert_eq!(part_size_for(100 * MIB, min), min);
        for size in [80_000 * MIB, 80_000 * MIB + 1, 1 << 40, 5 << 40] {
            let part = part_size_for(size, min);
            assert!(
                size.div_ceil(part) <= MAX_PARTS,
                "{size} needs too many parts"
            );
            assert_eq!(part % MIB, 0);
        }
        assert_eq!(part_size_for(80_000 * MIB + 1, min), 9 * MIB);
    }
}
