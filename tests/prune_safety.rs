//! Prune never deletes what someone needs (items 7, 8 and 10 of the prune
//! review; item 11 is in object_lock.rs): an unversioned bucket, a backup
//! nested in another, and another application's objects beside an empty
//! prefix, each against moto.

mod support;

use s3_kms_sync::commands::forget::{self, ForgetArgs, ForgetOptions, ForgetReport};
use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::config::Options;
use s3_kms_sync::run::Mode;
use support::trust::{plant, verify_with};
use support::*;

fn prune_options(keep_last: &str) -> ForgetOptions {
    ForgetOptions::from_args(
        ForgetArgs {
            keep_last: Some(keep_last.parse().unwrap()),
            prune: true,
            ..ForgetArgs::default()
        },
        Mode::Cli,
    )
    .unwrap()
}

async fn prune(
    engine: &Engine,
    prefix: &str,
    options: &ForgetOptions,
) -> s3_kms_sync::Result<ForgetReport> {
    Box::pin(forget::run(
        &engine.store,
        prefix,
        &engine.config.run,
        options,
        None,
    ))
    .await
}

async fn exists(backup: &Backup, key: &str) -> bool {
    backup.engine.store.head(key).await.unwrap().is_some()
}

/// Item 7: on an unversioned bucket a delete marker is a deletion for
/// good. A file that left the source keeps its object; prune counts it.
#[tokio::test]
async fn item7_an_unversioned_bucket_loses_nothing_to_a_prune() {
    let backup = Backup::new("prune-unversioned", "p", false).await;
    backup.sync().await;
    std::fs::remove_file(backup.source.path().join("top.txt")).unwrap();
    next_second();
    backup.sync().await;
    next_second();

    let report = prune(&backup.engine, "p", &prune_options("1"))
        .await
        .unwrap();
    let pruned = report.prune.as_ref().unwrap();
    assert_eq!(pruned.hidden, 0, "{report:#?}");
    assert!(pruned.sweep.unversioned_kept >= 1, "{report:#?}");
    assert!(
        exists(&backup, "p/top.txt").await,
        "the object is still there"
    );
}

/// Item 8: backup `p` stores `sub/report.txt` at `p/sub/report.txt`, and
/// `p/sub` is another backup. The inner one refuses to prune (it cannot
/// see what the outer one references); the outer one prunes and leaves
/// the inner prefix alone, and its own snapshot still verifies.
#[tokio::test]
async fn item8_a_backup_nested_in_another_is_never_pruned_from_inside() {
    let backup = Backup::new("prune-nested", "p", true).await;
    write_tree(
        backup.source.path(),
        &[("sub/report.txt", b"the outer backup's\n".to_vec())],
    );
    let outer = backup.sync().await;
    let inner_source = tempfile::tempdir().unwrap();
    write_tree(inner_source.path(), &[("ledger.txt", b"inner\n".to_vec())]);
    let inner_manifests = tempfile::tempdir().unwrap();
    let inner = backup.moto.engine(settings(
        inner_source.path(),
        inner_manifests.path(),
        backup.bucket,
        &backup.key_arn,
        "p/sub",
    ));
    inner.run(&SyncRequest::default()).await.unwrap();
    next_second();
    inner.run(&SyncRequest::default()).await.unwrap();
    next_second();

    let refused = prune(&inner, "p/sub", &prune_options("1")).await;
    let err = refused.expect_err("a prefix inside another backup is refused");
    assert!(err.to_string().contains("lies inside"), "{err}");

    let report = prune(&backup.engine, "p", &prune_options("1"))
        .await
        .unwrap();
    let pruned = report.prune.as_ref().unwrap();
    assert!(
        pruned.sweep.nested_prefixes.contains("p/sub/"),
        "{report:#?}"
    );
    assert!(exists(&backup, "p/sub/report.txt").await);
    assert!(exists(&backup, "p/sub/ledger.txt").await);
    let verified = verify_with(&backup.engine.store, outer.manifest_s3_uri.as_deref()).await;
    assert_eq!(verified.problems, vec![], "{verified:?}");
}

/// Item 10: with the CLI's empty default prefix, prune refuses unless the
/// empty prefix is asked for by name; then it leaves alone an object this
/// tool never wrote.
#[tokio::test]
async fn item10_prune_leaves_objects_this_tool_never_wrote() {
    let backup = Backup::new("prune-foreign", "", true).await;
    plant(&backup, "other-app/ledger.db", b"not ours\n", &[]).await;
    next_second();
    backup.sync().await;
    next_second();
    backup.sync().await;
    next_second();

    let mut options = prune_options("1");
    let refused = prune(&backup.engine, "", &options).await;
    let err = refused.expect_err("an empty prefix not given by name is refused");
    assert!(err.to_string().contains("--prefix ''"), "{err}");

    options.whole_bucket = true;
    let report = prune(&backup.engine, "", &options).await.unwrap();
    let pruned = report.prune.as_ref().unwrap();
    assert!(pruned.sweep.foreign_kept >= 1, "{report:#?}");
    assert_eq!(pruned.hidden, 0, "{report:#?}");
    assert!(exists(&backup, "other-app/ledger.db").await);
}

/// Item 9: narrowed runs with their own sub-prefix are lines of their own.
/// A newer archB run the same day does not push the archA run out of
/// `--keep-daily 1`, and prune keeps archA's only copy of its file.
#[tokio::test]
async fn item9_each_narrowed_scope_is_a_retention_line_of_its_own() {
    let backup = Backup::new("prune-lines", "p", true).await;
    write_tree(
        backup.source.path(),
        &[
            ("A/x.txt", b"only in archA\n".to_vec()),
            ("B/y.txt", b"only in archB\n".to_vec()),
        ],
    );
    backup.sync().await;
    let narrowed = |subdir: &str, sub_prefix: &str| SyncRequest {
        subdir: Some(subdir.into()),
        sub_prefix: Some(sub_prefix.into()),
        ..SyncRequest::default()
    };
    let arch_a = backup.engine.run(&narrowed("A", "archA")).await.unwrap();
    let arch_b = backup.engine.run(&narrowed("B", "archB")).await.unwrap();
    let name_a = arch_a.manifest_s3_uri.clone().unwrap();
    let name_b = arch_b.manifest_s3_uri.clone().unwrap();
    assert!(name_a.contains(".narrowed-") && name_b.contains(".narrowed-"));
    assert_ne!(
        name_a.rsplit(".narrowed-").next(),
        name_b.rsplit(".narrowed-").next(),
        "each scope's name carries its own line"
    );
    next_second();
    backup.sync().await;
    next_second();

    let options = ForgetOptions::from_args(
        ForgetArgs {
            keep_daily: Some("1".parse().unwrap()),
            prune: true,
            keep_deleted_within: Some("0h".parse().unwrap()),
            ..ForgetArgs::default()
        },
        Mode::Cli,
    )
    .unwrap();
    let report = prune(&backup.engine, "p", &options).await.unwrap();
    let kept: Vec<&str> = report
        .snapshots
        .iter()
        .filter(|f| f.kept)
        .map(|f| f.line.manifest_s3_uri.as_str())
        .collect();
    assert!(kept.contains(&name_a.as_str()), "{report:#?}");
    assert!(kept.contains(&name_b.as_str()), "{report:#?}");
    let keys = list_keys(&backup.moto.s3(), backup.bucket).await;
    let arch_a_file: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("p/archA/") && k.ends_with("x.txt"))
        .collect();
    assert_eq!(arch_a_file.len(), 1, "{keys:?}");
    assert!(exists(&backup, arch_a_file[0]).await);
}
