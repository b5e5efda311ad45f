//! `replication plan|apply` on moto: buckets in two regions, a bucket that
//! already replicates under someone else's rule, a bad row; and, on the real
//! SDK client with aws-smithy-mocks, an AccessDenied that must not read as
//! "no replication", and the Batch Replication job request (moto has no
//! Batch Operations API).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Destination,
    ReplicationConfiguration, ReplicationRule, ReplicationRuleStatus, ServerSideEncryption,
    VersioningConfiguration,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use s3_kms_sync::commands::replication::{
    self, Action, Clients, Outcome, RULE_ID_PREFIX, ReplicationArgs, ReplicationJob,
    ReplicationReport,
};
use support::proxy::Proxy;
use support::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/s3-kms-sync-replication";
const EU_KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/5678efab-12ab-34cd-56ef-1234567890ab";
const US_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/0f9e8d7c-12ab-34cd-56ef-1234567890ab";
const HEADER: [&str; 9] = [
    "Source Bucket Name",
    "Region",
    "Target Storage Class",
    "Prefix Filter",
    "DeleteMarkerReplication",
    "Existing Object Replication",
    "Target Bucket Name",
    "Replica KMS Key ARN",
    "Tags",
];

fn sheet_rows() -> Vec<[&'static str; 9]> {
    vec![
        [
            "photos",
            "eu-west-1",
            "STANDARD_IA",
            "",
            "Disabled",
            "Enabled",
            "",
            EU_KEY,
            "team=media",
        ],
        [
            "ledgers",
            "us-east-1",
            "",
            "2026/",
            "Enabled",
            "Disabled",
            "ledgers-replica",
            US_KEY,
            "",
        ],
        [
            "foreign",
            "eu-west-1",
            "",
            "",
            "Disabled",
            "Disabled",
            "",
            EU_KEY,
            "",
        ],
        ["broken", "mars-north-1", "", "", "", "", "", EU_KEY, ""],
    ]
}

fn write_csv(dir: &Path) -> PathBuf {
    let path = dir.join("buckets.csv");
    let mut writer = csv::Writer::from_path(&path).unwrap();
    writer.write_record(HEADER).unwrap();
    for row in sheet_rows() {
        writer.write_record(row).unwrap();
    }
    writer.flush().unwrap();
    path
}

fn write_xlsx(dir: &Path) -> PathBuf {
    let path = dir.join("buckets.xlsx");
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (r, row) in std::iter::once(HEADER).chain(sheet_rows()).enumerate() {
        for (c, cell) in row.iter().enumerate() {
            sheet.write_string(r as u32, c as u16, *cell).unwrap();
        }
    }
    workbook.save(&path).unwrap();
    path
}

async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str, region: Option<&str>) {
    s3.create_bucket()
        .bucket(bucket)
        .set_create_bucket_configuration(region.map(|r| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(r))
                .build()
        }))
        .send()
        .await
        .unwrap();
}

async fn set_versioning(s3: &aws_sdk_s3::Client, bucket: &str, status: BucketVersioningStatus) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .unwrap();
}

/// Sources as the post's script finds them: SSE-KMS, unversioned or
/// versioning suspended; one that replicates already under a rule of its
/// owner's.
async fn sources(moto: &Moto) {
    let s3 = moto.s3();
    let key = moto.kms_key().await;
    create_bucket(&s3, "photos", None).await;
    // Its default encryption names the key by an alias, as a console user
    // may have set it.
    moto.kms()
        .create_alias()
        .alias_name("alias/photos")
        .target_key_id(key.rsplit('/').next().unwrap())
        .send()
        .await
        .unwrap();
    moto.encrypt_by_default("photos", "alias/photos").await;
    create_bucket(&s3, "ledgers", Some("eu-west-1")).await;
    set_versioning(&s3, "ledgers", BucketVersioningStatus::Suspended).await;
    for bucket in ["foreign", "foreign-elsewhere"] {
        create_bucket(&s3, bucket, None).await;
        set_versioning(&s3, bucket, BucketVersioningStatus::Enabled).await;
    }
    let theirs = ReplicationRule::builder()
        .id("their-rule")
        .priority(1)
        .status(ReplicationRuleStatus::Enabled)
        .destination(
            Destination::builder()
                .bucket("arn:aws:s3:::foreign-elsewhere")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    s3.put_bucket_replication()
        .bucket("foreign")
        .replication_configuration(
            ReplicationConfiguration::builder()
                .role("arn:aws:iam::123456789012:role/theirs")
                .rules(theirs)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// Runs the command through the test proxy (for moto's GetBucketVersioning).
async fn run(proxy: &Proxy, action: Action, sheet: PathBuf) -> ReplicationReport {
    let args = ReplicationArgs {
        action,
        sheet,
        role_arn: ROLE.into(),
        batch_role_arn: None,
        connection: Default::default(),
    };
    replication::run(
        &Clients::new(sdk_config_for(&proxy.endpoint), true),
        None,
        &args,
    )
    .await
    .expect("the sheet is read")
}

fn bucket<'a>(report: &'a ReplicationReport, source: &str) -> &'a replication::BucketReport {
    report.buckets.iter().find(|b| b.source == source).unwrap()
}

#[tokio::test]
async fn apply_sets_up_kms_aware_replication_once_and_never_touches_a_foreign_rule() {
    let moto = Moto::start();
    sources(&moto).await;
    let proxy = Proxy::start(&moto.endpoint, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let s3 = client_for(&proxy.endpoint);

    let plan = run(&proxy, Action::Plan, write_csv(dir.path())).await;
    assert_eq!(
        (plan.changed, plan.conflicts, plan.failed),
        (2, 1, 1),
        "{plan:#?}"
    );
    assert!(
        s3.head_bucket()
            .bucket("photos-target")
            .send()
            .await
            .is_err(),
        "plan creates nothing"
    );

    let first = run(&proxy, Action::Apply, write_xlsx(dir.path())).await;
    assert_eq!(
        (
            first.changed,
            first.unchanged,
            first.conflicts,
            first.failed
        ),
        (2, 0, 1, 1),
        "{first:#?}"
    );
    assert!(!first.all_done());
    assert_eq!(first.row_errors[0].row, 5);
    assert!(first.row_errors[0].message.contains("mars-north-1"));

    // The destinations: in their regions (none for us-east-1), versioned,
    // public access blocked, SSE-KMS under the replica key with a Bucket Key.
    for (target, region, key) in [
        ("photos-target", Some("eu-west-1"), EU_KEY),
        ("ledgers-replica", None, US_KEY),
    ] {
        let location = s3
            .get_bucket_location()
            .bucket(target)
            .send()
            .await
            .unwrap();
        assert_eq!(
            location
                .location_constraint()
                .map(|c| c.as_str())
                .filter(|c| !c.is_empty()),
            region,
            "{target}"
        );
        let versioning = s3
            .get_bucket_versioning()
            .bucket(target)
            .send()
            .await
            .unwrap();
        assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled));
        let encryption = s3
            .get_bucket_encryption()
            .bucket(target)
            .send()
            .await
            .unwrap();
        let rule = &encryption
            .server_side_encryption_configuration()
            .unwrap()
            .rules()[0];
        let default = rule.apply_server_side_encryption_by_default().unwrap();
        assert_eq!(default.sse_algorithm(), &ServerSideEncryption::AwsKms);
        assert_eq!(default.kms_master_key_id(), Some(key));
        assert_eq!(rule.bucket_key_enabled(), Some(true));
        let block = s3
            .get_public_access_block()
            .bucket(target)
            .send()
            .await
            .unwrap();
        assert_eq!(
            block
                .public_access_block_configuration()
                .unwrap()
                .restrict_public_buckets(),
            Some(true)
        );
    }

    // The sources: versioned, replicating under this tool's rules. moto drops
    // SourceSelectionCriteria when read back, so the opt-in is checked in
    // the configuration the tool sent.
    let photos = bucket(&first, "photos");
    let sent = photos
        .changes
        .iter()
        .find_map(|c| match c {
            replication::Change::PutReplication {
                replication_configuration,
                ..
            } => Some(replication_configuration.clone()),
            _ => None,
        })
        .unwrap();
    let rule = &sent["Rules"][0];
    assert_eq!(
        rule["SourceSelectionCriteria"]["SseKmsEncryptedObjects"]["Status"],
        "Enabled"
    );
    assert_eq!(
        rule["Destination"]["EncryptionConfiguration"]["ReplicaKmsKeyID"],
        EU_KEY
    );
    assert_eq!(rule["Destination"]["StorageClass"], "STANDARD_IA");
    let stored = s3
        .get_bucket_replication()
        .bucket("photos")
        .send()
        .await
        .unwrap();
    let stored = stored.replication_configuration().unwrap();
    assert_eq!(stored.role(), ROLE);
    assert!(stored.rules()[0].id().unwrap().starts_with(RULE_ID_PREFIX));
    assert_eq!(
        stored.rules()[0].destination().unwrap().bucket(),
        "arn:aws:s3:::photos-target"
    );
    let versioning = s3
        .get_bucket_versioning()
        .bucket("photos")
        .send()
        .await
        .unwrap();
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled));
    let tags: BTreeMap<String, String> = s3
        .get_bucket_tagging()
        .bucket("photos")
        .send()
        .await
        .unwrap()
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    assert_eq!(tags.get("team").map(String::as_str), Some("media"));
    let needs = photos.role_needs.as_ref().unwrap().to_string();
    assert!(
        needs.contains("kms:EncryptionContext:aws:s3:arn")
            && needs.contains("s3.eu-west-1.amazonaws.com"),
        "{needs}"
    );
    // The key's ARN, resolved from the alias the bucket names.
    let decrypt = photos.role_needs.as_ref().unwrap()["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["Action"] == "kms:Decrypt")
        .cloned()
        .unwrap();
    assert!(
        decrypt["Resource"].as_str().unwrap().contains(":key/"),
        "{decrypt}"
    );
    assert!(
        photos
            .role_needs_note
            .as_deref()
            .unwrap()
            .contains("other keys")
    );
    // Existing objects: no Batch Operations role, so the request is printed.
    let request = photos.batch_replication_request.as_ref().unwrap();
    assert_eq!(
        request["Operation"],
        serde_json::json!({"S3ReplicateObject": {}})
    );
    assert_eq!(
        request["ManifestGenerator"]["S3JobManifestGenerator"]["SourceBucket"],
        "arn:aws:s3:::photos"
    );

    // The foreign rule is reported, and left exactly as it was.
    assert_eq!(bucket(&first, "foreign").outcome, Outcome::Conflict);
    let theirs = s3
        .get_bucket_replication()
        .bucket("foreign")
        .send()
        .await
        .unwrap();
    assert_eq!(
        theirs.replication_configuration().unwrap().rules()[0].id(),
        Some("their-rule")
    );

    let second = run(&proxy, Action::Apply, write_csv(dir.path())).await;
    assert_eq!(
        (second.changed, second.unchanged, second.conflicts),
        (0, 2, 1),
        "{second:#?}"
    );
    assert!(
        bucket(&second, "photos")
            .batch_replication_request
            .is_none()
    );
}

#[tokio::test]
async fn access_denied_on_the_replication_configuration_is_an_error_never_absence() {
    use aws_sdk_s3::operation::get_bucket_location::GetBucketLocationOutput;
    let location = mock!(aws_sdk_s3::Client::get_bucket_location)
        .then_output(|| GetBucketLocationOutput::builder().build());
    let denied = mock!(aws_sdk_s3::Client::get_bucket_replication).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(403).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
            ),
        )
    });
    let put = mock!(aws_sdk_s3::Client::put_bucket_replication).then_output(|| {
        aws_sdk_s3::operation::put_bucket_replication::PutBucketReplicationOutput::builder().build()
    });
    let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&location, &denied, &put]);
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let args = ReplicationArgs {
        action: Action::Apply,
        sheet: write_csv(dir.path()),
        role_arn: ROLE.into(),
        batch_role_arn: None,
        connection: Default::default(),
    };
    let clients = Clients::with_client(moto.sdk_config(), client);
    let report = replication::run(&clients, None, &args).await.unwrap();
    let photos = bucket(&report, "photos");
    assert_eq!(photos.outcome, Outcome::Failed);
    assert!(
        photos.detail.as_deref().unwrap().contains("AccessDenied"),
        "{photos:?}"
    );
    assert_eq!(
        put.num_calls(),
        0,
        "a configuration it could not read was overwritten"
    );
}

#[tokio::test]
async fn batch_replication_job_is_created_as_the_api_documents() {
    use aws_sdk_s3control::operation::create_job::CreateJobOutput;
    use aws_sdk_s3control::types::{JobManifestGenerator, JobReportScope, ReplicationStatus};
    const BATCH_ROLE: &str = "arn:aws:iam::123456789012:role/s3-kms-sync-batch";
    let create = mock!(aws_sdk_s3control::Client::create_job)
        .match_requests(|req| {
            let Some(JobManifestGenerator::S3JobManifestGenerator(generator)) =
                req.manifest_generator()
            else {
                return false;
            };
            let filter = generator.filter().unwrap();
            let report = req.report().unwrap();
            req.account_id() == Some("123456789012")
                && req
                    .operation()
                    .and_then(|o| o.s3_replicate_object())
                    .is_some()
                && req.manifest().is_none()
                && generator.source_bucket() == "arn:aws:s3:::photos"
                && !generator.enable_manifest_output()
                && filter.eligible_for_replication() == Some(true)
                && filter.object_replication_statuses()
                    == [ReplicationStatus::None, ReplicationStatus::Failed]
                && report.bucket() == Some("arn:aws:s3:::photos")
                && report.report_scope() == Some(&JobReportScope::FailedTasksOnly)
                && req.role_arn() == Some(BATCH_ROLE)
                && req.confirmation_required() == Some(false)
                && req.client_request_token() == Some("token-1")
        })
        .then_output(|| CreateJobOutput::builder().job_id("job-42").build());
    let control = mock_client!(aws_sdk_s3control, RuleMode::MatchAny, [&create]);
    let job = ReplicationJob {
        account_id: "123456789012".into(),
        source: "photos".into(),
        role_arn: Some(BATCH_ROLE.into()),
        client_token: "token-1".into(),
        partition: "aws",
    };
    assert_eq!(job.create(&control, BATCH_ROLE).await.unwrap(), "job-42");
    assert_eq!(create.num_calls(), 1, "the request matched every field");
}

/// The sheet exactly as AWS's "replication at scale" post publishes it: six
/// columns, no replica key. A source that is not SSE-KMS by default is set
/// up (no SSE-KMS opt-in, with a warning); an SSE-KMS one is refused,
/// naming the column to add.
#[tokio::test]
async fn the_published_six_column_sheet_replicates_what_it_can_and_names_the_column_it_lacks() {
    let moto = Moto::start();
    sources(&moto).await;
    let s3 = moto.s3();
    create_bucket(&s3, "plain", None).await;
    let proxy = Proxy::start(&moto.endpoint, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("published.csv");
    let mut writer = csv::Writer::from_path(&path).unwrap();
    writer
        .write_record([
            "Source Bucket Name",
            "Region",
            "Target Storage Class",
            "Prefix Filter",
            "DeleteMarkerReplication",
            "Existing Object Replication",
        ])
        .unwrap();
    writer
        .write_record(["plain", "eu-west-1", "STANDARD", "", "Disabled", "Disabled"])
        .unwrap();
    writer
        .write_record([
            "photos",
            "eu-west-1",
            "STANDARD",
            "",
            "Disabled",
            "Disabled",
        ])
        .unwrap();
    writer.flush().unwrap();

    let report = run(&proxy, Action::Apply, path).await;
    assert!(report.row_errors.is_empty(), "{:?}", report.row_errors);
    let plain = bucket(&report, "plain");
    assert_eq!(plain.outcome, replication::Outcome::Changed, "{plain:#?}");
    assert!(
        plain
            .detail
            .as_deref()
            .unwrap()
            .contains("Replica KMS Key ARN")
    );
    let configuration = s3
        .get_bucket_replication()
        .bucket("plain")
        .send()
        .await
        .unwrap();
    let rule = &configuration.replication_configuration().unwrap().rules()[0];
    assert!(
        rule.destination()
            .unwrap()
            .encryption_configuration()
            .is_none()
    );
    let photos = bucket(&report, "photos");
    assert_eq!(
        photos.outcome,
        replication::Outcome::Conflict,
        "{photos:#?}"
    );
    let why = photos.detail.as_deref().unwrap();
    assert!(
        why.contains("SSE-KMS") && why.contains("\"Replica KMS Key ARN\""),
        "{why}"
    );
    assert!(
        s3.get_bucket_replication()
            .bucket("photos")
            .send()
            .await
            .is_err(),
        "the SSE-KMS bucket is left as it is"
    );
}

/// A source with Object Lock replicates only to a destination with Object
/// Lock: `apply` creates the destination to match, with the source's
/// default retention, and the role it prints may read each version's
/// retention and legal hold.
#[tokio::test]
async fn a_locked_source_gets_a_locked_destination() {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
        ObjectLockRule,
    };
    let moto = Moto::start();
    let s3 = moto.s3();
    s3.create_bucket()
        .bucket("vault")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let retention = DefaultRetention::builder()
        .mode(ObjectLockRetentionMode::Governance)
        .days(30)
        .build();
    s3.put_object_lock_configuration()
        .bucket("vault")
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(retention)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let proxy = Proxy::start(&moto.endpoint, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.csv");
    let mut writer = csv::Writer::from_path(&path).unwrap();
    writer.write_record(HEADER).unwrap();
    writer
        .write_record([
            "vault",
            "eu-west-1",
            "",
            "",
            "Disabled",
            "Disabled",
            "",
            EU_KEY,
            "",
        ])
        .unwrap();
    writer.flush().unwrap();

    let report = run(&proxy, Action::Apply, path).await;
    let vault = bucket(&report, "vault");
    assert_eq!(vault.outcome, replication::Outcome::Changed, "{vault:#?}");
    let lock = client_for(&proxy.endpoint)
        .get_object_lock_configuration()
        .bucket("vault-target")
        .send()
        .await
        .expect("the destination has Object Lock");
    let lock = lock.object_lock_configuration().unwrap();
    assert_eq!(
        lock.object_lock_enabled(),
        Some(&ObjectLockEnabled::Enabled)
    );
    let kept = lock.rule().and_then(|r| r.default_retention()).unwrap();
    assert_eq!(
        (kept.mode(), kept.days()),
        (Some(&ObjectLockRetentionMode::Governance), Some(30))
    );
    let needs = vault.role_needs.as_ref().unwrap().to_string();
    assert!(
        needs.contains("s3:GetObjectRetention") && needs.contains("s3:GetObjectLegalHold"),
        "{needs}"
    );
}
