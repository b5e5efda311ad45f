//! A snapshot is trusted because the backup signed it: the attack of a
//! principal that may only put objects into the prefix, each way a
//! signature can fail, a record outside its prefix, unsigned manifests,
//! and a public key pinned offline; against moto, whose KMS signs with
//! ECC_NIST_P256 (scripts/kms_digest.py makes it honour `MessageType:
//! DIGEST` as AWS does).

mod support;

use base64::Engine as _;
use s3_kms_sync::Error;
use s3_kms_sync::commands::restore::{self, RestoreOptions, RestoreReport};
use s3_kms_sync::commands::verify::{self, VerifyOptions, VerifyRequest};
use s3_kms_sync::manifest::{FileStatus, RunStatus};
use s3_kms_sync::trust::{PublicKey, Trust, Verdict};
use support::trust::*;
use support::*;

const BUCKET: &str = "signed";
const PREFIX: &str = "p";

fn untrusted(result: s3_kms_sync::Result<RestoreReport>) -> String {
    match result {
        Err(err @ Error::Untrusted { .. }) => err.to_string(),
        other => panic!("expected the manifest to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn a_manifest_planted_by_a_put_only_principal_is_refused() {
    let (backup, signing) = signed_backup(BUCKET, false).await;
    let store = &backup.engine.store;
    let summary = backup.sync().await;
    let real_uri = summary.manifest_s3_uri.clone().unwrap();
    assert_eq!(summary.signed_by.as_deref(), Some(signing.as_str()));
    let real = manifest_of(&summary);
    assert_eq!(real.signing_key_id.as_deref(), Some(signing.as_str()));

    // The attack: an object holding the attacker's key, and a manifest
    // named to sort last whose record of .ssh/authorized_keys points at
    // it, with its own SHA-256 as metadata and no previous link.
    let payload = b"ssh-ed25519 AAAA attacker\n";
    plant(&backup, &format!("{PREFIX}/.x"), payload, &[]).await;
    let (mut forged, forged_key) = as_run(&real, "forged", "9999-01-01T00:00:00.000Z");
    let mut planted = record(&real, "top.txt");
    planted.local_path = format!("{}/.ssh/authorized_keys", real.source_dir);
    planted.s3_key = Some(format!("{PREFIX}/.x"));
    planted.size_bytes = payload.len() as u64;
    planted.md5 = Some(md5_hex(payload));
    planted.etag = None;
    planted.status = FileStatus::Uploaded;
    forged.files = vec![planted];
    plant_unsigned(&backup, &forged_key, &forged).await;
    let forged_uri = format!("s3://{BUCKET}/{forged_key}");

    // "latest" is the real snapshot; the forged one is named, and why.
    let report = verify_with(store, None).await;
    assert_eq!(report.manifest_s3_uri, real_uri);
    assert_eq!(report.problems, vec![], "the real snapshot is sound");
    assert!(report.signature.is_valid(), "{:?}", report.signature);
    let passed = &report.passed_over;
    assert_eq!(passed.len(), 1, "{passed:?}");
    assert_eq!(passed[0].manifest_s3_uri, forged_uri);
    assert!(passed[0].reason.contains("unsigned"), "{passed:?}");

    // Verified by name, it is reported as unsigned.
    let named = verify_with(store, Some(&forged_uri)).await;
    assert_eq!((named.unsigned, named.misplaced), (1, 1), "{named:?}");
    assert_eq!(named.problems[0].key, forged_uri);

    // Restore refuses it and writes nothing; latest restores the real tree.
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("home");
    let refused = untrusted(restore_with(store, Some(&forged_uri), &target).await);
    assert!(
        refused.contains("unsigned") && refused.contains("--allow-unsigned"),
        "{refused}"
    );
    assert!(!target.exists(), "nothing was written");
    let restored = restore_with(store, None, &target).await.unwrap();
    assert_eq!(restored.status, RunStatus::Succeeded, "{restored:?}");
    assert_eq!(tree(&target), tree(backup.source.path()));
    assert!(!target.join(".ssh").exists());
}

#[tokio::test]
async fn each_way_a_signature_fails_is_refused_with_its_own_message() {
    let (backup, signing) = signed_backup(BUCKET, false).await;
    let store = &backup.engine.store;
    let summary = backup.sync().await;
    let real = manifest_of(&summary);
    let real_key = manifest_key(&summary, BUCKET);
    let stored = store.head(&real_key).await.unwrap().unwrap();
    let real_signature = stored.signature.clone().unwrap();
    let out = tempfile::tempdir().unwrap();

    // A true signature, kept with other bytes.
    let (other, other_key) = as_run(&real, "other-bytes", "9999-01-01T00:00:00.000Z");
    let body = serde_json::to_vec(&other).unwrap();
    plant_signed(
        &backup,
        &other_key,
        &body,
        &real_signature.signature,
        &real_signature.key_arn,
    )
    .await;
    let why = untrusted(restore_with(store, Some(&other_key), &out.path().join("a")).await);
    assert!(why.contains("does not verify"), "{why}");
    let report = verify_with(store, Some(&other_key)).await;
    assert_eq!(report.bad_signature, 1, "{:?}", report.problems);

    // A true signature of these bytes, by another KMS key.
    let stranger = backup.moto.signing_key().await;
    let (theirs, theirs_key) = as_run(&real, "other-key", "9999-01-02T00:00:00.000Z");
    let body = serde_json::to_vec(&theirs).unwrap();
    let signature = kms_sign(&backup, &stranger, &body).await;
    plant_signed(&backup, &theirs_key, &body, &signature, &stranger).await;
    let why = untrusted(restore_with(store, Some(&theirs_key), &out.path().join("b")).await);
    assert!(
        why.contains(&stranger) && why.contains("not by the trusted"),
        "{why}"
    );
    let report = verify_with(store, Some(&theirs_key)).await;
    assert_eq!(report.foreign_key, 1, "{:?}", report.problems);
    assert_eq!(report.signature, Verdict::ForeignKey { key_arn: stranger });

    // The backup's own signature, copied with its manifest under a newer
    // name: the name is not the one its run writes.
    let copy_key = format!(
        "{PREFIX}/_manifests/99990103T000000.000Z-{}.json",
        real.run_id
    );
    let bytes = get_bytes(&backup.moto.s3(), BUCKET, &real_key).await;
    plant_signed(
        &backup,
        &copy_key,
        &bytes,
        &real_signature.signature,
        &real_signature.key_arn,
    )
    .await;
    let why = untrusted(restore_with(store, Some(&copy_key), &out.path().join("c")).await);
    assert!(why.contains("copied under a new name"), "{why}");

    // Through all of it, "latest" is the backup's own manifest, and each
    // newer one is named with why it was passed over.
    let latest = verify_with(store, None).await;
    assert_eq!(latest.manifest_s3_uri, store.uri(&real_key));
    assert!(latest.signature.is_valid());
    let reasons: Vec<&str> = latest
        .passed_over
        .iter()
        .map(|p| p.reason.as_str())
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].contains("copied under a new name"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("not by the trusted signing key"),
        "{reasons:?}"
    );
    assert!(reasons[2].contains("does not verify"), "{reasons:?}");

    // Signed by the trusted key itself, a record whose object lies outside
    // the prefix: that file is refused, the rest restored.
    let secret = b"not part of this backup\n";
    plant(&backup, "elsewhere/secret.txt", secret, &[]).await;
    let (mut outside, outside_key) = as_run(&real, "outside", "9999-01-04T00:00:00.000Z");
    let index = outside
        .files
        .iter()
        .position(|f| f.local_path.ends_with("/top.txt"))
        .unwrap();
    let record = &mut outside.files[index];
    record.s3_key = Some("elsewhere/secret.txt".into());
    record.md5 = Some(md5_hex(secret));
    record.size_bytes = secret.len() as u64;
    let body = serde_json::to_vec(&outside).unwrap();
    let signature = kms_sign(&backup, &signing, &body).await;
    plant_signed(&backup, &outside_key, &body, &signature, &signing).await;
    let report = verify_with(store, Some(&outside_key)).await;
    assert!(report.signature.is_valid(), "{:?}", report.signature);
    assert_eq!(report.misplaced, 1, "{:?}", report.problems);
    assert!(report.problems[0].detail.contains("elsewhere/secret.txt"));
    let target = out.path().join("d");
    let restored = restore_with(store, Some(&outside_key), &target)
        .await
        .unwrap();
    assert_eq!(restored.failed, 1, "{restored:?}");
    assert!(
        restored.failures[0].error.contains("maps to"),
        "{restored:?}"
    );
    assert!(!target.join("top.txt").exists());
}

#[tokio::test]
async fn without_a_signing_key_manifests_are_unsigned_and_say_so() {
    let backup = Backup::new(BUCKET, PREFIX, false).await;
    let summary = backup.sync().await;
    assert_eq!(summary.signed_by, None);
    let raw: serde_json::Value = serde_json::from_slice(
        &local_copy(summary.manifest_local_path.as_deref().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        raw["signing_key_id"],
        serde_json::Value::Null,
        "the manifest says it is unsigned"
    );

    // Where no key is trusted, unsigned is worth a warning, not a problem.
    let store = &backup.engine.store;
    let report = verify_with(store, None).await;
    assert_eq!(report.problems, vec![]);
    assert_eq!(report.signature, Verdict::Unsigned);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.detail.contains("unsigned")),
        "{report:?}"
    );

    // Once a key is trusted, it is a problem, and restore needs
    // --allow-unsigned to take it.
    let signing = backup.moto.signing_key().await;
    let trusting = store.clone().with_trust(backup.moto.trust(&signing));
    let uri = summary.manifest_s3_uri.as_deref();
    let report = verify_with(&trusting, uri).await;
    assert_eq!(report.unsigned, 1, "{report:?}");
    let out = tempfile::tempdir().unwrap();
    untrusted(restore_with(&trusting, uri, out.path()).await);
    let no_latest = verify::run(
        &trusting,
        PREFIX,
        &VerifyOptions { concurrency: 4 },
        &VerifyRequest::default(),
    )
    .await;
    let why = no_latest
        .expect_err("no signed snapshot stands for latest")
        .to_string();
    assert!(why.contains("--allow-unsigned"), "{why}");
    let options = RestoreOptions {
        allow_unsigned: true,
        ..restore_options(out.path())
    };
    let restored = restore::run(&trusting, PREFIX, &options).await.unwrap();
    assert_eq!(restored.status, RunStatus::Succeeded);
    assert_eq!(tree(out.path()), tree(backup.source.path()));
}

#[tokio::test]
async fn a_pinned_public_key_proves_what_kms_signed_with_no_kms_at_hand() {
    let (backup, signing) = signed_backup(BUCKET, false).await;
    let summary = backup.sync().await;
    let der = backup
        .moto
        .kms()
        .get_public_key()
        .key_id(&signing)
        .send()
        .await
        .unwrap()
        .public_key()
        .unwrap()
        .as_ref()
        .to_vec();
    let pem = openssl::pkey::PKey::public_key_from_der(&der)
        .unwrap()
        .public_key_to_pem()
        .unwrap();

    // The signature is a plain ECDSA-SHA256 signature of the snapshot
    // object's bytes: `openssl dgst -sha256 -verify` checks it as this does.
    let key = manifest_key(&summary, BUCKET);
    let local = get_bytes(&backup.moto.s3(), BUCKET, &key).await;
    let stored = backup.engine.store.head(&key).await.unwrap().unwrap();
    let signature = stored.signature.unwrap();
    let der_signature = base64::engine::general_purpose::STANDARD
        .decode(&signature.signature)
        .unwrap();
    let pkey = openssl::pkey::PKey::public_key_from_pem(&pem).unwrap();
    let mut verifier =
        openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &pkey).unwrap();
    verifier.update(&local).unwrap();
    assert!(
        verifier.verify(&der_signature).unwrap(),
        "a stock ECDSA check of the object"
    );

    // Readers with the pinned key and a KMS that answers nothing.
    let dead_kms = s3_kms_sync::store::kms_client_from(
        &sdk_config_for(&format!("http://127.0.0.1:{}", free_port())),
        aws_sdk_kms::config::retry::RetryConfig::standard().with_max_attempts(1),
    );
    let pinned = PublicKey::from_pem(&pem).unwrap();
    let offline = backup
        .engine
        .store
        .clone()
        .with_trust(Trust::new(&dead_kms, None, Some(pinned)));
    let report = verify_with(&offline, None).await;
    assert_eq!(report.problems, vec![]);
    assert!(report.signature.is_valid(), "{:?}", report.signature);
    let out = tempfile::tempdir().unwrap();
    let restored = restore_with(&offline, None, out.path()).await.unwrap();
    assert!(restored.signature.is_valid());
    assert_eq!(tree(out.path()), tree(backup.source.path()));
}

#[tokio::test]
async fn a_missing_old_manifest_leaves_a_signed_snapshot_trusted() {
    let (backup, _) = signed_backup(BUCKET, false).await;
    let store = &backup.engine.store;
    let first = backup.sync().await;
    std::fs::write(backup.source.path().join("top.txt"), b"changed\n").unwrap();
    backup.sync().await;
    let first_key = manifest_key(&first, BUCKET);
    backup
        .moto
        .s3()
        .delete_object()
        .bucket(BUCKET)
        .key(&first_key)
        .send()
        .await
        .unwrap();

    let report = verify_with(store, None).await;
    assert_eq!(report.problems, vec![], "a gap is not a problem");
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert_eq!(
        report.warnings[0].key, first_key,
        "the gap names what is missing"
    );
    let out = tempfile::tempdir().unwrap();
    let restored = restore_with(store, None, out.path()).await.unwrap();
    assert_eq!(restored.status, RunStatus::Succeeded);
    assert_eq!(tree(out.path()), tree(backup.source.path()));
}
