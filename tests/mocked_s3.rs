//! Real-S3 responses that a local emulator does not give, played through the
//! real SDK client with aws-smithy-mocks.

mod support;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput;
use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput;
use aws_sdk_s3::operation::delete_object::DeleteObjectOutput;
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::types::error::NotFound;
use aws_sdk_s3::types::{Object, ServerSideEncryption};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::manifest::{FileRecord, FileStatus, Manifest, RunStatus, Summary};
use support::*;

const BUCKET: &str = "backups";
const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab";

fn not_found() -> Rule {
    mock!(Client::head_object).then_error(|| HeadObjectError::NotFound(NotFound::builder().build()))
}

/// PutObject as S3 answers it for an SSE-KMS upload with `KEY`.
fn put_ok() -> Rule {
    mock!(Client::put_object).then_output(|| {
        PutObjectOutput::builder()
            .e_tag("\"5d1e2f0c9b8a7e6d5c4b3a2f1e0d9c8b\"")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(KEY)
            .build()
    })
}

/// ListObjectsV2 showing these keys (with ETags that are not MD5s).
fn listing(keys: &'static [&'static str]) -> Rule {
    mock!(Client::list_objects_v2).then_output(move || {
        let objects = keys.iter().map(|k| {
            Object::builder()
                .key(*k)
                .e_tag("\"9b2cf535f27731c974343645a3985328\"")
                .size(1)
                .build()
        });
        ListObjectsV2Output::builder()
            .set_contents(Some(objects.collect()))
            .build()
    })
}

/// The run lock: created, then released, as S3 answers them.
fn lock_rules() -> [Rule; 2] {
    let put = mock!(Client::put_object)
        .match_requests(|req| {
            req.key()
                .is_some_and(|k| k.ends_with("_manifests/lock.json"))
        })
        .then_output(|| {
            PutObjectOutput::builder()
                .e_tag("\"lock-etag\"")
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(KEY)
                .build()
        });
    let delete = mock!(Client::delete_object)
        .match_requests(|req| req.if_match() == Some("\"lock-etag\""))
        .then_output(|| DeleteObjectOutput::builder().build());
    [put, delete]
}

/// A client that answers `rules` first, then as S3 does for the rest of a
/// run: the lock, an empty listing, no object under any key, uploads stored.
fn client_with(rules: &[&Rule]) -> Client {
    let [lock, unlock] = lock_rules();
    let background = [lock, unlock, listing(&[]), not_found(), put_ok()];
    mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        rules.iter().copied().chain(&background)
    )
}

/// PutObject of `key` answered with this encryption.
fn put_answering(
    key: &'static str,
    sse: ServerSideEncryption,
    kms_key: Option<&'static str>,
) -> Rule {
    mock!(Client::put_object)
        .match_requests(move |req| req.key() == Some(key))
        .then_output(move || {
            PutObjectOutput::builder()
                .server_side_encryption(sse.clone())
                .set_ssekms_key_id(kms_key.map(str::to_owned))
                .build()
        })
}

async fn run(client: Client, files: &[(&str, Vec<u8>)]) -> (Summary, Manifest) {
    let source = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    write_tree(source.path(), files);
    let engine = engine(
        client,
        settings(source.path(), manifests.path(), BUCKET, KEY, "p"),
    );
    let summary = engine
        .run(&SyncRequest::default())
        .await
        .expect("run starts");
    let local = local_copy(summary.manifest_local_path.as_deref().unwrap()).unwrap();
    (summary, serde_json::from_slice(&local).unwrap())
}

fn record<'a>(manifest: &'a Manifest, key: &str) -> &'a FileRecord {
    manifest
        .files
        .iter()
        .find(|f| f.s3_key.as_deref() == Some(key))
        .unwrap_or_else(|| panic!("{key} not in manifest"))
}

#[tokio::test]
async fn opaque_etag_with_matching_md5_metadata_is_skipped() {
    let content = b"alpha".to_vec();
    let md5 = md5_hex(&content);
    // Real S3 under SSE-KMS: the ETag is not the MD5 of the content.
    let head = mock!(Client::head_object).then_output(move || {
        HeadObjectOutput::builder()
            .e_tag("\"3f2b7c1e0a9d8c7b6a5f4e3d2c1b0a99\"")
            .content_length(5)
            .metadata("md5checksum", md5.clone())
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(KEY)
            .bucket_key_enabled(true)
            .build()
    });
    let manifest_put = put_ok();
    let [lock, unlock] = lock_rules();
    let list = listing(&["p/a.txt"]);
    let client = mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&lock, &unlock, &list, &head, &manifest_put]
    );

    let (summary, manifest) = run(client, &[("a.txt", content)]).await;
    assert_eq!((summary.skipped, summary.uploaded), (1, 0));
    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_eq!(record(&manifest, "p/a.txt").status, FileStatus::Skipped);
    assert_eq!(head.num_calls(), 1);
    assert_eq!(
        manifest_put.num_calls(),
        2,
        "only the snapshot is written: its one page and its object"
    );
    assert_eq!(
        (lock.num_calls(), unlock.num_calls()),
        (1, 1),
        "the lock is taken and released"
    );
}

#[tokio::test]
async fn forbidden_head_fails_that_file_and_the_run_goes_on() {
    let forbidden = mock!(Client::head_object)
        .match_requests(|req| req.key() == Some("p/secret.txt"))
        .sequence()
        .http_status(403, None)
        .repeatedly()
        .build();
    let (missing, put) = (not_found(), put_ok());
    let [lock, unlock] = lock_rules();
    let list = listing(&["p/open.txt", "p/secret.txt"]);
    let client = mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&lock, &unlock, &list, &forbidden, &missing, &put]
    );

    let files = [("open.txt", b"o".to_vec()), ("secret.txt", b"s".to_vec())];
    let (summary, manifest) = run(client, &files).await;
    assert_eq!((summary.uploaded, summary.failed), (1, 1));
    assert_eq!(summary.status, RunStatus::Partial);
    let secret = record(&manifest, "p/secret.txt");
    assert_eq!(secret.status, FileStatus::Failed);
    let error = secret.error.as_deref().unwrap();
    assert!(
        error.contains("HeadObject") && error.contains("403"),
        "{error}"
    );
    // A failed lookup is never treated as "missing": no upload of secret.txt.
    assert_eq!(
        put.num_calls(),
        3,
        "open.txt and the snapshot (one page and its object) only"
    );
}

#[tokio::test]
async fn failing_part_aborts_the_multipart_upload() {
    let create = mock!(Client::create_multipart_upload).then_output(|| {
        CreateMultipartUploadOutput::builder()
            .upload_id("upload-1")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(KEY)
            .build()
    });
    let part = mock!(Client::upload_part)
        .sequence()
        .http_status(400, None)
        .repeatedly()
        .build();
    let abort = mock!(Client::abort_multipart_upload)
        .match_requests(|req| req.upload_id() == Some("upload-1"))
        .then_output(|| AbortMultipartUploadOutput::builder().build());
    let complete = mock!(Client::complete_multipart_upload)
        .then_output(|| CompleteMultipartUploadOutput::builder().build());
    let client = client_with(&[&create, &part, &abort, &complete]);

    let big = vec![7u8; 6 * 1024 * 1024];
    let (summary, manifest) = run(client, &[("big.bin", big)]).await;
    assert_eq!(summary.failed, 1);
    assert_eq!(summary.status, RunStatus::Failed);
    let error = record(&manifest, "p/big.bin").error.clone().unwrap();
    assert!(error.contains("UploadPart"), "{error}");
    assert_eq!(abort.num_calls(), 1, "the upload is aborted");
    assert_eq!(complete.num_calls(), 0);
}

#[tokio::test]
async fn other_encryption_in_the_response_fails_the_file() {
    let aes = put_answering("p/a.txt", ServerSideEncryption::Aes256, None);
    let other_key = put_answering(
        "p/b.txt",
        ServerSideEncryption::AwsKms,
        Some("arn:aws:kms:us-east-1:111122223333:key/ffffffff-0000-0000-0000-000000000000"),
    );
    let client = client_with(&[&aes, &other_key]);

    let files = [("a.txt", b"a".to_vec()), ("b.txt", b"b".to_vec())];
    let (summary, manifest) = run(client, &files).await;
    assert_eq!(summary.failed, 2);
    for (key, expected) in [("p/a.txt", "AES256"), ("p/b.txt", "ffffffff")] {
        let error = record(&manifest, key).error.clone().unwrap();
        assert!(
            error.contains("encryption mismatch") && error.contains(expected),
            "{error}"
        );
    }
}

/// moto cannot route a key with a newline, so this case is shown here: the
/// key S3 receives is the file name, byte for byte.
#[tokio::test]
async fn a_newline_in_a_file_name_reaches_s3_unchanged() {
    let exact = put_answering("p/line\nbreak.txt", ServerSideEncryption::AwsKms, Some(KEY));
    let client = client_with(&[&exact]);

    let (summary, manifest) = run(client, &[("line\nbreak.txt", b"n".to_vec())]).await;
    assert_eq!(summary.uploaded, 1);
    assert_eq!(
        record(&manifest, "p/line\nbreak.txt").status,
        FileStatus::Uploaded
    );
    assert_eq!(exact.num_calls(), 1);
}

/// CompleteMultipartUpload fails, yet HeadObject finds an object with the
/// file's MD5 (a completion whose answer was lost, or an older copy). The
/// upload is aborted either way, so no parts are left behind, and the
/// object counts only if it is stored under the configured key.
#[tokio::test]
async fn a_failed_completion_aborts_and_checks_the_object_it_falls_back_to() {
    use aws_sdk_s3::operation::upload_part::UploadPartOutput;
    let big = vec![9u8; 6 * 1024 * 1024];
    let md5 = md5_hex(&big);
    let found_under = |sse: ServerSideEncryption, kms: Option<&'static str>| {
        let md5 = md5.clone();
        mock!(Client::head_object)
            .match_requests(|req| req.key() == Some("p/big.bin"))
            .then_output(move || {
                HeadObjectOutput::builder()
                    .e_tag("\"opaque-multipart-etag-2\"")
                    .content_length(6 * 1024 * 1024)
                    .metadata("md5checksum", md5.clone())
                    .server_side_encryption(sse.clone())
                    .set_ssekms_key_id(kms.map(str::to_owned))
                    .build()
            })
    };
    let cases = [
        (
            found_under(ServerSideEncryption::Aes256, None),
            FileStatus::Failed,
        ),
        (
            found_under(ServerSideEncryption::AwsKms, Some(KEY)),
            FileStatus::Uploaded,
        ),
    ];
    for (head, expected) in cases {
        let create = mock!(Client::create_multipart_upload).then_output(|| {
            CreateMultipartUploadOutput::builder()
                .upload_id("upload-2")
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(KEY)
                .build()
        });
        let part = mock!(Client::upload_part)
            .then_output(|| UploadPartOutput::builder().e_tag("\"part\"").build());
        let complete = mock!(Client::complete_multipart_upload)
            .sequence()
            .http_status(500, None)
            .repeatedly()
            .build();
        let abort = mock!(Client::abort_multipart_upload)
            .match_requests(|req| req.upload_id() == Some("upload-2"))
            .then_output(|| AbortMultipartUploadOutput::builder().build());
        let client = client_with(&[&create, &part, &complete, &head, &abort]);

        let (_, manifest) = run(client, &[("big.bin", big.clone())]).await;
        let record = record(&manifest, "p/big.bin");
        assert_eq!(record.status, expected, "{record:?}");
        if expected == FileStatus::Failed {
            let error = record.error.as_deref().unwrap();
            assert!(
                error.contains("encryption mismatch") && error.contains("AES256"),
                "{error}"
            );
        }
        assert_eq!(head.num_calls(), 1);
        assert_eq!(
            abort.num_calls(),
            1,
            "the upload's parts are not left behind"
        );
    }
}

/// RestoreObject as S3 answers it: 202 for a thaw started, 409
/// `RestoreAlreadyInProgress` while one is running (moto thaws at once, so
/// it never says the second). The request names the pinned version, and
/// sends no Days for an Intelligent-Tiering archive tier.
#[tokio::test]
async fn a_thaw_under_way_is_told_apart_from_one_started() {
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use s3_kms_sync::store::{Store, Thaw};
    let answer = |status: u16, body: &'static str| {
        move || Response::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
    };
    let started = mock!(Client::restore_object)
        .match_requests(|req| {
            req.version_id() == Some("null")
                && req.restore_request().and_then(|r| r.days()) == Some(3)
        })
        .then_http_response(answer(202, ""));
    let under_way = mock!(Client::restore_object)
        .match_requests(|req| req.restore_request().is_some_and(|r| r.days().is_none()))
        .then_http_response(answer(
            409,
            "<Error><Code>RestoreAlreadyInProgress</Code><Message>busy</Message></Error>",
        ));
    let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&started, &under_way]);
    let store = Store::new(client, BUCKET, KEY);
    let first = store.thaw("p/a", "null", Some(3), "Bulk").await.unwrap();
    assert_eq!(first, Thaw::Requested);
    let again = store.thaw("p/b", "v2", None, "Standard").await.unwrap();
    assert_eq!(again, Thaw::AlreadyThawing);
    assert_eq!((started.num_calls(), under_way.num_calls()), (1, 1));
}

/// A multipart re-encryption completes only while the key still has the
/// ETag it copied: CompleteMultipartUpload carries If-Match (moto ignores
/// it), a 412 is a conflict like the single copy's, and the upload is
/// aborted, so a write that landed meanwhile is never overwritten.
#[tokio::test]
async fn a_multipart_reencryption_completes_only_over_what_it_copied() {
    use aws_sdk_s3::operation::upload_part_copy::UploadPartCopyOutput;
    use aws_sdk_s3::types::CopyPartResult;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use s3_kms_sync::store::{CopySource, Store};
    const ETAG: &str = "\"3858f62230ac3c915f300c664312c11f-2\"";
    let head = mock!(Client::head_object)
        .match_requests(|req| req.if_match() == Some(ETAG))
        .then_output(|| HeadObjectOutput::builder().e_tag(ETAG).build());
    let create = mock!(Client::create_multipart_upload).then_output(|| {
        CreateMultipartUploadOutput::builder()
            .upload_id("up-1")
            .build()
    });
    let part = mock!(Client::upload_part_copy)
        .match_requests(|req| req.copy_source_if_match() == Some(ETAG))
        .then_output(|| {
            UploadPartCopyOutput::builder()
                .copy_part_result(CopyPartResult::builder().e_tag("\"p1\"").build())
                .build()
        });
    let overwritten = mock!(Client::complete_multipart_upload)
        .match_requests(|req| req.if_match() == Some(ETAG) && req.key() == Some("p/big.bin"))
        .then_http_response(|| {
            Response::new(
                StatusCode::try_from(412).unwrap(),
                SdkBody::from("<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>"),
            )
        });
    let abort = mock!(Client::abort_multipart_upload)
        .match_requests(|req| req.upload_id() == Some("up-1"))
        .then_output(|| AbortMultipartUploadOutput::builder().build());
    let client = mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&head, &create, &part, &overwritten, &abort]
    );
    let store = Store::new(client, BUCKET, KEY).with_max_single_copy(1);
    let source = CopySource {
        key: "p/big.bin",
        etag: ETAG,
        size: 10,
        storage_class: None,
    };
    let result = store.reencrypt(source).await;
    assert!(
        matches!(result, Err(s3_kms_sync::Error::PreconditionFailed { .. })),
        "{result:?}"
    );
    assert_eq!(
        overwritten.num_calls(),
        1,
        "the completion named the ETag it copied"
    );
    assert_eq!(abort.num_calls(), 1, "the upload is aborted");
}

/// With `encoding-type=url` S3 encodes ListObjectVersions' NextKeyMarker
/// too; the next page must be asked for with the key itself.
#[tokio::test]
async fn a_version_listing_resumes_after_an_encoded_key() {
    use aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput;
    use aws_sdk_s3::types::{EncodingType, ObjectVersion};
    use s3_kms_sync::store::Store;
    let version = |key: &str, id: &str| {
        ObjectVersion::builder()
            .key(key)
            .version_id(id)
            .e_tag("\"e\"")
            .size(1)
            .build()
    };
    let first = mock!(Client::list_object_versions)
        .match_requests(|req| req.key_marker().is_none())
        .then_output(move || {
            ListObjectVersionsOutput::builder()
                .encoding_type(EncodingType::Url)
                .versions(version("p/a+b%C3%A9+1%2B1.txt", "v1"))
                .is_truncated(true)
                .next_key_marker("p/a+b%C3%A9+1%2B1.txt")
                .next_version_id_marker("v1")
                .build()
        });
    let second = mock!(Client::list_object_versions)
        .match_requests(|req| {
            req.key_marker() == Some("p/a bé 1+1.txt") && req.version_id_marker() == Some("v1")
        })
        .then_output(move || {
            ListObjectVersionsOutput::builder()
                .encoding_type(EncodingType::Url)
                .versions(version("p/z.txt", "v2"))
                .is_truncated(false)
                .build()
        });
    let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&first, &second]);
    let store = Store::new(client, BUCKET, KEY);
    let listed = store.list_versions("p/").await.expect("both pages");
    let keys: Vec<&str> = listed.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["p/a bé 1+1.txt", "p/z.txt"]);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}
