//! `find GLOB`: every distinct content of every matching path, across the
//! prefix's snapshots: when it first and last appears, its size and MD5,
//! and the snapshot to restore it from. Each manifest is streamed; only
//! the matches are kept.

mod pages;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use globset::GlobMatcher;
use serde::Serialize;

use super::listing::path_glob;
use crate::config::Options;
use crate::error::Result;
use crate::manifest::catalog::{self, SnapshotLine};
use crate::manifest::paged::Reading;
use crate::manifest::stream::{Pinned, Records, StoredFile};
use crate::run::Mode;
use crate::store::Store;
use pages::PageMatches;

/// Manifests read at once.
const IN_FLIGHT: usize = 2;

/// The options of `find`, as given.
#[derive(Debug, Clone, Default, Args)]
pub struct FindArgs {
    /// Paths (relative to the backed-up directory) to look for, as a glob.
    pub glob: String,
}

/// The validated options of `find`.
#[derive(Debug, Clone)]
pub struct FindOptions {
    pub glob: GlobMatcher,
}

impl Options for FindOptions {
    type Args = FindArgs;
    type Run = crate::run::NoLockArgs;
    const WRITES: bool = false;

    fn from_args(args: FindArgs, _mode: Mode) -> Result<Self> {
        Ok(FindOptions {
            glob: path_glob(&args.glob)?,
        })
    }
}

/// A snapshot, as a found content names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotRef {
    pub time: DateTime<Utc>,
    pub run_id: String,
    pub manifest_s3_uri: String,
}

/// One content of one path, and the snapshots that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub path: String,
    pub md5: Option<String>,
    pub size: u64,
    pub first: SnapshotRef,
    pub last: SnapshotRef,
    /// How many snapshots hold it.
    pub snapshots: u64,
    /// The command line that brings this content back.
    pub restore: String,
}

/// What `find` found, path by path, oldest content first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FindReport {
    pub found: Vec<Found>,
    pub snapshots_read: u64,
    /// Snapshots not read: untrusted where a key is trusted.
    pub passed_over: Vec<String>,
}

/// Reads every snapshot of `prefix`, oldest first.
pub async fn run(store: &Store, prefix: &str, options: &FindOptions) -> Result<FindReport> {
    let lines = catalog::snapshots(store, prefix).await?;
    let (readable, untrusted): (Vec<SnapshotLine>, Vec<SnapshotLine>) =
        lines.into_iter().partition(SnapshotLine::trusted);
    let glob = &options.glob;
    let pages = &PageMatches::default();
    let mut matches = futures::stream::iter(readable)
        .map(|line| async move { matches_in(store, line, glob, pages).await })
        .buffered(IN_FLIGHT);
    let mut by_content: BTreeMap<(String, Option<String>), Found> = BTreeMap::new();
    let mut report = FindReport::default();
    while let Some((snapshot, files)) = matches.try_next().await? {
        report.snapshots_read += 1;
        for StoredFile { path, size, md5 } in files {
            by_content
                .entry((path.clone(), md5.clone()))
                .and_modify(|found| {
                    found.last = snapshot.clone();
                    found.snapshots += 1;
                })
                .or_insert_with(|| Found {
                    path,
                    md5,
                    size,
                    first: snapshot.clone(),
                    last: snapshot.clone(),
                    snapshots: 1,
                    restore: String::new(),
                });
        }
    }
    report.found = by_content.into_values().collect();
    report
        .found
        .sort_by(|a, b| (&a.path, a.first.time).cmp(&(&b.path, b.first.time)));
    for found in &mut report.found {
        found.restore = format!(
            "s3-kms-sync restore --manifest {} --include '{}' --target DIR",
            found.last.manifest_s3_uri, found.path
        );
    }
    report.passed_over = untrusted.into_iter().map(|l| l.manifest_s3_uri).collect();
    Ok(report)
}

/// The stored files of one snapshot that `glob` matches; of a paged one,
/// from its pages, each read once across all snapshots.
async fn matches_in(
    store: &Store,
    line: SnapshotLine,
    glob: &GlobMatcher,
    pages: &PageMatches,
) -> Result<(SnapshotRef, Vec<StoredFile>)> {
    // Judged by the catalog: read again from the version it judged.
    let pinned = Pinned {
        sha256: line.sha256.clone().filter(|_| store.trust().enforced()),
        ..line.pinned()
    };
    let header = crate::manifest::header_of(store, &line.key).await?;
    let files = match header.paged_root() {
        Some(_) => pages.in_snapshot(store, &line.key, &pinned, glob).await?,
        None => {
            let mut records =
                Records::open_at(store, &line.key, (header, pinned), &Reading::default()).await?;
            let mut files = Vec::new();
            while let Some(file) = records.next_stored_file().await? {
                if glob.is_match(&file.path) {
                    files.push(file);
                }
            }
            files
        }
    };
    let snapshot = SnapshotRef {
        time: line.time,
        run_id: line.run_id,
        manifest_s3_uri: line.manifest_s3_uri,
    };
    Ok((snapshot, files))
}

/// The report as lines for a person.
pub fn table(report: &FindReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for found in &report.found {
        let _ = writeln!(
            out,
            "{}  {}  {:>10}  {} .. {}  ({} snapshots)\n    {}",
            found.path,
            found.md5.as_deref().unwrap_or("-"),
            super::listing::human_bytes(found.size),
            found.first.time.format("%Y-%m-%d %H:%M"),
            found.last.time.format("%Y-%m-%d %H:%M"),
            found.snapshots,
            found.restore
        );
    }
    let _ = writeln!(
        out,
        "{} contents in {} snapshots",
        report.found.len(),
        report.snapshots_read
    );
    out
}
