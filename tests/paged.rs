//! The paged snapshot format against moto: pages shared across runs, a
//! tampered node refused by name, and a history that mixes both formats.

mod support;

use std::collections::BTreeMap;

use s3_kms_sync::commands::forget::{self, ForgetArgs, ForgetStatus};
use s3_kms_sync::commands::verify::{self, VerifyOptions, VerifyRequest};
use s3_kms_sync::config::Options;
use s3_kms_sync::manifest::paged::page_key;
use s3_kms_sync::run::Mode;
use support::trust::*;
use support::*;

/// 400 files in 8 directories, beside the sample tree: some dozen pages.
fn many_files() -> Vec<(String, Vec<u8>)> {
    (0..400)
        .map(|i| {
            (
                format!("many/d{}/f{i:04}.txt", i % 8),
                format!("file {i}\n").into_bytes(),
            )
        })
        .collect()
}

/// Every object under the manifest folder, with its size.
async fn manifest_objects(backup: &Backup) -> BTreeMap<String, i64> {
    let listed = backup
        .moto
        .s3()
        .list_objects_v2()
        .bucket(backup.bucket)
        .prefix(format!("{PREFIX}/_manifests/"))
        .max_keys(1000)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .map(|o| (o.key().unwrap().to_owned(), o.size().unwrap_or(0)))
        .collect()
}

/// The bytes of objects under the manifest folder that `after` has and
/// `before` did not.
fn written(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>) -> i64 {
    after
        .iter()
        .filter(|(key, _)| !before.contains_key(*key))
        .map(|(_, size)| size)
        .sum()
}

/// The tree the snapshot `manifest` (the latest if `None`) restores to,
/// every entry restored.
async fn restored_tree(backup: &Backup, manifest: Option<&str>) -> BTreeMap<String, Vec<u8>> {
    let target = tempfile::tempdir().unwrap();
    let report = restore_with(&backup.engine.store, manifest, target.path())
        .await
        .unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    tree(target.path())
}

/// The snapshot object of a run, parsed.
async fn snapshot_object(
    backup: &Backup,
    summary: &s3_kms_sync::manifest::Summary,
) -> serde_json::Value {
    let key = manifest_key(summary, backup.bucket);
    serde_json::from_slice(&get_bytes(&backup.moto.s3(), backup.bucket, &key).await).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_run_writes_its_small_object_and_shares_every_page() {
    let (backup, _) = signed_backup("paged-shared", true).await;
    write_owned(backup.source.path(), &many_files());
    let first = backup.sync().await;
    let pages = first.pages.expect("a paged snapshot");
    assert!(pages.nodes >= 6, "{pages:?}");
    assert_eq!(pages.sent, pages.nodes, "a first run sends every node");
    let object = snapshot_object(&backup, &first).await;
    assert!(
        object.get("files").is_none() && object["format"] == 2,
        "{object}"
    );

    settle();
    let before = manifest_objects(&backup).await;
    let asked = backup.engine.store.requests();
    let second = backup.sync().await;
    let requests = backup.engine.store.requests_since(&asked);
    let after = manifest_objects(&backup).await;
    // The last snapshot is judged over its small object; its pages come
    // from the local cache, checked against their hashes.
    let gets = requests.get("GetObject").copied().unwrap_or(0);
    assert!(gets <= 2, "{requests:?}");
    assert_eq!(second.uploaded, 0);
    assert_eq!(second.pages.unwrap().sent, 0, "no page is sent again");
    let bytes = written(&before, &after);
    assert!(
        bytes <= 8 * 1024,
        "an unchanged run wrote {bytes} B under _manifests/"
    );
    assert_eq!(
        snapshot_object(&backup, &second).await["root"],
        object["root"],
        "the same tree has the same root"
    );

    write_tree(
        backup.source.path(),
        &[("many/d3/f0203.txt", b"changed\n".to_vec())],
    );
    settle();
    let third = backup.sync().await;
    assert_eq!(third.uploaded, 1);
    let sent = third.pages.unwrap();
    assert!(
        (1..=4).contains(&sent.sent),
        "one change sends its page and the index above it: {sent:?}"
    );
    assert_eq!(
        restored_tree(&backup, None).await,
        tree(backup.source.path())
    );
}

/// Puts `body` at `key` as a principal that may write the prefix would.
async fn overwrite(backup: &Backup, key: &str, body: Vec<u8>) {
    backup.put(key, body, ("planted", "yes")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_page_root_or_snapshot_object_is_refused_by_name() {
    let (backup, _) = signed_backup("paged-tamper", true).await;
    write_owned(backup.source.path(), &many_files());
    let summary = backup.sync().await;
    let key = manifest_key(&summary, backup.bucket);
    let uri = summary.manifest_s3_uri.clone().unwrap();
    let object = snapshot_object(&backup, &summary).await;
    let root = page_key(&key, object["root"]["sha256"].as_str().unwrap());
    let s3 = backup.moto.s3();
    let pages: Vec<String> = manifest_objects(&backup)
        .await
        .into_keys()
        .filter(|k| k.contains("/pages/") && *k != root)
        .collect();
    assert!(!pages.is_empty());
    // Another page's bytes stand where a page was: the hash it is named by
    // is not theirs.
    let other = get_bytes(&s3, backup.bucket, &pages[1]).await;
    for target_key in [&pages[0], &root] {
        let original = get_bytes(&s3, backup.bucket, target_key).await;
        overwrite(&backup, target_key, other.clone()).await;
        let target = tempfile::tempdir().unwrap();
        let err = restore_with(&backup.engine.store, Some(&uri), target.path())
            .await
            .expect_err("a tampered node is refused")
            .to_string();
        assert!(
            err.contains(target_key.as_str()) && err.contains("changed"),
            "{err}"
        );
        assert!(
            tree(target.path()).is_empty(),
            "nothing restored from a tampered tree"
        );
        let request = VerifyRequest {
            manifest: Some(uri.clone()),
            ..VerifyRequest::default()
        };
        let verified = verify::run(
            &backup.engine.store,
            PREFIX,
            &VerifyOptions { concurrency: 4 },
            &request,
        )
        .await;
        assert!(
            verified
                .as_ref()
                .is_err_and(|err| err.to_string().contains(target_key.as_str())),
            "verify refuses it too: {verified:?}"
        );
        overwrite(&backup, target_key, original).await;
    }
    // The snapshot object naming another root: its signature no longer holds.
    let mut forged = object.clone();
    forged["root"]["sha256"] = serde_json::json!(pages[0].rsplit('/').next().unwrap());
    let body = serde_json::to_vec(&forged).unwrap();
    let head = s3
        .head_object()
        .bucket(backup.bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let metadata = head.metadata().unwrap();
    let (signature, signed_by) = (&metadata["signature"], &metadata["signing-key"]);
    plant_signed(&backup, &key, &body, signature, signed_by).await;
    let target = tempfile::tempdir().unwrap();
    let err = restore_with(&backup.engine.store, Some(&uri), target.path())
        .await
        .expect_err("a forged snapshot object is refused")
        .to_string();
    assert!(err.contains(&key) && err.contains("not trusted"), "{err}");
}

async fn forget_keep_last(backup: &Backup, last: &str) -> forget::ForgetReport {
    let args = ForgetArgs {
        keep_last: Some(last.parse().unwrap()),
        prune: true,
        keep_deleted_within: Some("0h".parse().unwrap()),
        ..ForgetArgs::default()
    };
    forget_with(backup, args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_history_of_both_formats_restores_diffs_forgets_and_prunes() {
    let (mut backup, _) = signed_backup("paged-mixed", true).await;
    backup.engine.config.command.snapshot_format = 1;
    let first = backup.sync().await;
    assert!(first.pages.is_none());
    let v1 = snapshot_object(&backup, &first).await;
    assert!(v1["files"].is_array(), "the first format holds its records");
    let tree_at_first = tree(backup.source.path());

    write_tree(
        backup.source.path(),
        &[("top.txt", b"second top\n".to_vec())],
    );
    settle();
    next_second();
    backup.engine.config.command.snapshot_format = 2;
    let second = backup.sync().await;
    assert!(second.pages.is_some());
    assert_eq!(
        (second.uploaded, second.skipped),
        (1, first.uploaded - 1),
        "the first paged run takes its index from the first format's snapshot"
    );

    assert_eq!(
        restored_tree(&backup, first.manifest_s3_uri.as_deref()).await,
        tree_at_first,
        "the first format restores"
    );

    let first_uri = first.manifest_s3_uri.clone().unwrap();
    let (compared, _) = diff_json(&backup, &first_uri, "latest").await;
    assert_eq!(
        (compared.added, compared.removed, compared.changed),
        (0, 0, 1),
        "{compared:?}"
    );

    next_second();
    let report = forget_keep_last(&backup, "1").await;
    assert_eq!(report.status, ForgetStatus::Succeeded, "{report:#?}");
    assert_eq!((report.kept, report.forgotten), (1, 1));
    let prune = report.prune.as_ref().unwrap();
    assert_eq!(
        prune.sweep.versions_to_delete, 1,
        "top.txt's first version: {prune:#?}"
    );
    assert_eq!(
        restored_tree(&backup, None).await,
        tree(backup.source.path()),
        "the paged snapshot restores after a prune"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_file_is_restored_from_the_pages_along_its_path() {
    let (backup, _) = signed_backup("paged-one", true).await;
    write_owned(backup.source.path(), &two_thousand());
    let summary = backup.sync().await;
    let nodes = summary.pages.unwrap().nodes;
    assert!(nodes > 40, "{nodes} nodes");

    let target = tempfile::tempdir().unwrap();
    let mut options = restore_options(target.path());
    options.filter =
        s3_kms_sync::local::filter::Filter::new(&["big/d7/f1047.txt".into()], &[]).unwrap();
    let asked = backup.engine.store.requests();
    let report = s3_kms_sync::commands::restore::run(&backup.engine.store, PREFIX, &options)
        .await
        .unwrap();
    let requests = backup.engine.store.requests_since(&asked);
    assert_eq!((report.restored, report.failed), (1, 0), "{report:?}");
    assert_eq!(tree(target.path())["big/d7/f1047.txt"], b"1047\n");
    // The snapshot object once (judged as "latest", then read from what
    // was judged), the index nodes above the file, its page (or the two
    // around a boundary), and the file itself.
    let level = snapshot_object(&backup, &summary).await["root"]["level"]
        .as_u64()
        .unwrap();
    let gets = requests["GetObject"];
    assert!(
        gets <= 1 + level + 2 + 1,
        "{gets} GETs of a tree of {nodes} nodes under a root at level {level}: {requests:?}"
    );
}

/// A page in the local cache is not known to be in S3: after the manifest
/// folder was emptied, the next run sends its pages again, and its snapshot
/// restores.
#[tokio::test(flavor = "multi_thread")]
async fn a_cached_page_is_sent_again_once_s3_lost_it() {
    let (backup, _) = signed_backup("paged-lost", false).await;
    write_owned(backup.source.path(), &many_files());
    backup.sync().await;
    let s3 = backup.moto.s3();
    for key in manifest_objects(&backup).await.into_keys() {
        s3.delete_object()
            .bucket(backup.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    let again = backup.sync().await;
    let pages = again.pages.unwrap();
    assert_eq!(pages.sent, pages.nodes, "{pages:?}");
    assert_eq!(
        restored_tree(&backup, None).await,
        tree(backup.source.path())
    );
}

/// 2,000 files in 20 directories: a tree of some 60 pages and two levels.
fn two_thousand() -> Vec<(String, Vec<u8>)> {
    (0..2000)
        .map(|i| {
            (
                format!("big/d{}/f{i:04}.txt", i % 20),
                format!("{i}\n").into_bytes(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_reads_no_page_the_two_snapshots_share() {
    let (backup, _) = signed_backup("paged-diff", true).await;
    write_owned(backup.source.path(), &two_thousand());
    let first = backup.sync().await;
    write_tree(
        backup.source.path(),
        &[("big/d7/f1047.txt", b"changed\n".to_vec())],
    );
    settle();
    let second = backup.sync().await;
    let nodes = second.pages.as_ref().unwrap().nodes;

    let first_uri = first.manifest_s3_uri.clone().unwrap();
    let asked = backup.engine.store.requests();
    let (compared, out) = diff_json(&backup, &first_uri, "latest").await;
    let requests = backup.engine.store.requests_since(&asked);
    let files = first.uploaded;
    assert_eq!(
        (
            compared.added,
            compared.removed,
            compared.changed,
            compared.unchanged
        ),
        (0, 0, 1, files - 1),
        "{compared:?}"
    );
    let changed = std::fs::read_to_string(out.path()).unwrap();
    assert!(changed.contains("big/d7/f1047.txt"), "{changed}");
    // Each side's object and index, and the pages around the change: not
    // the tree of either.
    let gets = requests["GetObject"];
    assert!(
        gets < nodes,
        "{gets} GETs for trees of {nodes} nodes: {requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn find_reads_each_distinct_page_once_across_snapshots() {
    use s3_kms_sync::commands::find::{self, FindArgs, FindOptions};
    let (backup, _) = signed_backup("paged-find", true).await;
    write_owned(backup.source.path(), &two_thousand());
    let first = backup.sync().await;
    for (path, body) in [
        ("big/d7/f1047.txt", "changed\n"),
        ("big/d3/f0003.txt", "also\n"),
    ] {
        write_tree(backup.source.path(), &[(path, body.as_bytes().to_vec())]);
        settle();
        next_second();
        backup.sync().await;
    }
    let nodes = first.pages.unwrap().nodes;
    let options = FindOptions::from_args(
        FindArgs {
            glob: "big/d7/f1047.txt".into(),
        },
        Mode::Cli,
    )
    .unwrap();
    let asked = backup.engine.store.requests();
    let report = find::run(&backup.engine.store, PREFIX, &options)
        .await
        .unwrap();
    let requests = backup.engine.store.requests_since(&asked);
    assert_eq!(report.snapshots_read, 3);
    let counts: Vec<u64> = report.found.iter().map(|f| f.snapshots).collect();
    assert_eq!(
        counts,
        [1, 2],
        "the first content in one snapshot, the second in two: {report:?}"
    );
    let gets = requests["GetObject"];
    assert!(
        gets < 2 * nodes,
        "{gets} GETs for 3 snapshots of {nodes} nodes each: {requests:?}"
    );
}

/// The page keys stored now (current objects only).
async fn page_keys(backup: &Backup) -> std::collections::BTreeSet<String> {
    let pages = format!("{PREFIX}/_manifests/pages/");
    let listed = list_keys(&backup.moto.s3(), backup.bucket).await;
    listed
        .into_iter()
        .filter(|k| k.starts_with(&pages))
        .collect()
}

/// Forget with prune removes the pages only forgotten snapshots named, and
/// no node of a kept snapshot: on a versioned bucket they are hidden, then
/// deleted past the grace period; on one without versions, deleted once
/// written longer ago than the grace period. The kept snapshot restores.
async fn forget_sweeps_the_pages_only_forgotten_snapshots_named(
    bucket: &'static str,
    versioned: bool,
) {
    let (backup, _) = signed_backup(bucket, versioned).await;
    write_owned(backup.source.path(), &many_files());
    backup.sync().await;
    let first_pages = page_keys(&backup).await;
    settle();
    next_second();
    write_owned(
        backup.source.path(),
        &[("many/d3/f0003.txt".to_owned(), b"changed\n".to_vec())],
    );
    let second = backup.sync().await;
    let both = page_keys(&backup).await;
    let new: Vec<&String> = both.difference(&first_pages).collect();
    assert!(!new.is_empty(), "the change wrote pages");

    next_second();
    let report = forget_keep_last(&backup, "1").await;
    assert_eq!(report.status, ForgetStatus::Succeeded, "{report:#?}");
    if versioned {
        // Hidden now; the next prune finds them noncurrent past the grace.
        next_second();
        let again = forget_keep_last(&backup, "1").await;
        let prune = again.prune.as_ref().unwrap();
        assert!(prune.sweep.pages_to_delete > 0, "{prune:#?}");
    } else {
        let prune = report.prune.as_ref().unwrap();
        assert!(prune.sweep.pages_to_delete > 0, "{prune:#?}");
    }
    let left = page_keys(&backup).await;
    let gone: Vec<&String> = both.difference(&left).collect();
    assert!(!gone.is_empty(), "no page was swept");
    assert!(
        gone.iter().all(|key| first_pages.contains(*key)),
        "only pages of the forgotten snapshot go: {gone:?}"
    );
    assert!(
        new.iter().all(|key| left.contains(*key)),
        "a page of the kept snapshot went"
    );

    let second_uri = second.manifest_s3_uri.as_deref();
    assert_eq!(
        restored_tree(&backup, second_uri).await,
        tree(backup.source.path())
    );
    // The next run finds its index whole, and writes only its object.
    let third = backup.sync().await;
    assert_eq!(third.uploaded, 0, "{third:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_sweeps_unreferenced_pages_on_a_versioned_bucket() {
    forget_sweeps_the_pages_only_forgotten_snapshots_named("paged-sweep-v", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_sweeps_unreferenced_pages_on_a_bucket_without_versions() {
    forget_sweeps_the_pages_only_forgotten_snapshots_named("paged-sweep-u", false).await;
}
