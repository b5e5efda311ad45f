//! `plan`: the first step of a sharded run. It takes the prefix's lock for
//! the whole run, picks the newest full manifest as every shard's index,
//! cuts the tree into slices of about `shard_files` files by that
//! manifest's keys (by top-level directory when there is none), and stores
//! the plan and the shard list for the Distributed Map to read.

use std::path::Path;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::write_document;
use crate::commands::sync::SyncOptions;
use crate::commands::sync::fetch::{fetch_manifest, newest_link};
use crate::commands::sync::load::{list_manifests, rehash_due};
use crate::config::Options;
use crate::error::{Error, Result};
use crate::local::range::PathRange;
use crate::manifest::paged::{self, Listed, Reading};
use crate::manifest::read::Header;
use crate::manifest::timestamp;
use crate::manifest::trusted::refusal;
use crate::run::hold::take;
use crate::run::lease::{self, Acquired, Lease};
use crate::run::shard::{self, Plan, Shard};
use crate::run::{Mode, RunContext};
use crate::store::{Store, keys};

/// The options of `plan`, as given in the environment.
#[derive(Debug, Clone, Default, Args)]
pub struct PlanArgs {
    /// Files a shard of a sharded run is cut to hold, by the last manifest's counts.
    #[arg(long, env = "SYNC_SHARD_FILES", default_value_t = 100_000)]
    pub shard_files: u64,
    /// How long a sharded run holds the lock: at least as long as its state
    /// machine may run, since no step renews it.
    #[arg(long, env = "SYNC_SHARDED_LOCK_TTL_SECS", default_value_t = 6 * 3600)]
    pub sharded_lock_ttl_secs: u64,
}

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub shard_files: u64,
    pub lock_ttl: Duration,
}

impl Options for PlanOptions {
    type Args = PlanArgs;
    type Run = crate::run::RunArgs;

    fn from_args(args: PlanArgs, _mode: Mode) -> Result<Self> {
        if args.shard_files == 0 {
            return Err(Error::Config(
                "shard files must be at least 1: set SYNC_SHARD_FILES or pass --shard-files".into(),
            ));
        }
        if args.sharded_lock_ttl_secs < 60 {
            return Err(Error::Config(
                "a sharded run's lock must live at least 60 seconds: set SYNC_SHARDED_LOCK_TTL_SECS or pass --sharded-lock-ttl-secs".into(),
            ));
        }
        Ok(PlanOptions {
            shard_files: args.shard_files,
            lock_ttl: Duration::from_secs(args.sharded_lock_ttl_secs),
        })
    }
}

/// What an invocation may ask of `plan`: nothing yet but the command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Planned,
    /// Another run holds the lock: nothing to shard.
    Skipped,
}

/// What `plan` returns: where the Distributed Map finds the shard list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanOutput {
    pub run_id: String,
    pub status: PlanStatus,
    pub bucket: String,
    pub shard_list_key: Option<String>,
    pub shards: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Shards cut by top-level directory, when no manifest can count files.
const MAX_UNCOUNTED_SHARDS: usize = 1_000;

pub async fn run(
    store: &Store,
    prefix: &str,
    sync: &SyncOptions,
    options: &PlanOptions,
) -> Result<PlanOutput> {
    let run = RunContext::start(None);
    let lease = match take(store, prefix, &run.id, options.lock_ttl).await? {
        Acquired::Held(lease) => lease,
        Acquired::Busy(holder) => {
            info!(holder = %holder.run_id, "another run holds the lock; nothing planned");
            return Ok(PlanOutput {
                run_id: run.id,
                status: PlanStatus::Skipped,
                bucket: store.bucket().to_owned(),
                shard_list_key: None,
                shards: 0,
                message: Some(format!(
                    "skipped: another run holds the lock ({} until {})",
                    holder.run_id,
                    timestamp(holder.expires_at)
                )),
            });
        }
    };
    match plan_under(store, prefix, sync, options, &run, &lease).await {
        Ok(output) => Ok(output),
        Err(err) => {
            if let Err(release) = lease::release(store, &lease).await {
                warn!(error = %release, "could not release the lock; it expires by itself");
            }
            Err(err)
        }
    }
}

async fn plan_under(
    store: &Store,
    prefix: &str,
    sync: &SyncOptions,
    options: &PlanOptions,
    run: &RunContext,
    lease: &Lease,
) -> Result<PlanOutput> {
    let folder = keys::manifest_key(prefix, "");
    let manifests = list_manifests(store, &folder, sync.filter.scope_tag()).await?;
    // The newest full manifest that passes judgement, as an unsharded run
    // takes its index: the shards take it up again, and judge it again.
    let mut sampled = None;
    for key in manifests.full_newest_first() {
        sampled = sample(store, key, prefix, options.shard_files).await;
        if sampled.is_some() {
            break;
        }
    }
    let (cuts, index) = match sampled {
        Some(mut sampled) => (std::mem::take(&mut sampled.cuts), Some(sampled)),
        None => (top_level_cuts(&sync.source_dir)?, None),
    };
    let header = index.as_ref().map(|i| &i.header);
    let (full_rehash, runs_since_full_rehash) = rehash_due(sync.rehash_every, header, false);
    let digests: Vec<_> = index
        .iter()
        .map(|i| (i.key.clone(), i.sha256.clone()))
        .collect();
    let previous = newest_link(store, prefix, manifests.newest_first(), &digests).await;
    let shards = slices(&run.id, &cuts);
    let plan = Plan {
        run_id: run.id.clone(),
        started_at: run.started,
        shards: shards.len() as u32,
        lease: lease.clone(),
        index_manifest: index.as_ref().map(|i| i.key.clone()),
        previous_manifest: previous,
        expected_files: (index.as_ref()).and_then(|i| i.header.expected_if_complete(i.records)),
        full_rehash,
        runs_since_full_rehash,
    };
    let list_key = shard::list_key(prefix, &run.id);
    write_document(store, &shard::plan_key(prefix, &run.id), &plan).await?;
    write_document(store, &list_key, &shards).await?;
    info!(run_id = %run.id, shards = shards.len(), index = ?plan.index_manifest, "planned");
    Ok(PlanOutput {
        run_id: run.id.clone(),
        status: PlanStatus::Planned,
        bucket: store.bucket().to_owned(),
        shard_list_key: Some(list_key),
        shards: plan.shards,
        message: None,
    })
}

/// Consecutive slices between the cuts: the first from the start of the
/// tree, the last to its end, so together they hold every path once.
fn slices(run_id: &str, cuts: &[String]) -> Vec<Shard> {
    let bounds: Vec<Option<&String>> = std::iter::once(None)
        .chain(cuts.iter().map(Some))
        .chain(std::iter::once(None))
        .collect();
    bounds
        .windows(2)
        .enumerate()
        .map(|(index, pair)| Shard {
            run_id: run_id.to_owned(),
            index: index as u32,
            range: PathRange {
                after: pair[0].cloned(),
                until: pair[1].cloned(),
            },
        })
        .collect()
}

/// The manifest a sharded run indexes by, and the cuts its keys give.
struct Sampled {
    key: String,
    sha256: String,
    header: Header,
    records: u64,
    cuts: Vec<String>,
}

/// Reads the manifest as it streams in, keeping every `every`-th path.
#[derive(Default)]
struct Sampler {
    folder: String,
    every: u64,
    seen: u64,
    cuts: Vec<String>,
}

#[derive(Deserialize)]
struct KeyOnly {
    s3_key: Option<String>,
}

impl Sampler {
    /// Counts files only: directories and links have no key to cut at.
    fn add(&mut self, record: KeyOnly) {
        let Some(key) = record.s3_key else { return };
        self.seen += 1;
        if !self.seen.is_multiple_of(self.every) {
            return;
        }
        if let Some(relative) = key.strip_prefix(&self.folder) {
            self.cuts.push(relative.to_owned());
        }
    }
}

/// Cuts from the newest full manifest; `None` when it cannot be read or is
/// another bucket's or prefix's (the plan then cuts by directory). A paged
/// snapshot is cut along its index, no record read; one of the first
/// format is sampled record by record as it streams in.
async fn sample(store: &Store, key: &str, prefix: &str, every: u64) -> Option<Sampled> {
    let sampler = Sampler {
        folder: keys::folder_of(prefix),
        every,
        ..Sampler::default()
    };
    // A paged snapshot's object alone; a first-format document whole.
    let reading = Reading::header_only();
    let parsed = match fetch_manifest(store, key, &reading, (sampler, Sampler::add)).await {
        Ok(parsed) => parsed?,
        Err(err) => {
            warn!(key, error = %err, "last manifest unreadable or corrupt; cutting by top-level directory");
            return None;
        }
    };
    if !parsed.header.describes(store.bucket(), prefix) || parsed.header.dry_run {
        return None;
    }
    match refusal(store, prefix, key, &parsed).await {
        Ok(None) => {}
        Ok(Some(reason)) => {
            warn!(key, reason, "manifest not taken as the plan's index");
            return None;
        }
        Err(err) => {
            warn!(key, error = %err, "manifest not taken as the plan's index");
            return None;
        }
    }
    let (cuts, records) = match parsed.header.paged_root() {
        Some(root) => match index_cuts(store, key, &parsed.header, every).await {
            Ok(cuts) => (cuts, root.span.as_ref().map_or(root.records, |s| s.files)),
            Err(err) => {
                warn!(key, error = %err, "the last snapshot's index unreadable; cutting by top-level directory");
                return None;
            }
        },
        // Manifests list files in path order, not key order: sort the cuts.
        None => {
            let mut cuts = parsed.state.cuts;
            cuts.sort_unstable();
            cuts.dedup();
            (cuts, parsed.state.seen)
        }
    };
    Some(Sampled {
        key: key.to_owned(),
        sha256: parsed.sha256,
        header: parsed.header,
        records,
        cuts,
    })
}

/// Cuts along a paged snapshot's index: after about `every` stored files,
/// at the first path of the next node. Only a page that holds more than a
/// slice (slices smaller than pages, or a snapshot of one page) is read, to
/// cut inside it.
async fn index_cuts(store: &Store, key: &str, header: &Header, every: u64) -> Result<Vec<String>> {
    let Some(root) = header.paged_root() else {
        return Ok(Vec::new());
    };
    let source = format!("{}/", header.source_dir.trim_end_matches('/'));
    // A root of level 0 is the one page: its records are all there is.
    let one_page = root.level == 0;
    let nodes = match one_page {
        true => vec![Listed {
            first: String::new(),
            files: 0,
            page: Some(root.sha256.clone()),
        }],
        false => paged::coarse_index(store, key, root, every).await?,
    };
    let mut spans = Vec::new();
    for node in nodes {
        match &node.page {
            Some(page) if one_page || node.files > every => {
                let records: Vec<KeyOnlyPath> =
                    paged::page_records(store, key, page, &header.bucket).await?;
                let files = records.into_iter().filter(|r| r.s3_key.is_some());
                spans.extend(files.map(|r| (r.local_path, 1)));
            }
            _ => spans.push((node.first, node.files)),
        }
    }
    Ok(cuts_every(spans.into_iter(), every, &source))
}

/// A record's path, and whether it is a stored file.
#[derive(Deserialize)]
struct KeyOnlyPath {
    local_path: String,
    s3_key: Option<String>,
}

/// A cut at the start of each node (path, files) that would take its slice
/// past `every` files, as a path relative to `source`: slices of at most
/// `every`, but for a node larger than that alone.
fn cuts_every(nodes: impl Iterator<Item = (String, u64)>, every: u64, source: &str) -> Vec<String> {
    let mut cuts = Vec::new();
    let mut filled = 0;
    for (first, files) in nodes {
        if filled > 0
            && filled + files > every
            && let Some(relative) = first.strip_prefix(source)
        {
            cuts.push(relative.to_owned());
            filled = 0;
        }
        filled += files;
    }
    cuts
}

/// With no manifest to count by: a slice per top-level directory (each cut
/// at a directory's name, so its contents fall in the next slice), grouped
/// so that there are at most [`MAX_UNCOUNTED_SHARDS`].
fn top_level_cuts(source: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(source).map_err(|err| Error::io("read", source, err))?;
    let mut dirs: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    dirs.sort_unstable();
    let step = dirs.len().div_ceil(MAX_UNCOUNTED_SHARDS).max(1);
    Ok(dirs.into_iter().step_by(step).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn cuts_keep_each_slice_within_its_files() {
        let nodes = |sizes: &[u64]| {
            let named = sizes.iter().enumerate();
            named
                .map(|(i, n)| (format!("/s/n{i}"), *n))
                .collect::<Vec<_>>()
        };
        let cuts = cuts_every(nodes(&[3, 3, 3, 1, 5]).into_iter(), 4, "/s/");
        assert_eq!(cuts, ["n1", "n2", "n4"], "3 | 3 | 3+1 | 5");
        let cuts = cuts_every(nodes(&[1; 9]).into_iter(), 4, "/s/");
        assert_eq!(cuts, ["n4", "n8"]);
        assert!(cuts_every(nodes(&[2, 2]).into_iter(), 4, "/s/").is_empty());
    }

    #[test]
    fn slices_between_cuts_hold_every_path_once() {
        let cuts = vec!["a".to_owned(), "b/m".to_owned()];
        let shards = slices("r", &cuts);
        assert_eq!(shards.len(), 3);
        for path in ["0", "a", "a.txt", "a/x", "b/a", "b/m", "b/n", "z"] {
            let holders: Vec<_> = shards
                .iter()
                .filter(|s| s.range.holds(Path::new(path)))
                .map(|s| s.index)
                .collect();
            assert_eq!(holders.len(), 1, "{path} is held by {holders:?}");
        }
        assert_eq!(slices("r", &[]).len(), 1, "no cut: one slice of everything");
        assert_eq!(slices("r", &[])[0].range, PathRange::default());
    }

    #[test]
    fn without_counts_each_top_level_directory_gets_a_slice() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b", "a", "c"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        std::fs::write(dir.path().join("top.txt"), b"x").unwrap();
        let cuts = top_level_cuts(dir.path()).unwrap();
        assert_eq!(cuts, ["a", "b", "c"]);
        let shards = slices("r", &cuts);
        let holder = |path: &str| {
            shards
                .iter()
                .position(|s| s.range.holds(Path::new(path)))
                .unwrap()
        };
        assert_eq!(holder("a/1"), 1);
        assert_eq!(holder("b/1"), 2);
        assert_eq!(holder("c/1"), 3);
        assert_ne!(holder("a/1"), holder("b/1"));
    }
}
