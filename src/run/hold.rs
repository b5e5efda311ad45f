//! A command run under the prefix's lease: taken before the command starts,
//! renewed while it works, released when it ends.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{Instrument, error, warn};

use super::RunContext;
use super::lease::{self, Acquired, Lease, Renewal, Standing};
use crate::error::{Cause, Error, Result};
use crate::manifest::{Summary, timestamp};
use crate::store::Store;

/// What a command reports when another run held the lock and its work
/// never started.
pub trait Skipped {
    fn skipped(run: &RunContext, why: String) -> Self;
}

impl Skipped for Summary {
    fn skipped(run: &RunContext, why: String) -> Self {
        Summary::skipped(&run.id, why, run.clock.elapsed())
    }
}

/// Runs `work` while this run holds the lease of `prefix`. When another run
/// holds it, `work` never starts and the report says the run was skipped.
/// A lease lost on the way is marked in `run.standing`; the command stops
/// starting work and says so in its report.
pub async fn exclusively<T: Skipped>(
    store: &Store,
    prefix: &str,
    ttl: Duration,
    run: &RunContext,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let taking = Instant::now();
    let lease = match take(store, prefix, &run.id, ttl).await? {
        Acquired::Held(lease) => lease,
        Acquired::Busy(holder) => {
            warn!(holder = %holder.run_id, until = %timestamp(holder.expires_at), "another run holds the lock; nothing was done (s3-kms-sync unlock removes a lock whose run is gone)");
            let why = format!(
                "another run holds the lock ({} since {}, until {})",
                holder.run_id,
                timestamp(holder.acquired_at),
                timestamp(holder.expires_at)
            );
            return Ok(T::skipped(run, why));
        }
    };
    let lease = Arc::new(Mutex::new(lease));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let renewer = renew_in_background(
        store.clone(),
        ttl,
        Arc::clone(&lease),
        Arc::clone(&run.standing),
        taking,
        stopped,
    );
    let summary = work.await;
    // Stopped between renewals, never in one: a renewal cut off after S3
    // took it would leave the release naming an ETag the lock no longer has.
    let _ = stop.send(true);
    let _ = renewer.await;
    let held = lease.lock().map(|l| l.clone());
    if let Ok(held) = held
        && !run.standing.is_lost()
        && let Err(err) = lease::release(store, &held).await
    {
        warn!(error = %err, "could not release the lock; it expires by itself");
    }
    summary
}

/// Takes the lease; its PUT is the run's first request, so a failure is
/// named by its cause, each with its own fix: the bucket, the credentials,
/// the region, the endpoint, and only then the KMS key.
pub async fn take(store: &Store, prefix: &str, run_id: &str, ttl: Duration) -> Result<Acquired> {
    lease::acquire(store, prefix, run_id, ttl)
        .await
        .map_err(|err| first_request_failed(store, prefix, err))
}

fn first_request_failed(store: &Store, prefix: &str, err: Error) -> Error {
    let Error::S3 {
        code,
        cause,
        detail,
        ..
    } = &err
    else {
        return err;
    };
    let target = format!("s3://{}/{}", store.bucket(), lease::lock_key(prefix));
    let message = match (cause, code.as_deref()) {
        (Cause::NoCredentials, _) => "no AWS credentials were found (environment, profile, web identity, container and instance metadata were tried): \
             pass --profile or set AWS_PROFILE, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            .to_owned(),
        (Cause::NoRegion, _) => {
            "no AWS region is set: pass --region or set AWS_REGION, or give the profile a region"
                .to_owned()
        }
        (Cause::Unreachable | Cause::TimedOut, _) => format!(
            "cannot reach S3 at {}: {detail}; check --endpoint-url (AWS_ENDPOINT_URL) and the network",
            store.endpoint().unwrap_or_else(|| "its regional endpoint".into())
        ),
        (_, Some("NoSuchBucket")) => format!(
            "bucket {} does not exist: check SYNC_BUCKET (--bucket), and the region (AWS_REGION)",
            store.bucket()
        ),
        (_, Some(code)) if is_kms_refusal(code, detail) => format!(
            "cannot write to {target} with SSE-KMS key {}: {detail}; check SYNC_KMS_KEY_ID (--kms-key-id): \
             the key must exist, be enabled and let this role use it through S3",
            store.kms_key_id()
        ),
        _ => format!("cannot write to {target}: {detail}"),
    };
    Error::Config(message)
}

/// Whether S3 refused a write because of its KMS key: KMS's own codes
/// (`KMS.NotFoundException`, `KMS.DisabledException`…), or a refusal that
/// names KMS (AccessDenied on `kms:GenerateDataKey`, an invalid key id).
fn is_kms_refusal(code: &str, detail: &str) -> bool {
    code.starts_with("KMS.") || detail.contains("KMS") || detail.contains("kms:")
}

/// Renews the lease every third of its lifetime, until `stopped`. The lease counts as lost
/// when another run holds the lock, or when no renewal has gone through
/// for a whole lifetime (measured from when the last good write was
/// sent, so never later than S3 would let another run take over).
fn renew_in_background(
    store: Store,
    ttl: Duration,
    lease: Arc<Mutex<Lease>>,
    standing: Arc<Standing>,
    mut confirmed: Instant,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + ttl / 3, ttl / 3);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stopped.changed() => return,
                }
                let Ok(mut current) = lease.lock().map(|l| l.clone()) else {
                    return;
                };
                let sent = Instant::now();
                let why = match lease::renew(&store, &mut current, ttl).await {
                    Ok(Renewal::Renewed) => {
                        confirmed = sent;
                        if let Ok(mut slot) = lease.lock() {
                            *slot = current;
                        }
                        continue;
                    }
                    Ok(Renewal::Lost(why)) => why,
                    Err(err) if confirmed.elapsed() >= ttl => {
                        format!("it could not be renewed within its lifetime ({err})")
                    }
                    Err(err) => {
                        error!(error = %err, "could not renew the lock; retrying");
                        continue;
                    }
                };
                error!(reason = %why, "lost the lock; no more files are started");
                standing.lose(why);
                return;
            }
        }
        .in_current_span(),
    )
}
