//! `sync`: back the source directory up. Walk it, load what is already
//! known, decide and upload each file with bounded concurrency, then write
//! the manifest locally and to S3, all under the prefix's lease.

pub(in crate::commands::sync) mod backup;
mod budget;
mod decide;
mod fetch;
mod file;
mod index;
mod listing;
mod load;
pub mod options;
mod prior;
mod rekey;
pub mod request;
pub(crate) mod resume;
mod scope;
pub mod sharded;
mod sorted;
mod upload;

use std::time::Instant;

use tracing::{Instrument, info, info_span, warn};

use crate::error::Result;
use crate::manifest::publish::{Contents, publish};
use crate::manifest::{self, Summary};
use crate::run::{self, RunContext, RunOptions};
use crate::store::Store;
use backup::Backup;
pub use options::{SyncArgs, SyncOptions};
pub use request::SyncRequest;
pub use scope::Scope;

/// Runs one sync to the end, starting no file after `stop_at`; files not
/// reached by then are counted, and the manifest says the run is
/// incomplete. Per-file failures are in the summary and the manifest; `Err`
/// means the run could not start.
pub async fn run(
    store: &Store,
    prefix: &str,
    options: &RunOptions,
    sync: &SyncOptions,
    request: &SyncRequest,
    stop_at: Option<Instant>,
) -> Result<Summary> {
    let scope = sync.scope(prefix, request)?;
    let store = &store.caching_pages(&options.manifest_dir, prefix);
    if let Some(shard) = &scope.shard {
        return sharded::shard::run(store, prefix, options, sync, &scope, shard, stop_at).await;
    }
    let run = RunContext::start(stop_at);
    let span =
        info_span!("run", run_id = %run.id, bucket = %store.bucket(), prefix = %scope.key_prefix);
    let work = async {
        let backup = Backup {
            store,
            prefix,
            options,
            sync,
            scope: &scope,
            run: &run,
        };
        let (manifest, records) = backup.run(None).await?;
        let name = manifest
            .scope_fields()
            .name(run.started, &run.id, scope.narrowed);
        let kind = match scope.narrowed {
            true => manifest::Kind::Narrowed,
            false => manifest::Kind::Full,
        };
        let contents = Contents::Records(&records);
        let dir = &options.manifest_dir;
        // Boxed: the future is large, and a debug build's stack holds it.
        let published = Box::pin(publish(store, prefix, dir, manifest, contents, &name, kind));
        let mut summary = published.await;
        store.page_cache_trim();
        if summary.reencrypted > 0 && !summary.dry_run {
            rekey_manifests(store, &scope.key_prefix, &mut summary).await;
        }
        log_summary(&summary);
        Ok(summary)
    };
    if scope.dry_run {
        // A dry run writes nothing to S3, so it needs no lease.
        return work.instrument(span).await;
    }
    run::exclusively(store, prefix, options.lock_ttl, &run, work)
        .instrument(span)
        .await
}

/// A run that re-encrypted files found a key change: the older manifests
/// follow, so the prefix is compliant by its own audit once the run ends.
async fn rekey_manifests(store: &Store, key_prefix: &str, summary: &mut Summary) {
    match rekey::manifests(store, key_prefix).await {
        Ok(rekeyed) => {
            summary.manifests_reencrypted = rekeyed.reencrypted;
            if rekeyed.failed > 0 {
                summary.message = Some(format!(
                    "{} older manifests are still under another key: the next run after a key change, or `audit --fix copy`, re-encrypts them",
                    rekeyed.failed
                ));
            }
        }
        Err(err) => {
            warn!(error = %err, "older manifests not re-encrypted");
            summary.message = Some(format!(
                "older manifests were not re-encrypted ({err}): run `audit --fix copy` to bring them under the key"
            ));
        }
    }
}

fn log_summary(summary: &Summary) {
    info!(
        status = ?summary.status,
        uploaded = summary.uploaded,
        skipped = summary.skipped,
        failed = summary.failed,
        not_reached = summary.not_reached,
        would_upload = summary.would_upload,
        bytes_uploaded = summary.bytes_uploaded,
        duration_ms = summary.duration_ms,
        manifest = summary.manifest_s3_uri.as_deref().or(summary.manifest_local_path.as_deref()),
        "run finished"
    );
}
