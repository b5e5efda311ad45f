//! One shard of a sharded run: its slice of the source backed up as any
//! run would back it up, while the run's plan holds the lock, into a shard
//! manifest that the merge reads.

use std::time::Instant;

use tracing::{Instrument, info_span, warn};

use super::read_document;
use crate::commands::sync::backup::Backup;
use crate::commands::sync::{Scope, SyncOptions};
use crate::error::{Error, Result};
use crate::manifest::Summary;
use crate::manifest::publish::publish_as;
use crate::run::shard::{self, Plan, Shard};
use crate::run::{RunContext, RunOptions, lease};
use crate::store::Store;

pub async fn run(
    store: &Store,
    prefix: &str,
    options: &RunOptions,
    sync: &SyncOptions,
    scope: &Scope,
    shard: &Shard,
    stop_at: Option<Instant>,
) -> Result<Summary> {
    let run_id = &shard.run_id;
    if !lease::held_by(store, prefix, run_id).await? {
        return Err(Error::Shard(format!(
            "run {run_id} no longer holds the lock of {}; shard {} not started",
            store.uri(&lease::lock_key(prefix)),
            shard.index
        )));
    }
    let plan: Plan = read_document(store, &shard::plan_key(prefix, run_id), "plan").await?;
    let listed: Vec<Shard> =
        read_document(store, &shard::list_key(prefix, run_id), "shard list").await?;
    // Only the plan's own slices: a slice of another cut could overlap them.
    if listed.get(shard.index as usize) != Some(shard) {
        return Err(Error::Shard(format!(
            "shard {} of run {run_id} is not one the plan listed",
            shard.index
        )));
    }
    let run = RunContext::resume(run_id, stop_at);
    let span = info_span!("shard", %run_id, index = shard.index);
    async {
        let backup = Backup {
            store,
            prefix,
            options,
            sync,
            scope,
            run: &run,
        };
        let (manifest, records) = backup.run(Some(&plan)).await?;
        let key = shard::manifest_key(prefix, run_id, shard.index);
        let local_name = format!("shard-{run_id}-{:05}.json", shard.index);
        let dir = &options.manifest_dir;
        // Boxed: the future is large, and a debug build's stack holds it.
        let published = Box::pin(publish_as(store, dir, manifest, &records, &key, &local_name));
        let mut summary = published.await;
        // The merge reads the stored copy; kept here, one per shard would
        // fill a warm container's /tmp run after run.
        if summary.manifest_s3_uri.is_some()
            && let Some(local) = summary.manifest_local_path.take()
            && let Err(err) = std::fs::remove_file(&local)
        {
            warn!(path = local, error = %err, "could not remove the local copy of a shard manifest");
        }
        Ok(summary)
    }
    .instrument(span)
    .await
}
