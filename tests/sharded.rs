//! A sharded run on moto through the Lambda handler: plan, a sync per
//! shard, merge. The merged manifest must be a snapshot like any other (the
//! next run's index, a link of the chain), the shards must cover every file
//! exactly once, and the lock must hold from the plan to the merge.

mod support;

use std::time::Duration;

use lambda_runtime::{Context, LambdaEvent};
use s3_kms_sync::Error;
use s3_kms_sync::commands::sync::SyncRequest;
use s3_kms_sync::commands::sync::sharded::plan::{self, PlanOptions, PlanOutput, PlanStatus};
use s3_kms_sync::lambda::handle;
use s3_kms_sync::lambda::handler::Output;
use s3_kms_sync::manifest::{EntryKind, RunStatus, Summary};
use serde_json::{Value, json};
use support::*;

const BUCKET: &str = "sharded-backups";
const PREFIX: &str = "fleet";

async fn invoke(engine: &Engine, event: Value) -> s3_kms_sync::Result<Output> {
    handle(engine, LambdaEvent::new(event, Context::default())).await
}

async fn plan_by_event(engine: &Engine) -> PlanOutput {
    match invoke(engine, json!({"command": "plan"})).await.unwrap() {
        Output::Plan(output) => output,
        other => panic!("plan returned {other:?}"),
    }
}

/// The shard list as the Distributed Map's ItemReader reads it: a JSON array.
async fn shard_items(moto: &Moto, planned: &PlanOutput) -> Vec<Value> {
    let key = planned.shard_list_key.as_deref().expect("a shard list");
    let list: Value =
        serde_json::from_slice(&get_bytes(&moto.s3(), &planned.bucket, key).await).unwrap();
    list.as_array().expect("the shard list is an array").clone()
}

async fn run_shard(engine: &Engine, item: &Value) -> s3_kms_sync::Result<Summary> {
    let event = json!({"command": "sync", "shard": item});
    invoke(engine, event)
        .await
        .map(|o| o.summary().expect("a sync summary"))
}

async fn merge(engine: &Engine, run_id: &str) -> Summary {
    let event = json!({"command": "merge", "run_id": run_id});
    let output = invoke(engine, event).await.expect("merge");
    output.summary().expect("a run summary")
}

/// The keys of the files the run's snapshot holds, as often as it holds them.
async fn stored_paths(engine: &Engine, summary: &Summary) -> Vec<String> {
    let records = stored_records(engine, summary).await;
    records
        .into_iter()
        .filter(|r| r.kind == EntryKind::File)
        .map(|r| r.s3_key.unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_sharded_run_backs_up_every_file_once_and_its_manifest_is_the_next_index() {
    let backup = Backup::new(BUCKET, PREFIX, false).await;
    let (moto, engine, source) = (&backup.moto, &backup.engine, &backup.source);
    let files = sample_files();

    // No manifest yet: a slice per top-level directory, plus the first.
    let planned = plan_by_event(engine).await;
    assert_eq!(planned.status, PlanStatus::Planned);
    let top_level_dirs = 4; // deep, reports, unicode, "with space"
    assert_eq!(planned.shards, top_level_dirs + 1);
    // The plan holds the lock: a plain run meanwhile does nothing.
    let blocked = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(blocked.status, RunStatus::Skipped);

    let items = shard_items(moto, &planned).await;
    let mut uploaded = 0;
    for item in &items {
        let summary = run_shard(engine, item).await.unwrap();
        assert_eq!(summary.failed, 0, "{summary:?}");
        uploaded += summary.uploaded;
    }
    assert_eq!(
        uploaded,
        files.len() as u64,
        "each file went up in one shard"
    );
    let left: Vec<_> = std::fs::read_dir(backup.manifests.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("shard-"))
        .collect();
    assert!(
        left.is_empty(),
        "shard manifests stay on local disk: {left:?}"
    );

    let merged = merge(engine, &planned.run_id).await;
    assert_eq!(merged.status, RunStatus::Succeeded, "{merged:?}");
    assert_eq!((merged.uploaded, merged.failed), (files.len() as u64, 0));
    let mut keys = stored_paths(engine, &merged).await;
    let count = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!((count, keys.len()), (files.len(), files.len()));
    let stored = list_keys(&moto.s3(), BUCKET).await;
    assert!(
        !stored.iter().any(|k| k.contains("/_manifests/shards/")),
        "the merge leaves shard documents behind: {stored:?}"
    );
    assert!(
        !stored.iter().any(|k| k.ends_with("lock.json")),
        "the merge did not release the lock"
    );
    let manifest = manifest_of(&merged);
    assert!(manifest.complete && manifest.expected_files == Some(files.len() as u64));

    // The merged manifest is a full one: a plain run skips every file by it.
    let plain = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(
        (plain.uploaded, plain.skipped),
        (0, files.len() as u64),
        "{plain:?}"
    );

    // Now the manifest counts files: slices of about two, one file changed.
    write_tree(
        source.path(),
        &[("reports/2026/q1.csv", b"a,b\n3,4\n".to_vec())],
    );
    let options = PlanOptions {
        shard_files: 2,
        lock_ttl: Duration::from_secs(600),
    };
    let config = &engine.config;
    let counted = plan::run(&engine.store, PREFIX, &config.command, &options)
        .await
        .unwrap();
    assert_eq!(counted.shards as usize, files.len() / 2 + 1);
    let items = shard_items(moto, &counted).await;
    for item in &items {
        run_shard(engine, item).await.unwrap();
    }
    let second = merge(engine, &counted.run_id).await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(
        (second.uploaded, second.skipped),
        (1, files.len() as u64 - 1)
    );
    let chained = manifest_of(&second);
    assert_eq!(
        chained.previous_manifest.map(|l| l.key),
        plain
            .manifest_s3_uri
            .map(|u| u.trim_start_matches(&format!("s3://{BUCKET}/")).to_owned()),
        "the merged manifest links to the one before the plan"
    );
    let changed = stored_records(engine, &second).await;
    let changed = changed.iter().find(|r| r.local_path.ends_with("q1.csv"));
    assert_eq!(
        changed.and_then(|r| r.md5.clone()),
        Some(md5_hex(b"a,b\n3,4\n")),
        "the changed file's record holds its new content"
    );

    // The lock is gone with the merge: a late shard of that run is refused.
    let late = run_shard(engine, &items[0]).await;
    assert!(
        matches!(&late, Err(Error::Shard(m)) if m.contains("no longer holds the lock")),
        "{late:?}"
    );
}

#[tokio::test]
async fn a_shard_that_never_reported_leaves_the_run_incomplete_and_the_lock_released() {
    let backup = Backup::new(BUCKET, PREFIX, false).await;
    let (moto, engine) = (&backup.moto, &backup.engine);
    let planned = plan_by_event(engine).await;
    let items = shard_items(moto, &planned).await;

    // A slice the plan did not cut is refused, whatever run it names.
    let mut forged = items[1].clone();
    forged["range"]["after"] = json!("a");
    let refused = run_shard(engine, &forged).await;
    assert!(matches!(refused, Err(Error::Shard(_))), "{refused:?}");

    // Slices: (-, deep], (deep, reports], (reports, unicode], ...: the third
    // holds reports/ and top.txt. Its invocation never reports.
    for (index, item) in items.iter().enumerate() {
        if index != 2 {
            run_shard(engine, item).await.unwrap();
        }
    }
    let merged = merge(engine, &planned.run_id).await;
    assert_eq!(merged.status, RunStatus::Partial);
    assert!(!merged.complete);
    let message = merged.message.clone().unwrap_or_default();
    assert!(
        message.contains("1 shards stored no manifest (2)"),
        "{message}"
    );
    let keys = stored_paths(engine, &merged).await;
    assert!(!keys.iter().any(|k| k == "fleet/top.txt"), "{keys:?}");
    assert_eq!(keys.len(), sample_files().len() - 3);
    // The next run may start at once, and backs the missing files up.
    let next = engine.run(&SyncRequest::default()).await.unwrap();
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    assert_eq!(
        next.uploaded, 3,
        "reports/2026/q1.csv, reports/big.bin, top.txt"
    );
}

/// Item 1 of the trust review, for sharded runs: the merge takes a shard
/// manifest only when the trusted key signed it and its records lie in the
/// slice the signed shard list gave it. A forged shard manifest, and a
/// real one copied to another shard's key, are refused and named; the run
/// is left incomplete, and the snapshot it signs holds neither.
#[tokio::test]
async fn the_merge_signs_only_shard_manifests_bound_to_their_slice() {
    use support::trust::{plant_unsigned, signed_backup};
    let (backup, _) = signed_backup("sharded-trust", false).await;
    let (moto, engine) = (&backup.moto, &backup.engine);
    let planned = plan_by_event(engine).await;
    let items = shard_items(moto, &planned).await;
    assert!(items.len() >= 3, "{items:?}");
    for item in &items {
        run_shard(engine, item).await.unwrap();
    }
    let folder = format!("p/_manifests/shards/{}", planned.run_id);
    let shard_key = |n: u32| format!("{folder}/shard-{n:05}.json");

    // Shard 1's manifest, replaced by an unsigned one of the same records.
    let real: s3_kms_sync::manifest::Manifest =
        serde_json::from_slice(&get_bytes(&moto.s3(), backup.bucket, &shard_key(1)).await).unwrap();
    plant_unsigned(&backup, &shard_key(1), &real).await;
    // Shard 2's key holding shard 0's signed manifest, signature and all.
    moto.s3()
        .copy_object()
        .bucket(backup.bucket)
        .key(shard_key(2))
        .copy_source(format!("{}/{}", backup.bucket, shard_key(0)))
        .send()
        .await
        .unwrap();

    let merged = merge(engine, &planned.run_id).await;
    assert_eq!(merged.status, RunStatus::Partial, "{merged:?}");
    let message = merged.message.clone().unwrap_or_default();
    assert!(message.contains("shard 1: not signed"), "{message}");
    assert!(message.contains("shard 2: its record of"), "{message}");
    let manifest = manifest_of(&merged);
    assert!(!manifest.complete);
    let keys = stored_paths(engine, &merged).await;
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(keys.len(), unique.len(), "no record taken twice: {keys:?}");
}

/// Moves every object under `from` to the same key under `to`.
async fn move_objects(moto: &Moto, keys: &[String], from: &str, to: &str) {
    let s3 = moto.s3();
    for key in keys {
        let moved = format!("{to}{}", key.strip_prefix(from).unwrap());
        s3.copy_object()
            .bucket(BUCKET)
            .key(&moved)
            .copy_source(format!("{BUCKET}/{key}"))
            .send()
            .await
            .unwrap();
        s3.delete_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
    }
}

/// A merge of paged shards joins their trees without reading a page: with
/// every page out of reach (in S3 and in the local cache), it still stores
/// a snapshot that, once the pages are back, holds every file once, says
/// what the shards did, and is the next run's index.
#[tokio::test]
async fn the_merge_joins_paged_shards_without_reading_a_page() {
    let backup = Backup::new(BUCKET, PREFIX, false).await;
    let (moto, engine, source) = (&backup.moto, &backup.engine, &backup.source);
    let generated: Vec<(String, Vec<u8>)> = (0..1_200)
        .map(|i| {
            (
                format!("g{}/f{i:04}.txt", i % 4),
                format!("{i}\n").into_bytes(),
            )
        })
        .collect();
    write_owned(source.path(), &generated);
    let total = (generated.len() + sample_files().len()) as u64;
    let planned = plan_by_event(engine).await;
    assert!(planned.shards >= 8, "{planned:?}");
    for item in &shard_items(moto, &planned).await {
        let summary = run_shard(engine, item).await.unwrap();
        assert!(summary.pages.is_some(), "a shard writes pages: {summary:?}");
    }

    let pages_folder = format!("{PREFIX}/_manifests/pages/");
    let pages: Vec<String> = list_keys(&moto.s3(), BUCKET)
        .await
        .into_iter()
        .filter(|key| key.starts_with(&pages_folder))
        .collect();
    // Cuts hash the absolute paths, so the count varies with the temporary
    // directory: about 1,209 / 32.
    assert!(pages.len() > 20, "{} pages", pages.len());
    move_objects(moto, &pages, &pages_folder, "aside/").await;
    for entry in std::fs::read_dir(backup.manifests.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("pages-")
        {
            std::fs::remove_dir_all(path).unwrap();
        }
    }
    let merged = merge(engine, &planned.run_id).await;
    assert_eq!(merged.status, RunStatus::Succeeded, "{merged:?}");
    assert_eq!((merged.uploaded, merged.failed), (total, 0));
    let joined = merged.pages.expect("a paged snapshot");
    assert!(
        joined.nodes <= 3 * u64::from(planned.shards),
        "the merge wrote {} nodes for {} shards",
        joined.nodes,
        planned.shards
    );

    let aside: Vec<String> = pages
        .iter()
        .map(|k| k.replace(&pages_folder, "aside/"))
        .collect();
    move_objects(moto, &aside, "aside/", &pages_folder).await;
    let mut keys = stored_paths(engine, &merged).await;
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len() as u64, total, "every file once");

    // The next plan cuts along that snapshot's index, reading no record:
    // the snapshot object and index nodes. Of the nodes stored, the pages of
    // records are most (some 38 of 1,209 files, against an index node per
    // shard and level, the joined roots raised to the highest level).
    let options = PlanOptions {
        shard_files: 300,
        lock_ttl: Duration::from_secs(600),
    };
    let asked = engine.store.requests();
    let config = &engine.config;
    let counted = plan::run(&engine.store, PREFIX, &config.command, &options)
        .await
        .unwrap();
    let gets = engine.store.requests_since(&asked)["GetObject"];
    let stored_nodes = pages.len() as u64;
    assert!(
        gets <= 1 + stored_nodes / 2,
        "{gets} GETs to plan, of {stored_nodes} nodes stored"
    );
    assert!((4..=6).contains(&counted.shards), "{counted:?}");
    for item in &shard_items(moto, &counted).await {
        run_shard(engine, item).await.unwrap();
    }
    let second = merge(engine, &counted.run_id).await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!((second.uploaded, second.skipped), (0, total), "{second:?}");
}
