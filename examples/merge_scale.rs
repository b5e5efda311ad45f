//! What the merge of a sharded run costs at scale: FILES records (10,000,000
//! by default) in SHARDS shards (100). The run is planned by the function's
//! own `plan` (a source of SHARDS empty top-level directories, so each shard
//! is one of them); each shard is simulated: its records are generated as a
//! backup writes them and published as a shard publishes, real pages and
//! all. The merge then runs as the function runs it, in a process of its
//! own, which reports its wall time, peak RSS and peak use of its manifest
//! directory (its `/tmp`).
//!
//! `merge_scale ENDPOINT [FILES] [SHARDS]`, ENDPOINT an S3 with bucket
//! `merge-scale` (examples/s3_standin.rs).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::config::retry::RetryConfig;
use lambda_runtime::{Context, LambdaEvent};
use s3_kms_sync::commands::sync::SyncArgs;
use s3_kms_sync::config::{Config, ConfigArgs};
use s3_kms_sync::lambda::handler::Output;
use s3_kms_sync::lambda::{Function, handle};
use s3_kms_sync::manifest::publish::publish_as;
use s3_kms_sync::manifest::spool::RecordSpool;
use s3_kms_sync::manifest::{self, FileRecord, FileStatus, Manifest, Summary, Tally};
use s3_kms_sync::run::Mode;
use serde_json::json;

const BUCKET: &str = "merge-scale";
const PREFIX: &str = "scale";
const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/standin";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--merge") {
        return merge_here(&args[2], &args[3], Path::new(&args[4]), Path::new(&args[5])).await;
    }
    let endpoint = args.get(1).expect("merge_scale ENDPOINT [FILES] [SHARDS]");
    let files: u64 = args.get(2).map_or(10_000_000, |a| a.parse().unwrap());
    let shards: u64 = args.get(3).map_or(100, |a| a.parse().unwrap());
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    for dir in 0..shards {
        std::fs::create_dir_all(source.join(format!("d{dir:03}"))).unwrap();
    }
    let setup_dir = work.path().join("setup-manifests");
    std::fs::create_dir_all(&setup_dir).unwrap();
    let function = function(endpoint, &source, &setup_dir);
    let run_id = plan(&function).await;

    let started = Instant::now();
    let per_shard = files / shards;
    let mut pages = 0;
    for dir in 0..shards {
        // Slice 0 lies before the first directory: it holds nothing.
        pages += simulate_shard(&function, &run_id, dir as u32 + 1, dir, per_shard).await;
    }
    pages += simulate_shard(&function, &run_id, 0, 0, 0).await;
    // The peer: what one shard pays to publish its slice's tree.
    let setup = started.elapsed().as_secs_f64();
    println!(
        "setup: {} records in {shards} shards, {pages} nodes, in {setup:.0} s: {:.2} s a shard",
        per_shard * shards,
        setup / shards as f64
    );

    // The merge in a process of its own, with an empty /tmp of its own.
    let merge_dir = work.path().join("merge-manifests");
    std::fs::create_dir_all(&merge_dir).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--merge", endpoint, &run_id])
        .arg(&source)
        .arg(&merge_dir)
        .status()
        .unwrap();
    assert!(status.success(), "the merge failed");
}

/// The function as deployed, on `endpoint`.
fn function(endpoint: &str, source: &Path, manifests: &Path) -> Function {
    // The function's defaults, as under Lambda, with this run's target.
    let mut args = ConfigArgs::<SyncArgs>::from_env().expect("the defaults parse");
    args.target.bucket = Some(BUCKET.into());
    args.target.prefix = Some(PREFIX.into());
    args.target.kms_key_id = Some(KEY.into());
    args.run.manifest_dir = Some(manifests.into());
    args.command.source_dir = Some(source.into());
    let config = Config::from_args(args, Mode::Lambda).expect("valid settings");
    let shared = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            Credentials::for_tests(),
        ))
        .build();
    let retry = RetryConfig::standard().with_max_attempts(5);
    let client = s3_kms_sync::store::s3_client_from(&shared, true, retry);
    Function::new(client, config)
}

async fn invoke(function: &Function, event: serde_json::Value) -> Output {
    Box::pin(handle(
        function,
        LambdaEvent::new(event, Context::default()),
    ))
    .await
    .expect("the invocation succeeds")
}

async fn plan(function: &Function) -> String {
    match invoke(function, json!({"command": "plan"})).await {
        Output::Plan(planned) => planned.run_id,
        other => panic!("plan returned {other:?}"),
    }
}

/// Shard `index` of the run, holding `count` files under directory `dir`,
/// published as a shard publishes its manifest; returns its tree's nodes.
async fn simulate_shard(
    function: &Function,
    run_id: &str,
    index: u32,
    dir: u64,
    count: u64,
) -> u64 {
    let config = &function.config;
    let source = config.command.source_dir.display().to_string();
    let manifests = config.run.manifest_dir.clone();
    let mut spool = RecordSpool::new(&manifests).unwrap();
    for i in 0..count {
        spool.push(&record(&source, dir, i)).unwrap();
    }
    let tally: Tally = spool.tally();
    let records = spool.sort().unwrap();
    let now = manifest::timestamp(chrono::Utc::now());
    let manifest = Manifest {
        run_id: run_id.to_owned(),
        started_at: now.clone(),
        finished_at: now,
        walked_dir: source.clone(),
        source_dir: source,
        bucket: BUCKET.into(),
        prefix: PREFIX.into(),
        kms_key_id: KEY.into(),
        include: Vec::new(),
        exclude: Vec::new(),
        dry_run: false,
        narrowed: false,
        event_include: Vec::new(),
        event_exclude: Vec::new(),
        complete: true,
        expected_files: Some(count),
        previous_manifest: None,
        resume_after: None,
        full_rehash: false,
        runs_since_full_rehash: 0,
        signing_key_id: None,
        format: manifest::paged::FORMAT,
        root: None,
        summary: Summary::of(run_id, false, tally, 0, 0),
        files: Vec::new(),
    };
    let key = format!("{PREFIX}/_manifests/shards/{run_id}/shard-{index:05}.json");
    let local = format!("shard-{index:05}.json");
    let store = function.store.caching_pages(&manifests, PREFIX);
    let summary = publish_as(&store, &manifests, manifest, &records, &key, &local).await;
    assert!(summary.manifest_s3_uri.is_some(), "{summary:?}");
    std::fs::remove_file(manifests.join(local)).unwrap();
    summary.pages.map_or(0, |p| p.nodes)
}

/// File `i` of directory `dir`, as a backup records it once uploaded.
fn record(source: &str, dir: u64, i: u64) -> FileRecord {
    let relative = format!("d{dir:03}/sub{:03}/file-{i:07}.dat", i / 1000);
    let path = PathBuf::from(format!("{source}/{relative}"));
    let mut record = FileRecord::new(&path, 40_000 + i % 100_000);
    record.s3_key = Some(format!("{PREFIX}/{relative}"));
    record.status = FileStatus::Uploaded;
    record.md5 = Some(format!("{:032x}", dir << 32 | i));
    record.version_id = Some(format!("{:016x}{:016x}", dir, i));
    record.kms_key_id = Some(KEY.into());
    record.bucket_key = Some(true);
    record.mtime_ns = Some(1_764_000_000_000_000_000 + (i * 7919) as i64);
    record.ctime_ns = record.mtime_ns;
    record.inode = Some(dir << 32 | i);
    record.mode = Some(0o100644);
    record.uid = Some(1000);
    record.gid = Some(1000);
    record
}

/// The merge, as the function runs it, with its figures.
async fn merge_here(endpoint: &str, run_id: &str, source: &Path, manifests: &Path) {
    let peak_dir = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peak, done, dir) = (
            Arc::clone(&peak_dir),
            Arc::clone(&done),
            manifests.to_owned(),
        );
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(dir_bytes(&dir), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let function = function(endpoint, source, manifests);
    let started = Instant::now();
    let output = invoke(&function, json!({"command": "merge", "run_id": run_id})).await;
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let summary = output.summary().expect("a run summary");
    assert!(summary.complete, "{summary:?}");
    let peak = peak_dir.load(Ordering::Relaxed).max(dir_bytes(manifests));
    println!(
        "merge: {} files ({:?}), {} nodes written, in {:.2} s, peak RSS {} MiB, peak manifest directory {} KiB",
        summary.uploaded,
        summary.status,
        summary.pages.map_or(0, |p| p.nodes),
        elapsed.as_secs_f64(),
        peak_rss_kib() / 1024,
        peak / 1024
    );
}

/// The bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| Some((entry.path(), entry.metadata().ok()?)))
        .map(|(path, meta)| match meta.is_dir() {
            true => dir_bytes(&path),
            false => meta.len(),
        })
        .sum()
}

/// This process's peak resident set, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
