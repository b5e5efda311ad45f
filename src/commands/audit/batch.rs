//! The S3 Batch Operations side of `audit`: CSV manifests of findings
//! (`bucket,key`, keys URL-encoded, one manifest per storage class) and
//! the S3PutObjectCopy jobs that re-encrypt them in place.

use aws_sdk_s3control::types::{
    JobManifest, JobManifestFieldName, JobManifestFormat, JobManifestLocation, JobManifestSpec,
    JobOperation, JobReport, JobReportFormat, JobReportScope, S3CopyObjectOperation,
    S3MetadataDirective, S3ObjectMetadata, S3SseAlgorithm, S3StorageClass,
};

use super::report::Spool;
use crate::error::{Error, Result};
use crate::store::keys;

/// Batch Copy's largest object (CopyObject's limit).
pub const MAX_BATCH_COPY: u64 = crate::store::multipart::MAX_SINGLE_PUT;

/// One manifest row: bucket and key, never a version id. A version id in
/// a Batch Operations manifest targets that exact version, and Batch Copy
/// takes no ETag condition, so a row that named the version the audit saw
/// would copy it back over any newer write. Without one, each task copies
/// the current version.
pub fn row(bucket: &str, key: &str) -> String {
    format!("{bucket},{}", keys::url_encoded(key))
}

/// Classes a copy cannot read until a RestoreObject thaws the object.
const ARCHIVED: [&str; 2] = ["GLACIER", "DEEP_ARCHIVE"];

/// The manifests, one per storage class: a copy is STANDARD unless it is
/// given a class, and a job gives all its tasks the same one.
#[derive(Default)]
pub struct BatchManifests {
    by_class: std::collections::BTreeMap<String, Spool>,
}

/// Where a finding went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Row,
    /// Archived: left out.
    Archived,
}

impl BatchManifests {
    pub fn add(&mut self, bucket: &str, key: &str, storage_class: Option<&str>) -> Result<Added> {
        let class = storage_class.unwrap_or("STANDARD");
        if ARCHIVED.contains(&class) {
            return Ok(Added::Archived);
        }
        let spool = match self.by_class.entry(class.to_owned()) {
            std::collections::btree_map::Entry::Occupied(spool) => spool.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => slot.insert(Spool::new()?),
        };
        spool.line(&row(bucket, key))?;
        Ok(Added::Row)
    }

    pub fn rows(&self) -> u64 {
        self.by_class.values().map(|spool| spool.lines).sum()
    }

    /// Each class's manifest, by class.
    pub fn finish(self) -> impl Iterator<Item = (String, Spool)> {
        self.by_class.into_iter()
    }
}

/// The key of a class's manifest: `…batch-manifest.csv` becomes
/// `…batch-manifest.<class>.csv`.
pub fn manifest_key_of_class(key: &str, class: &str) -> String {
    let stem = key.strip_suffix(".csv").unwrap_or(key);
    format!("{stem}.{}.csv", class.to_ascii_lowercase())
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
    /// The class every copy of this job is written in: the class its
    /// objects have.
    pub storage_class: &'a str,
    pub report_prefix: &'a str,
    pub confirmation_required: bool,
    /// Makes a retried request create one job, not two.
    pub client_token: &'a str,
}

impl JobSpec<'_> {
    /// The bucket's ARN in the role's partition: the job, its role and the
    /// bucket share one.
    fn bucket_arn(&self) -> String {
        let partition = keys::partition_of_arn(self.role_arn).unwrap_or("aws");
        keys::bucket_arn(partition, self.bucket)
    }
}

/// Creates the S3PutObjectCopy job; returns its id.
pub async fn create_job(client: &aws_sdk_s3control::Client, spec: &JobSpec<'_>) -> Result<String> {
    let bucket_arn = spec.bucket_arn();
    let built = |err: aws_sdk_s3control::error::BuildError| {
        Error::s3_detail("CreateJob", spec.bucket, spec.manifest_key, err)
    };
    let fields = vec![JobManifestFieldName::Bucket, JobManifestFieldName::Key];
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
        .storage_class(S3StorageClass::from(spec.storage_class))
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
        assert_eq!(row("b", "p/sse s3.txt"), "b,p/sse%20s3.txt");
        assert_eq!(row("b", "p/a+b.txt"), "b,p/a%2Bb.txt");
        assert_eq!(row("b", "p/x,y\"z.txt"), "b,p/x%2Cy%22z.txt");
        assert_eq!(row("b", "p/ünï.txt"), "b,p/%C3%BCn%C3%AF.txt");
    }

    #[test]
    fn a_job_names_the_bucket_in_its_roles_partition() {
        let spec = JobSpec {
            account_id: "123456789012",
            role_arn: "arn:aws-us-gov:iam::123456789012:role/batch",
            bucket: "b",
            kms_key_id: "k",
            manifest_key: "m",
            manifest_etag: "e",
            storage_class: "STANDARD",
            report_prefix: "r",
            confirmation_required: false,
            client_token: "t",
        };
        assert_eq!(spec.bucket_arn(), "arn:aws-us-gov:s3:::b");
    }

    #[test]
    fn each_class_has_a_manifest_and_archived_objects_none() {
        let mut manifests = BatchManifests::default();
        assert_eq!(manifests.add("b", "p/a", None).unwrap(), Added::Row);
        assert_eq!(
            manifests.add("b", "p/b", Some("STANDARD_IA")).unwrap(),
            Added::Row
        );
        assert_eq!(
            manifests.add("b", "p/c", Some("STANDARD_IA")).unwrap(),
            Added::Row
        );
        assert_eq!(
            manifests.add("b", "p/d", Some("GLACIER")).unwrap(),
            Added::Archived
        );
        assert_eq!(
            manifests.add("b", "p/e", Some("DEEP_ARCHIVE")).unwrap(),
            Added::Archived
        );
        assert_eq!(manifests.rows(), 3);
        let classes: Vec<(String, u64)> = manifests.finish().map(|(c, s)| (c, s.lines)).collect();
        assert_eq!(
            classes,
            [("STANDARD".to_owned(), 1), ("STANDARD_IA".to_owned(), 2)]
        );
    }
}
