//! What `forget --prune` costs at scale: a tree of N files (1,000,000 by
//! default), 30 daily snapshots, 1% of the files changed each day. Each
//! snapshot's manifest is generated as the writer would write it (the real
//! record type, serialised the same way) and streamed straight into the
//! reader prune uses, so no 15 GB of manifests touch the disk. Prints the
//! manifest bytes per file, parse time, the reference set's size and peak
//! memory, against a peer in the same run: the same bytes hashed with
//! SHA-256 (the floor any reader of them pays).
//!
//! `cargo run --release --example retention_scale [FILES] [SNAPSHOTS]`
//!
//! With `--paged ENDPOINT` (an S3 with bucket `example-backups`,
//! examples/s3_standin.rs) it publishes the same snapshots paged instead,
//! pages and all, and measures what prune's references read of them: the
//! bytes and GETs the stand-in served, and the time, against the bytes of
//! one snapshot's tree.

use std::io::{Read, Write};
use std::time::Instant;

use s3_kms_sync::commands::forget::References;
use s3_kms_sync::manifest::{FileRecord, FileStatus};

const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// A file's record in snapshot `day`, with the version its last change made.
fn record(i: u64, day: u64) -> FileRecord {
    let path = format!(
        "/mnt/data/projects/p{:03}/dir{:03}/file-{i:07}.dat",
        i % 997,
        i / 1000 % 1000
    );
    let mut record = FileRecord::new(std::path::Path::new(&path), 40_000 + i % 100_000);
    let key = format!("backups{}", &path["/mnt/data".len()..]);
    // 1% of files change each day: file i on the day d ≡ -79·(i mod 100) (mod 100).
    let changed = (100 - i % 100) * 79 % 100;
    let version = if (1..=day).contains(&changed) {
        changed
    } else {
        0
    };
    record.s3_uri = Some(format!("s3://example-backups/{key}"));
    record.s3_key = Some(key);
    record.status = if version == day {
        FileStatus::Uploaded
    } else {
        FileStatus::Skipped
    };
    record.reason = Some("unchanged: same size, times and inode".into());
    record.md5 = Some(format!("{:032x}", i * 31 + version));
    record.etag = Some(format!("\"{:032x}\"", i * 17 + version));
    record.version_id = Some(format!("{:016x}{:016x}", i, version));
    record.kms_key_id = Some(KEY.into());
    record.bucket_key = Some(true);
    record.mtime_ns = Some(1_764_000_000_000_000_000 + (i * 7919) as i64);
    record.ctime_ns = record.mtime_ns;
    record.inode = Some(1_000_000 + i);
    record.mode = Some(0o100644);
    record.uid = Some(1000);
    record.gid = Some(1000);
    record
}

/// A manifest's JSON, generated as it is read: header, then records.
struct Generated {
    files: u64,
    day: u64,
    next: u64,
    buffer: Vec<u8>,
    at: usize,
    done: bool,
}

impl Generated {
    fn new(files: u64, day: u64) -> Self {
        let header = format!(
            "{{\"run_id\":\"run-{day}\",\"started_at\":\"2026-11-{day:02}T02:00:00.000Z\",\"bucket\":\"example-backups\",\"prefix\":\"backups\",\"source_dir\":\"/mnt/data\",\"complete\":true,\"files\":["
        );
        Generated {
            files,
            day,
            next: 0,
            buffer: header.into_bytes(),
            at: 0,
            done: false,
        }
    }

    fn refill(&mut self) {
        self.buffer.clear();
        self.at = 0;
        for _ in 0..1024 {
            if self.next == self.files {
                self.buffer.extend_from_slice(b"]}");
                self.done = true;
                return;
            }
            if self.next > 0 {
                self.buffer.push(b',');
            }
            serde_json::to_writer(&mut self.buffer, &record(self.next, self.day)).unwrap();
            self.next += 1;
        }
    }
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buffer.len() {
            if self.done {
                return Ok(0);
            }
            self.refill();
        }
        let n = out.len().min(self.buffer.len() - self.at);
        out[..n].copy_from_slice(&self.buffer[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Peak and current resident memory, in MiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--paged") {
        let endpoint = args.get(at + 1).expect("--paged ENDPOINT").clone();
        let mut rest = args[..at].iter().chain(&args[at + 2..]);
        let files = rest.next().map_or(1_000_000, |a| a.parse().unwrap());
        let snapshots = rest.next().map_or(30, |a| a.parse().unwrap());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        return runtime.block_on(paged::measure(&endpoint, files, snapshots));
    }
    let mut args = args.into_iter();
    let files: u64 = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let snapshots: u64 = args.next().map_or(30, |a| a.parse().unwrap());
    let (_, rss_before) = memory();

    // The peer: the bytes of one manifest, generated and hashed only.
    let clock = Instant::now();
    let mut hasher = s3_kms_sync::local::hash::Sha256Stream::default();
    let mut bytes = 0u64;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut generated = Generated::new(files, snapshots);
    let mut chunk = vec![0; 1 << 16];
    loop {
        let n = generated.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&chunk[..n]);
        gzip.write_all(&chunk[..n]).unwrap();
    }
    let _ = hasher.finish_hex();
    let gzipped = gzip.finish().unwrap().len() as u64;
    let peer_secs = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    let mut references = References::default();
    for day in 1..=snapshots {
        references.read_local(Generated::new(files, day)).unwrap();
    }
    let read_secs = clock.elapsed().as_secs_f64();
    let (peak, rss_after) = memory();

    // What the sweep asks of the set: one lookup per listed version.
    let clock = Instant::now();
    let mut held = 0u64;
    for i in 0..files {
        let last = record(i, snapshots);
        let key = last.s3_key.unwrap_or_default();
        for version in [
            last.version_id.unwrap_or_default(),
            format!("{i:016x}{:016x}", 999),
        ] {
            held += u64::from(references.holds(&key, &version));
        }
    }
    let lookup_secs = clock.elapsed().as_secs_f64();

    let versions = references.versions() as u64;
    println!("files {files}, snapshots {snapshots}, 1% changed per day");
    println!(
        "manifest: {bytes} bytes, {:.0} B per file; gzip (fast) {:.0} B per file ({:.1}x smaller)",
        bytes as f64 / files as f64,
        gzipped as f64 / files as f64,
        bytes as f64 / gzipped as f64
    );
    println!(
        "prune reads {} manifests: {:.1} GB in {read_secs:.1} s ({:.0} MB/s); the peer (generate + SHA-256 + gzip one manifest) {peer_secs:.1} s per manifest: ratio {:.2} per manifest",
        snapshots,
        (bytes * snapshots) as f64 / 1e9,
        (bytes * snapshots) as f64 / 1e6 / read_secs,
        read_secs / snapshots as f64 / peer_secs
    );
    println!(
        "references: {versions} distinct versions (expected {}: a file changed on day 1 was never referenced at its first version), {} records read; resident memory {rss_before} -> {rss_after} MiB, peak {peak} MiB",
        files + files * (snapshots.min(100) - 1) / 100,
        references.records
    );
    println!(
        "sweep lookups: {} in {lookup_secs:.2} s ({held} held: each file's newest version, no unknown one); ListObjectVersions pages at 1,000 versions: {}",
        files * 2,
        versions.div_ceil(1000)
    );
}

/// The same history as paged snapshots, and what prune reads of it.
mod paged {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    use aws_config::{BehaviorVersion, Region, SdkConfig};
    use aws_sdk_s3::config::retry::RetryConfig;
    use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
    use chrono::{TimeZone, Utc};
    use s3_kms_sync::commands::forget::References;
    use s3_kms_sync::manifest::publish::publish_as;
    use s3_kms_sync::manifest::spool::RecordSpool;
    use s3_kms_sync::manifest::{self, Manifest, NameScope, Summary, catalog};
    use s3_kms_sync::store::{Store, keys};
    use serde_json::json;

    const BUCKET: &str = "example-backups";
    const PREFIX: &str = "backups";

    pub async fn measure(endpoint: &str, files: u64, snapshots: u64) {
        let store = store(endpoint).await;
        let work = tempfile::tempdir().unwrap();
        let clock = Instant::now();
        let mut tree_bytes = 0;
        for day in 1..=snapshots {
            let sent = publish(&store, work.path(), files, day).await;
            if day == 1 {
                tree_bytes = sent;
            }
        }
        let setup_secs = clock.elapsed().as_secs_f64();

        let served = stats(endpoint);
        let clock = Instant::now();
        let lines = catalog::snapshots(&store, PREFIX).await.unwrap();
        let references = References::of(&store, &lines).await.unwrap();
        let read_secs = clock.elapsed().as_secs_f64();
        let after = stats(endpoint);
        let read = after.1 - served.1;
        println!(
            "files {files}, snapshots {snapshots}, 1% changed per day, paged (setup {setup_secs:.0} s)"
        );
        println!(
            "one snapshot's tree: {tree_bytes} bytes; prune reads {} manifests ({} records, {} distinct nodes): {read} bytes in {} requests, {read_secs:.1} s: {:.2}x one snapshot's tree",
            references.manifests,
            references.records,
            references.nodes,
            after.0 - served.0,
            read as f64 / tree_bytes as f64
        );
    }

    async fn store(endpoint: &str) -> Store {
        let shared = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::for_tests()))
            .build();
        let retry = RetryConfig::standard().with_max_attempts(5);
        let client = s3_kms_sync::store::s3_client_from(&shared, true, retry);
        // The bucket may be there already (the benchmark creates it).
        let _ = client.create_bucket().bucket(BUCKET).send().await;
        Store::new(client, BUCKET, super::KEY)
    }

    /// Day `day`'s snapshot, published paged; the bytes of the nodes it sent.
    async fn publish(store: &Store, dir: &std::path::Path, files: u64, day: u64) -> u64 {
        let mut spool = RecordSpool::new(dir).unwrap();
        for i in 0..files {
            spool.push(&super::record(i, day)).unwrap();
        }
        let tally = spool.tally();
        let records = spool.sort().unwrap();
        let run_id = format!("run-{day:02}");
        let started = Utc.with_ymd_and_hms(2026, 11, day as u32, 2, 0, 0).unwrap();
        let at = manifest::timestamp(started);
        let manifest: Manifest = serde_json::from_value(json!({
            "run_id": run_id, "started_at": at, "finished_at": at,
            "source_dir": "/mnt/data", "walked_dir": "/mnt/data",
            "bucket": BUCKET, "prefix": PREFIX, "kms_key_id": super::KEY,
            "dry_run": false, "complete": true, "expected_files": files,
            "format": manifest::paged::FORMAT,
            "summary": Summary::of(&run_id, false, tally, 0, 0),
        }))
        .unwrap();
        let name = manifest::file_name(started, &run_id, NameScope::Whole);
        let key = keys::manifest_key(PREFIX, &name);
        let pages = store.caching_pages(dir, PREFIX);
        let summary = publish_as(&pages, dir, manifest, &records, &key, &name).await;
        assert!(summary.manifest_s3_uri.is_some(), "{summary:?}");
        let _ = std::fs::remove_file(dir.join(&name));
        let _ = std::fs::remove_file(dir.join(format!("{name}.gz")));
        summary.pages.map_or(0, |p| p.bytes_sent)
    }

    /// The stand-in's requests and object bytes sent so far.
    fn stats(endpoint: &str) -> (u64, u64) {
        let address = endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET /_standin/stats HTTP/1.0\r\nHost: {address}\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let stats: serde_json::Value = serde_json::from_str(body).unwrap();
        (
            stats["requests"].as_u64().unwrap(),
            stats["sent"].as_u64().unwrap(),
        )
    }
}
