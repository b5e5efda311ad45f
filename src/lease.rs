//! A lease that keeps two runs from working on the same prefix at once.
//!
//! The lock object `<prefix>/_manifests/lock.json` is created with a
//! conditional PUT (`If-None-Match: *`), so exactly one run wins. It carries an
//! expiry, so a run that crashed blocks the next ones only until then; an
//! expired lease is taken over with `If-Match` on its ETag, so two runs cannot
//! both take it over. A live run renews its lease the same way.
//!
//! The lock is also the run's first write with the configured SSE-KMS key: a
//! wrong or disabled key fails here, before any file is uploaded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::{Error, Result};
use crate::hash::Md5Digest;
use crate::keys;
use crate::remote::{PutExtras, Remote, WriteIf};

const LOCK_FILE: &str = "lock.json";

/// What the lock object says of its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub run_id: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A lease this run holds.
#[derive(Debug, Clone)]
pub struct Lease {
    key: String,
    etag: String,
    holder: Holder,
}

#[derive(Debug)]
pub enum Acquired {
    Held(Lease),
    /// Another run holds a lease that has not expired.
    Busy(Holder),
}

pub fn lock_key(prefix: &str) -> String {
    keys::manifest_key(prefix, LOCK_FILE)
}

pub async fn acquire(
    remote: &Remote,
    prefix: &str,
    run_id: &str,
    ttl: Duration,
) -> Result<Acquired> {
    let key = lock_key(prefix);
    let now = Utc::now();
    let holder = Holder {
        run_id: run_id.to_owned(),
        acquired_at: now,
        expires_at: now + ttl,
    };
    match write(remote, &key, &holder, WriteIf::Absent).await {
        Ok(etag) => return Ok(Acquired::Held(Lease { key, etag, holder })),
        Err(Error::PreconditionFailed { .. }) => {}
        Err(err) => return Err(err),
    }
    let Some((body, Some(etag))) = remote.get(&key).await? else {
        // Released between our PUT and GET: one more try decides it.
        return match write(remote, &key, &holder, WriteIf::Absent).await {
            Ok(etag) => Ok(Acquired::Held(Lease { key, etag, holder })),
            Err(Error::PreconditionFailed { .. }) => Ok(Acquired::Busy(unknown_holder(now))),
            Err(err) => Err(err),
        };
    };
    match serde_json::from_slice::<Holder>(&body) {
        // Our own create went through but its answer was lost, and the retry found it.
        Ok(current) if current.run_id == run_id => {
            return Ok(Acquired::Held(Lease {
                key,
                etag,
                holder: current,
            }));
        }
        Ok(current) if current.expires_at > now => return Ok(Acquired::Busy(current)),
        Ok(current) => {
            warn!(holder = %current.run_id, expired = %current.expires_at, "taking over an expired lease")
        }
        Err(err) => warn!(error = %err, "taking over an unreadable lock object"),
    }
    match write(remote, &key, &holder, WriteIf::Matches(&etag)).await {
        Ok(etag) => Ok(Acquired::Held(Lease { key, etag, holder })),
        Err(Error::PreconditionFailed { .. }) => Ok(Acquired::Busy(unknown_holder(now))),
        Err(err) => Err(err),
    }
}

/// Extends the lease; fails if another run has taken it over meanwhile.
pub async fn renew(remote: &Remote, lease: &mut Lease, ttl: Duration) -> Result<()> {
    let mut holder = lease.holder.clone();
    holder.expires_at = Utc::now() + ttl;
    lease.etag = write(remote, &lease.key, &holder, WriteIf::Matches(&lease.etag)).await?;
    lease.holder = holder;
    Ok(())
}

/// Removes the lock object, unless another run has taken it over.
pub async fn release(remote: &Remote, lease: &Lease) -> Result<()> {
    remote.delete_if_matches(&lease.key, &lease.etag).await
}

async fn write(
    remote: &Remote,
    key: &str,
    holder: &Holder,
    condition: WriteIf<'_>,
) -> Result<String> {
    let body = serde_json::to_vec_pretty(holder)?;
    let md5 = Md5Digest::of(&body);
    let etag = remote
        .put(key, body, md5, PutExtras::JSON, condition)
        .await?;
    etag.ok_or_else(|| Error::S3 {
        operation: "PutObject",
        bucket: remote.bucket().to_owned(),
        key: key.to_owned(),
        detail: "the response has no ETag, so the lease cannot be renewed or released".into(),
    })
}

/// The holder of a lease that changed hands while we looked at it.
fn unknown_holder(now: DateTime<Utc>) -> Holder {
    Holder {
        run_id: "unknown (the lease changed hands while it was read)".into(),
        acquired_at: now,
        expires_at: now,
    }
}
