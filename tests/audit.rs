//! `audit` on moto: a live prefix with objects other writers stored under
//! SSE-S3, an old key and no Bucket Key, found and fixed in place; an S3
//! Inventory report laid out as AWS documents it; the Batch Operations
//! manifest and, on the real SDK client with aws-smithy-mocks (moto has no
//! S3 Control), the CreateJob request.

mod support;

use std::io::Write;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3control::operation::create_job::CreateJobOutput;
use aws_sdk_s3control::types::{
    JobManifestFieldName, JobManifestFormat, JobReportScope, S3MetadataDirective, S3SseAlgorithm,
    S3StorageClass,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use s3_kms_sync::Error;
use s3_kms_sync::commands::audit::{
    self, AuditOptions, AuditReport, AuditRequest, AuditStatus, Fix,
};
use s3_kms_sync::store::{Finding, Store};
use support::*;

const BUCKET: &str = "audited";
const PREFIX: &str = "backups";

/// How another writer stores an object.
enum Written<'a> {
    SseS3,
    Kms { key: &'a str, bucket_key: bool },
}

async fn put_foreign(s3: &Client, key: &str, body: &[u8], how: Written<'_>) {
    let request = s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .content_type("text/x-foreign")
        .metadata("writer", "other-tool");
    let request = match how {
        Written::SseS3 => request.server_side_encryption(ServerSideEncryption::Aes256),
        Written::Kms { key, bucket_key } => request
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(key)
            .bucket_key_enabled(bucket_key),
    };
    request.send().await.unwrap();
}

fn options() -> AuditOptions {
    AuditOptions {
        concurrency: 4,
        ..AuditOptions::default()
    }
}

async fn audit(store: &Store, request: AuditRequest) -> AuditReport {
    audit::run(store, PREFIX, &options(), &request)
        .await
        .unwrap()
}

fn fix(fix: Fix) -> AuditRequest {
    AuditRequest {
        fix,
        ..AuditRequest::default()
    }
}

fn kinds(report: &AuditReport) -> [u64; 4] {
    Finding::ALL.map(|kind| report.by_kind[&kind])
}

/// A backup of the sample tree under the configured key, with three
/// objects another writer stored otherwise.
struct Live {
    backup: Backup,
    old_key: String,
    store: Store,
}

impl Live {
    async fn new() -> Live {
        let backup = Backup::new(BUCKET, PREFIX, false).await;
        backup.sync().await;
        let old_key = backup.moto.kms_key().await;
        let s3 = backup.moto.s3();
        put_foreign(&s3, "backups/foreign/sse s3.txt", b"one", Written::SseS3).await;
        let old = Written::Kms {
            key: &old_key,
            bucket_key: true,
        };
        put_foreign(&s3, "backups/foreign/old+key.txt", b"two", old).await;
        let no_bucket_key = Written::Kms {
            key: &backup.key_arn,
            bucket_key: false,
        };
        put_foreign(
            &s3,
            "backups/foreign/no-bucket-key.txt",
            b"three",
            no_bucket_key,
        )
        .await;
        let store = Store::new(s3, BUCKET, &backup.key_arn);
        Live {
            backup,
            old_key,
            store,
        }
    }
}

#[tokio::test]
async fn an_audit_of_a_live_prefix_finds_other_writers_objects_and_fixes_them_in_place() {
    let live = Live::new().await;
    let s3 = live.backup.moto.s3();
    let report = audit(&live.store, AuditRequest::default()).await;
    assert_eq!(report.status, AuditStatus::Findings, "{report:#?}");
    assert_eq!(kinds(&report), [1, 1, 1, 0], "{report:#?}");
    assert_eq!(report.findings, 3);
    assert_eq!(report.remaining, 3);
    // The sample tree and the sync's snapshot (its object and pages) are compliant.
    let snapshot = list_keys(&s3, BUCKET)
        .await
        .iter()
        .filter(|key| key.contains("/_manifests/"))
        .count();
    assert!(snapshot >= 2, "a snapshot object and its pages");
    assert_eq!(report.compliant, (sample_files().len() + snapshot) as u64);
    assert_eq!(report.checked, report.compliant + report.findings);
    let wrong = report
        .listed
        .iter()
        .find(|f| f.kind == Finding::WrongKey)
        .unwrap();
    assert_eq!(wrong.key, "backups/foreign/old+key.txt");
    assert!(wrong.detail.contains(&live.old_key), "{}", wrong.detail);
    // Every finding is in the findings object, under the configured key.
    let uri = report.findings_uri.as_deref().unwrap();
    let findings_key = uri.strip_prefix(&format!("s3://{BUCKET}/")).unwrap();
    let lines = String::from_utf8(get_bytes(&s3, BUCKET, findings_key).await).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    let object = head(&s3, BUCKET, findings_key).await;
    assert_eq!(object.ssekms_key_id(), Some(live.backup.key_arn.as_str()));

    let fixed = audit(&live.store, fix(Fix::Copy)).await;
    assert_eq!((fixed.fixed, fixed.remaining), (3, 0), "{fixed:#?}");
    assert_eq!(fixed.status, AuditStatus::Compliant);
    assert_eq!(
        fixed.requests.get("CopyObject"),
        Some(&3),
        "{:?}",
        fixed.requests
    );
    for (key, body) in [
        ("backups/foreign/sse s3.txt", &b"one"[..]),
        ("backups/foreign/old+key.txt", b"two"),
        ("backups/foreign/no-bucket-key.txt", b"three"),
    ] {
        let object = head(&s3, BUCKET, key).await;
        assert_eq!(
            object.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        assert_eq!(
            object.ssekms_key_id(),
            Some(live.backup.key_arn.as_str()),
            "{key}"
        );
        assert_eq!(object.bucket_key_enabled(), Some(true), "{key}");
        // Objects other tools wrote keep their own metadata.
        assert_eq!(
            object.metadata().unwrap().get("writer").unwrap(),
            "other-tool"
        );
        assert_eq!(object.content_type(), Some("text/x-foreign"));
        assert_eq!(get_bytes(&s3, BUCKET, key).await, body);
    }
    let after = audit(&live.store, AuditRequest::default()).await;
    assert_eq!((after.findings, after.status), (0, AuditStatus::Compliant));
}

/// Writes an inventory report of `rows` (CSV, gzipped) under `schema` into
/// the `inventory` bucket, as AWS lays it out; returns its manifest's URI.
async fn write_inventory(
    s3: &Client,
    schema: &str,
    rows: &[Vec<&str>],
    md5: Option<&str>,
) -> String {
    let _ = s3.create_bucket().bucket("inventory").send().await;
    let mut csv = String::new();
    for row in rows {
        let quoted: Vec<String> = row.iter().map(|f| format!("\"{f}\"")).collect();
        csv.push_str(&quoted.join(","));
        csv.push('\n');
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(csv.as_bytes()).unwrap();
    let data = gz.finish().unwrap();
    let data_key = "audited/daily/data/5f3e2d1c.csv.gz";
    let actual_md5 = md5_hex(&data);
    s3.put_object()
        .bucket("inventory")
        .key(data_key)
        .body(ByteStream::from(data))
        .send()
        .await
        .unwrap();
    let manifest = serde_json::json!({
        "sourceBucket": BUCKET,
        "destinationBucket": "arn:aws:s3:::inventory",
        "version": "2016-11-30",
        "creationTimestamp": "1763856000000",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": [{"key": data_key, "size": 1, "MD5checksum": md5.unwrap_or(&actual_md5)}]
    });
    let manifest_key = "audited/daily/2026-11-23T01-00Z/manifest.json";
    s3.put_object()
        .bucket("inventory")
        .key(manifest_key)
        .body(ByteStream::from(manifest.to_string().into_bytes()))
        .send()
        .await
        .unwrap();
    format!("s3://inventory/{manifest_key}")
}

/// The documented fields, in another order than the usual one, so that
/// only reading the schema finds them.
const SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, EncryptionStatus, BucketKeyStatus, VersionId, IsLatest, IsDeleteMarker";

fn inventory_rows() -> Vec<Vec<&'static str>> {
    let row = |key, encryption, bucket_key, latest, marker| {
        vec![
            BUCKET,
            key,
            "3",
            "2026-11-22T01:00:00.000Z",
            "",
            "STANDARD",
            "false",
            encryption,
            bucket_key,
            "",
            latest,
            marker,
        ]
    };
    vec![
        row("backups/top.txt", "SSE-KMS", "ENABLED", "true", "false"),
        row(
            "backups/foreign/sse+s3.txt",
            "SSE-S3",
            "DISABLED",
            "true",
            "false",
        ),
        row(
            "backups/foreign/old%2Bkey.txt",
            "SSE-KMS",
            "ENABLED",
            "true",
            "false",
        ),
        row(
            "backups/foreign/no-bucket-key.txt",
            "SSE-KMS",
            "DISABLED",
            "true",
            "false",
        ),
        row(
            "backups/foreign/customer.bin",
            "SSE-C",
            "DISABLED",
            "true",
            "false",
        ),
        row(
            "backups/foreign/plain.txt",
            "NOT-SSE",
            "DISABLED",
            "true",
            "false",
        ),
        row(
            "backups/foreign/gone-version.txt",
            "NOT-SSE",
            "DISABLED",
            "false",
            "false",
        ),
        row("backups/foreign/deleted.txt", "", "", "true", "true"),
        row(
            "elsewhere/plain.txt",
            "NOT-SSE",
            "DISABLED",
            "true",
            "false",
        ),
    ]
}

#[tokio::test]
async fn an_inventory_report_is_read_by_its_schema_and_yields_an_exactly_encoded_batch_manifest() {
    let live = Live::new().await;
    let s3 = live.backup.moto.s3();
    put_foreign(&s3, "backups/foreign/plain.txt", b"four", Written::SseS3).await;
    let uri = write_inventory(&s3, SCHEMA, &inventory_rows(), None).await;
    let request = AuditRequest {
        inventory: Some(uri.clone()),
        fix: Fix::BatchManifest,
        ..AuditRequest::default()
    };
    let report = audit(&live.store, request).await;
    // not_kms: SSE-S3 and NOT-SSE; wrong_key: found by a HEAD, as an
    // inventory names no key; no_bucket_key; sse_c, reported and never touched.
    assert_eq!(kinds(&report), [2, 1, 1, 1], "{report:#?}");
    assert_eq!(
        report.checked, 6,
        "noncurrent, delete marker and other prefixes left out"
    );
    assert_eq!(report.source, uri);
    // HEADs only for the SSE-KMS rows.
    assert_eq!(
        report.requests.get("HeadObject"),
        Some(&3),
        "{:?}",
        report.requests
    );
    assert_eq!(report.requests.get("ListObjectsV2"), None);
    assert_eq!(report.batch_jobs.len(), 1, "every finding is STANDARD");
    let batch_uri = report.batch_jobs[0].manifest_uri.as_str();
    let batch_key = batch_uri.strip_prefix(&format!("s3://{BUCKET}/")).unwrap();
    assert!(batch_key.starts_with("backups/_audit/"), "{batch_key}");
    let csv = String::from_utf8(get_bytes(&s3, BUCKET, batch_key).await).unwrap();
    let mut rows: Vec<&str> = csv.lines().collect();
    rows.sort_unstable();
    assert_eq!(
        rows,
        [
            "audited,backups/foreign/no-bucket-key.txt",
            "audited,backups/foreign/old%2Bkey.txt",
            "audited,backups/foreign/plain.txt",
            "audited,backups/foreign/sse%20s3.txt",
        ]
    );
    let object = head(&s3, BUCKET, batch_key).await;
    assert_eq!(object.ssekms_key_id(), Some(live.backup.key_arn.as_str()));
    let sse_c = report
        .listed
        .iter()
        .find(|f| f.kind == Finding::SseC)
        .unwrap();
    assert!(sse_c.note.as_deref().unwrap().contains("customer key"));
}

#[tokio::test]
async fn an_inventory_data_file_that_is_not_its_recorded_md5_stops_the_audit() {
    let live = Live::new().await;
    let s3 = live.backup.moto.s3();
    let uri = write_inventory(
        &s3,
        SCHEMA,
        &inventory_rows(),
        Some("00000000000000000000000000000000"),
    )
    .await;
    let request = AuditRequest {
        inventory: Some(uri),
        ..AuditRequest::default()
    };
    let err = audit::run(&live.store, PREFIX, &options(), &request)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("MD5"), "{err}");
    let no_schema = write_inventory(&s3, "Bucket, Key, Size", &[], None).await;
    let request = AuditRequest {
        inventory: Some(no_schema),
        ..AuditRequest::default()
    };
    let err = audit::run(&live.store, PREFIX, &options(), &request)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("EncryptionStatus")),
        "{err}"
    );
}

#[tokio::test]
async fn fix_batch_creates_the_copy_job_that_re_encrypts_under_the_key() {
    let live = Live::new().await;
    const ROLE: &str = "arn:aws:iam::111122223333:role/s3-kms-sync-batch";
    let key_arn = live.backup.key_arn.clone();
    let create = mock!(aws_sdk_s3control::Client::create_job)
        .match_requests(move |req| {
            let copy = req
                .operation()
                .and_then(|o| o.s3_put_object_copy())
                .unwrap();
            let manifest = req.manifest().unwrap();
            let report = req.report().unwrap();
            req.account_id() == Some("111122223333")
                && req.role_arn() == Some(ROLE)
                && req.confirmation_required() == Some(false)
                && req.client_request_token().is_some_and(|t| !t.is_empty())
                && copy.target_resource() == Some("arn:aws:s3:::audited")
                && copy.metadata_directive() == Some(&S3MetadataDirective::Copy)
                && copy.sse_aws_kms_key_id() == Some(key_arn.as_str())
                && copy.bucket_key_enabled()
                && copy.storage_class() == Some(&S3StorageClass::Standard)
                && copy.new_object_metadata().and_then(|m| m.sse_algorithm())
                    == Some(&S3SseAlgorithm::Kms)
                && manifest.spec().map(|s| s.format())
                    == Some(&JobManifestFormat::S3BatchOperationsCsv20180820)
                && manifest.spec().map(|s| s.fields())
                    == Some(&[JobManifestFieldName::Bucket, JobManifestFieldName::Key][..])
                && manifest.location().is_some_and(|l| {
                    l.object_arn()
                        .starts_with("arn:aws:s3:::audited/backups/_audit/")
                        && l.object_arn().ends_with("batch-manifest.standard.csv")
                        && !l.e_tag().is_empty()
                        && !l.e_tag().contains('"')
                })
                && report.bucket() == Some("arn:aws:s3:::audited")
                && report.prefix() == Some("backups/_audit/reports")
                && report.report_scope() == Some(&JobReportScope::FailedTasksOnly)
                && report.enabled()
        })
        .then_output(|| CreateJobOutput::builder().job_id("job-0123").build());
    let control = mock_client!(aws_sdk_s3control, RuleMode::MatchAny, [&create]);
    let options = AuditOptions {
        batch_role_arn: Some(ROLE.into()),
        control: Some(control),
        ..options()
    };
    let report = audit::run(&live.store, PREFIX, &options, &fix(Fix::Batch))
        .await
        .unwrap();
    assert_eq!(create.num_calls(), 1, "the request matched every field");
    assert_eq!(report.batch_jobs.len(), 1);
    assert_eq!(report.batch_jobs[0].job_id.as_deref(), Some("job-0123"));
    assert_eq!(report.batch_rows, Some(3));
    assert_eq!(
        report.status,
        AuditStatus::Findings,
        "the job runs after the audit"
    );
    // Nothing was copied by the audit itself.
    assert_eq!(report.requests.get("CopyObject"), None);
    let s3 = live.backup.moto.s3();
    let object = head(&s3, BUCKET, "backups/foreign/sse s3.txt").await;
    assert_eq!(
        object.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
}

/// On a versioned bucket, a batch job's rows name no version (Batch Copy
/// takes no ETag condition, so a pinned version would be copied back over
/// a newer write), and each storage class gets a job that keeps it;
/// archived objects are left out and listed.
#[tokio::test]
async fn batch_jobs_copy_current_versions_and_keep_each_storage_class() {
    use aws_sdk_s3::types::StorageClass;
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    backup.sync().await;
    let s3 = backup.moto.s3();
    for (key, class) in [
        ("backups/foreign/standard.txt", None),
        ("backups/foreign/ia.txt", Some(StorageClass::StandardIa)),
        ("backups/foreign/cold.txt", Some(StorageClass::Glacier)),
    ] {
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from_static(b"sse-s3"))
            .server_side_encryption(ServerSideEncryption::Aes256)
            .set_storage_class(class)
            .send()
            .await
            .unwrap();
    }
    const ROLE: &str = "arn:aws:iam::111122223333:role/s3-kms-sync-batch";
    let job_for = |class: S3StorageClass, suffix: &'static str, id: &'static str| {
        mock!(aws_sdk_s3control::Client::create_job)
            .match_requests(move |req| {
                let copy = req
                    .operation()
                    .and_then(|o| o.s3_put_object_copy())
                    .unwrap();
                let manifest = req.manifest().unwrap();
                copy.storage_class() == Some(&class)
                    && manifest.spec().map(|s| s.fields())
                        == Some(&[JobManifestFieldName::Bucket, JobManifestFieldName::Key][..])
                    && manifest
                        .location()
                        .is_some_and(|l| l.object_arn().ends_with(suffix))
            })
            .then_output(move || CreateJobOutput::builder().job_id(id).build())
    };
    let standard = job_for(S3StorageClass::Standard, ".standard.csv", "job-standard");
    let infrequent = job_for(S3StorageClass::StandardIa, ".standard_ia.csv", "job-ia");
    let control = mock_client!(
        aws_sdk_s3control,
        RuleMode::MatchAny,
        [&standard, &infrequent]
    );
    let options = AuditOptions {
        batch_role_arn: Some(ROLE.into()),
        control: Some(control),
        ..options()
    };
    let store = Store::new(s3.clone(), BUCKET, &backup.key_arn);
    let report = audit::run(&store, PREFIX, &options, &fix(Fix::Batch))
        .await
        .unwrap();
    assert_eq!((standard.num_calls(), infrequent.num_calls()), (1, 1));
    let jobs: Vec<(&str, u64, Option<&str>)> = report
        .batch_jobs
        .iter()
        .map(|j| (j.storage_class.as_str(), j.rows, j.job_id.as_deref()))
        .collect();
    assert_eq!(
        jobs,
        [
            ("STANDARD", 1, Some("job-standard")),
            ("STANDARD_IA", 1, Some("job-ia"))
        ]
    );
    assert_eq!(report.archived_for_batch, ["backups/foreign/cold.txt"]);
    for job in &report.batch_jobs {
        let key = job
            .manifest_uri
            .strip_prefix(&format!("s3://{BUCKET}/"))
            .unwrap();
        let csv = String::from_utf8(get_bytes(&s3, BUCKET, key).await).unwrap();
        assert!(
            csv.lines().all(|row| row.split(',').count() == 2),
            "no version ids: {csv}"
        );
    }
}
