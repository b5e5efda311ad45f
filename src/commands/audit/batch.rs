//! The S3 Batch Operations side of `audit`: the CSV manifest of findings
//! (`bucket,key[,versionId]`, keys URL-encoded, version ids on every row or
//! none) and the S3PutObjectCopy job that re-encrypts them in place.

use aws_sdk_s3control::types::{
    JobManifest, JobManifestFieldName, JobManifestFormat, JobManifestLocation, JobManifestSpec,
    JobOperation, JobReport, JobReportFormat, JobReportScope, S3CopyObjectOperation,
    S3MetadataDirective, S3ObjectMetadata, S3SseAlgorithm,
};

use super::report::Spool;
use crate::error::{Error, Result};
use crate::store::keys;

/// Batch Copy's largest object (CopyObject's limit).
pub const MAX_BATCH_COPY: u64 = crate::store::multipart::MAX_SINGLE_PUT;

/// One manifest row.
pub fn row(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    match version_id {
        Some(version) => format!(
            "{bucket},{},{}",
            keys::url_encoded(key),
            keys::url_encoded(version)
        ),
        None => format!("{bucket},{}", keys::url_encoded(key)),
    }
}

/// The manifest written two ways at once, with version ids and without,
/// so that the one that fits (every row has a version id, or not) is chosen
/// at the end without holding the rows.
pub struct BatchManifest {
    with_versions: Spool,
    without: Spool,
    all_versioned: bool,
}

impl BatchManifest {
    pub fn new() -> Result<Self> {
        Ok(BatchManifest {
            with_versions: Spool::new()?,
            without: Spool::new()?,
            all_versioned: true,
        })
    }

    pub fn add(&mut self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<()> {
        self.all_versioned &= version_id.is_some();
        if self.all_versioned {
            self.with_versions.line(&row(bucket, key, version_id))?;
        }
        self.without.line(&row(bucket, key, None))
    }

    pub fn rows(&self) -> u64 {
        self.without.lines
    }

    /// The manifest to upload, and whether its rows carry version ids.
    pub fn finish(self) -> (Spool, bool) {
        if self.all_versioned && self.rows() > 0 {
            (self.with_versions, true)
        } else {
            (self.without, false)
        }
    }
}

/// What the re-encrypting copy job is made of.
#[derive(Debug, Clone)]
pub struct JobSpec<'a> {
    pub account_id: &'a str,
    pub role_arn: &'a str,
    pub bucket: &'a str,
    pub kms_key_id: &'a str,
    pub manifest_key: &'a str,
    pub manifest_etag: &'a str,
    pub with_versions: bool,
    pub report_prefix: &'a str,
    pub confirmation_required: bool,
    /// Makes a retried request create one job, not two.
    pub client_token: &'a str,
}

/// Creates the S3PutObjectCopy job; returns its id.
pub async fn create_job(client: &aws_sdk_s3control::Client, spec: &JobSpec<'_>) -> Result<String> {
    let bucket_arn = format!("arn:aws:s3:::{}", spec.bucket);
    let built = |err: aws_sdk_s3control::error::BuildError| {
        Error::s3_detail("CreateJob", spec.bucket, spec.manifest_key, err)
    };
    let mut fields = vec![JobManifestFieldName::Bucket, JobManifestFieldName::Key];
    if spec.with_versions {
        fields.push(JobManifestFieldName::VersionId);
    }
    let manifest = JobManifest::builder()
        .spec(
            JobManifestSpec::builder()
                .format(JobManifestFormat::S3BatchOperationsCsv20180820)
                .set_fields(Some(fields))
                .build()
                .map_err(built)?,
        )
        .location(
            JobManifestLocation::builder()
                .object_arn(format!("{bucket_arn}/{}", spec.manifest_key))
                .e_tag(spec.manifest_etag.trim_matches('"'))
                .build()
                .map_err(built)?,
        )
        .build();
    let copy = S3CopyObjectOperation::builder()
        .target_resource(&bucket_arn)
        .metadata_directive(S3MetadataDirective::Copy)
        .new_object_metadata(
            S3ObjectMetadata::builder()
                .sse_algorithm(S3SseAlgorithm::Kms)
                .build(),
        )
        .sse_aws_kms_key_id(spec.kms_key_id)
        .bucket_key_enabled(true)
        .build();
    let report = JobReport::builder()
        .bucket(&bucket_arn)
        .format(JobReportFormat::ReportCsv20180820)
        .enabled(true)
        .prefix(spec.report_prefix)
        .report_scope(JobReportScope::FailedTasksOnly)
        .build();
    let out = client
        .create_job()
        .account_id(spec.account_id)
        .confirmation_required(spec.confirmation_required)
        .operation(JobOperation::builder().s3_put_object_copy(copy).build())
        .manifest(manifest)
        .report(report)
        .priority(10)
        .role_arn(spec.role_arn)
        .client_request_token(spec.client_token)
        .description(format!(
            "s3-kms-sync audit: re-encrypt under {}",
            spec.kms_key_id
        ))
        .send()
        .await
        .map_err(|err| Error::s3("CreateJob", spec.bucket, spec.manifest_key, err))?;
    out.job_id().map(str::to_owned).ok_or_else(|| {
        Error::s3_detail(
            "CreateJob",
            spec.bucket,
            spec.manifest_key,
            "the answer has no job id",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_url_encode_keys_as_batch_operations_requires() {
        assert_eq!(row("b", "p/sse s3.txt", None), "b,p/sse%20s3.txt");
        assert_eq!(row("b", "p/a+b.txt", None), "b,p/a%2Bb.txt");
        assert_eq!(
            row("b", "p/x,y\"z.txt", Some("v.1_x")),
            "b,p/x%2Cy%22z.txt,v.1_x"
        );
        assert_eq!(row("b", "p/ünï.txt", None), "b,p/%C3%BCn%C3%AF.txt");
    }
}
