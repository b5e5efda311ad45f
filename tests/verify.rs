//! `verify` against a moto server: an intact backup passes; a deleted
//! object, a rewrite that kept the md5checksum metadata (caught by reading
//! the data), a rewritten older manifest and a deleted pinned version are
//! each named.

mod support;

use s3_kms_sync::commands::verify::{
    self, ProblemKind, ReadShare, VerifyOptions, VerifyReport, VerifyRequest, VerifyStatus,
};
use s3_kms_sync::manifest::FileStatus;
use support::*;

const BUCKET: &str = "proofs";
const PREFIX: &str = "v";

async fn verify_with(backup: &Backup, request: VerifyRequest) -> VerifyReport {
    let options = VerifyOptions { concurrency: 4 };
    verify::run(&backup.engine.store, PREFIX, &options, &request)
        .await
        .expect("verify starts")
}

fn kinds(report: &VerifyReport) -> Vec<(ProblemKind, String)> {
    let mut kinds: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.key.clone()))
        .collect();
    kinds.sort_by(|a, b| a.1.cmp(&b.1));
    kinds
}

#[tokio::test]
async fn verify_passes_on_an_intact_backup_and_names_each_problem() {
    let backup = Backup::new(BUCKET, PREFIX, false).await;
    let first = backup.sync().await;
    // One more file, so the newest manifest links to the first.
    std::fs::write(backup.source.path().join("later.txt"), b"later\n").unwrap();
    settle();
    let second = backup.sync().await;

    let intact = verify_with(&backup, VerifyRequest::default()).await;
    assert_eq!(intact.status, VerifyStatus::Ok, "{:?}", intact.problems);
    assert_eq!(intact.checked, sample_files().len() as u64 + 1);
    assert_eq!(
        intact.manifest_s3_uri,
        second.manifest_s3_uri.clone().unwrap()
    );
    assert_eq!(intact.chain_checked, 2);
    // One listing of versions answers for every object (every record names
    // its version, "null" on this unversioned bucket): no HeadObject. The
    // manifest folder's listing and one HEAD find the latest that stands
    // for a whole source; one DescribeKey checks the one key.
    let expected = [
        ("DescribeKey", 1),
        // The snapshot object, each node of its tree, and the previous
        // snapshot's object, which the chain checks.
        ("GetObject", 2 + second.pages.as_ref().unwrap().nodes),
        ("HeadObject", 1),
        ("ListObjectVersions", 1),
        ("ListObjectsV2", 1),
    ];
    assert_eq!(
        intact.requests,
        expected
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    );

    let all = VerifyRequest {
        read_data: Some(ReadShare::All),
        ..VerifyRequest::default()
    };
    let read = verify_with(&backup, all.clone()).await;
    assert_eq!(read.status, VerifyStatus::Ok, "{:?}", read.problems);
    assert_eq!(read.read_data.as_ref().unwrap().objects_read, read.checked);

    let manifest = manifest_of(&second);
    let key_of = |path: &str| {
        let file = manifest
            .files
            .iter()
            .find(|f| f.local_path.ends_with(path))
            .unwrap();
        assert_ne!(file.status, FileStatus::Failed);
        (file.s3_key.clone().unwrap(), file.md5.clone().unwrap())
    };
    let (deleted, _) = key_of("top.txt");
    backup
        .moto
        .s3()
        .delete_object()
        .bucket(BUCKET)
        .key(&deleted)
        .send()
        .await
        .unwrap();
    // Same size, same md5checksum metadata, other bytes: only reading tells.
    let (rewritten, md5) = key_of("q1.csv");
    backup
        .put(
            &rewritten,
            b"a,b
9,9
"
            .to_vec(),
            ("md5checksum", &md5),
        )
        .await;
    // An older manifest rewritten, its stored SHA-256 kept.
    let first_key = first
        .manifest_s3_uri
        .unwrap()
        .replace(&format!("s3://{BUCKET}/"), "");
    let old = get_bytes(&backup.moto.s3(), BUCKET, &first_key).await;
    let head = backup
        .moto
        .s3()
        .head_object()
        .bucket(BUCKET)
        .key(&first_key)
        .send()
        .await
        .unwrap();
    let sha256 = head.metadata().unwrap()["sha256"].clone();
    let mut forged = old.clone();
    forged.extend_from_slice(b"\n");
    backup.put(&first_key, forged, ("sha256", &sha256)).await;

    // Without --read-data too: the rewritten object's ETag is not the one
    // this tool's write returned, so its bytes are read and hashed.
    let metadata_only = verify_with(&backup, VerifyRequest::default()).await;
    assert_eq!(metadata_only.status, VerifyStatus::Problems);
    assert_eq!(
        kinds(&metadata_only),
        [
            (ProblemKind::ChainBroken, first_key.clone()),
            (ProblemKind::ContentMismatch, rewritten.clone()),
            (ProblemKind::Missing, deleted.clone())
        ]
    );
    // Only where the listing cannot vouch: two objects, each HEAD sent
    // twice because moto refuses versionId=null on an unversioned bucket;
    // and one for the latest manifest's state.
    assert_eq!(
        metadata_only.requests.get("HeadObject"),
        Some(&5),
        "only where the listing cannot vouch"
    );

    let read = verify_with(&backup, all).await;
    assert_eq!(
        kinds(&read),
        [
            (ProblemKind::ChainBroken, first_key),
            (ProblemKind::ContentMismatch, rewritten),
            (ProblemKind::Missing, deleted),
        ]
    );
    assert_eq!(
        (read.missing, read.content_mismatch, read.chain_broken),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_pinned_version_is_verified_after_the_file_changed() {
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    let first = backup.sync().await;
    // Read before the next run supersedes (and removes) this local copy.
    let first_manifest = manifest_of(&first);
    std::fs::write(
        backup.source.path().join("top.txt"),
        b"top level, changed\n",
    )
    .unwrap();
    settle();
    backup.sync().await;

    let pinned = VerifyRequest {
        manifest: first.manifest_s3_uri.clone(),
        read_data: Some(ReadShare::All),
        ..VerifyRequest::default()
    };
    let report = verify_with(&backup, pinned.clone()).await;
    assert_eq!(report.status, VerifyStatus::Ok, "{:?}", report.problems);
    assert_eq!(
        report.requests.get("ListObjectVersions"),
        Some(&1),
        "{:?}",
        report.requests
    );
    assert_eq!(
        report.requests.get("HeadObject"),
        None,
        "{:?}",
        report.requests
    );

    // Deleting the pinned version itself is a loss.
    let file = first_manifest
        .files
        .into_iter()
        .find(|f| f.local_path.ends_with("top.txt"))
        .unwrap();
    backup
        .moto
        .s3()
        .delete_object()
        .bucket(BUCKET)
        .key(file.s3_key.clone().unwrap())
        .version_id(
            file.version_id
                .clone()
                .expect("a version id on a versioned bucket"),
        )
        .send()
        .await
        .unwrap();
    let report = verify_with(&backup, pinned).await;
    assert_eq!(
        kinds(&report),
        [(ProblemKind::Missing, file.s3_key.unwrap())]
    );
}
