//! A lease that keeps two runs from working on the same prefix at once.
//!
//! The lock object `<prefix>/_manifests/lock.json` is created with a
//! conditional PUT (`If-None-Match: *`), so exactly one run wins. It says how
//! long it lives, so a run that crashed blocks the next ones only until then;
//! an expired lease is taken over with `If-Match` on its ETag, so two runs
//! cannot both take it over. A live run renews its lease the same way.
//!
//! Expiry is judged by S3's clock alone: the lock's Last-Modified (when it
//! was last written) against the `Date` of S3's refusal of our create. Clocks
//! of the machines that run the tool never need to agree.
//!
//! The lock is also the run's first write with the configured SSE-KMS key: a
//! wrong or disabled key fails here, before any file is uploaded.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::{Error, Result};
use crate::local::hash::Md5Digest;
use crate::store::{PutExtras, Store, WriteIf, keys};

const LOCK_FILE: &str = "lock.json";

/// Last-Modified has whole seconds: a lease is expired only once this much
/// more than its lifetime has passed.
const CLOCK_RESOLUTION: Duration = Duration::from_secs(1);

/// What the lock object says of its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub run_id: String,
    /// By the holder's clock, for people reading the lock; not used to decide.
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// How long the lease lives after each write of the lock.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Counts the holder's renewals, so a retried renewal knows its own write.
    #[serde(default)]
    pub renewals: u64,
}

impl Holder {
    fn ttl(&self) -> Duration {
        let ttl = self.ttl_secs.map(Duration::from_secs);
        // Locks written before ttl_secs existed: the span they declared.
        ttl.unwrap_or_else(|| {
            (self.expires_at - self.acquired_at)
                .to_std()
                .unwrap_or_default()
        })
    }
}

/// A lease this run holds. A sharded run hands it from its plan to its
/// merge in the plan document, so the merge can release it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// What a renewal found.
#[derive(Debug, PartialEq, Eq)]
pub enum Renewal {
    Renewed,
    /// Another run holds the lock now, or it is gone; the reason says which.
    Lost(String),
}

pub fn lock_key(prefix: &str) -> String {
    keys::manifest_key(prefix, LOCK_FILE)
}

pub async fn acquire(store: &Store, prefix: &str, run_id: &str, ttl: Duration) -> Result<Acquired> {
    let key = lock_key(prefix);
    let now = Utc::now();
    let holder = Holder {
        run_id: run_id.to_owned(),
        acquired_at: now,
        expires_at: now + ttl,
        ttl_secs: Some(ttl.as_secs()),
        renewals: 0,
    };
    let server_now = match write(store, &key, &holder, WriteIf::Absent).await {
        Ok(etag) => return Ok(Acquired::Held(Lease { key, etag, holder })),
        Err(Error::PreconditionFailed { server_time, .. }) => server_time,
        Err(err) => return Err(err),
    };
    let Some(LockObject {
        body,
        etag: Some(etag),
        last_modified,
    }) = read_lock(store, &key).await?
    else {
        // Released between our PUT and GET: one more try decides it.
        return match write(store, &key, &holder, WriteIf::Absent).await {
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
        Ok(current) if !expired(&current, last_modified, server_now) => {
            return Ok(Acquired::Busy(current));
        }
        Ok(current) => {
            warn!(holder = %current.run_id, written = ?last_modified, ttl = ?current.ttl(), "taking over an expired lease")
        }
        Err(err) => warn!(error = %err, "taking over an unreadable lock object"),
    }
    match write(store, &key, &holder, WriteIf::Matches(&etag)).await {
        Ok(etag) => Ok(Acquired::Held(Lease { key, etag, holder })),
        Err(Error::PreconditionFailed { .. }) => Ok(Acquired::Busy(unknown_holder(now))),
        Err(err) => Err(err),
    }
}

/// Whether a lease last written at `written` (S3's Last-Modified) has run
/// out by `server_now` (S3's `Date`). Without S3's time, this machine's
/// clock stands in; without a Last-Modified, the holder's own expiry does.
fn expired(
    holder: &Holder,
    written: Option<DateTime<Utc>>,
    server_now: Option<DateTime<Utc>>,
) -> bool {
    let now = server_now.unwrap_or_else(Utc::now);
    let Some(written) = written else {
        return holder.expires_at < now;
    };
    let age = (now - written).to_std().unwrap_or_default();
    age > holder.ttl() + CLOCK_RESOLUTION
}

/// Extends the lease. A renewal whose answer was lost is retried by the SDK
/// and then refused (the ETag moved); the lock then shows our own renewal,
/// which counts as done.
pub async fn renew(store: &Store, lease: &mut Lease, ttl: Duration) -> Result<Renewal> {
    let mut holder = lease.holder.clone();
    holder.expires_at = Utc::now() + ttl;
    holder.ttl_secs = Some(ttl.as_secs());
    holder.renewals += 1;
    match write(store, &lease.key, &holder, WriteIf::Matches(&lease.etag)).await {
        Ok(etag) => {
            lease.etag = etag;
            lease.holder = holder;
            return Ok(Renewal::Renewed);
        }
        Err(Error::PreconditionFailed { .. }) => {}
        Err(err) => return Err(err),
    }
    let Some(LockObject { body, etag, .. }) = read_lock(store, &lease.key).await? else {
        return Ok(Renewal::Lost("the lock object is gone".into()));
    };
    match (serde_json::from_slice::<Holder>(&body), etag) {
        (Ok(current), Some(etag)) if current == holder => {
            lease.etag = etag;
            lease.holder = holder;
            Ok(Renewal::Renewed)
        }
        (Ok(current), _) => Ok(Renewal::Lost(format!(
            "run {} took the lock over",
            current.run_id
        ))),
        (Err(_), _) => Ok(Renewal::Lost("the lock object was overwritten".into())),
    }
}

/// Whether the lock names `run_id` as its holder now: a shard of a sharded
/// run works only while the run's plan holds the lock.
pub async fn held_by(store: &Store, prefix: &str, run_id: &str) -> Result<bool> {
    let Some(lock) = read_lock(store, &lock_key(prefix)).await? else {
        return Ok(false);
    };
    Ok(serde_json::from_slice::<Holder>(&lock.body).is_ok_and(|holder| holder.run_id == run_id))
}

/// What the lock says of its holder, if there is a lock.
pub async fn holder(store: &Store, prefix: &str) -> Result<Option<Holder>> {
    let lock = read_lock(store, &lock_key(prefix)).await?;
    Ok(lock.and_then(|lock| serde_json::from_slice(&lock.body).ok()))
}

/// Removes the lock whoever holds it, unless it changed since it was
/// read: what `unlock --force` does. Returns the holder it removed.
pub async fn break_lock(store: &Store, prefix: &str) -> Result<Option<Holder>> {
    let key = lock_key(prefix);
    let Some(lock) = read_lock(store, &key).await? else {
        return Ok(None);
    };
    let etag = lock
        .etag
        .ok_or_else(|| Error::Config(format!("{} was listed without an ETag", store.uri(&key))))?;
    store.delete_if_matches(&key, &etag).await?;
    Ok(serde_json::from_slice(&lock.body).ok())
}

/// Removes the lock object, unless another run has taken it over.
pub async fn release(store: &Store, lease: &Lease) -> Result<()> {
    store.delete_if_matches(&lease.key, &lease.etag).await
}

async fn write(
    store: &Store,
    key: &str,
    holder: &Holder,
    condition: WriteIf<'_>,
) -> Result<String> {
    let body = serde_json::to_vec_pretty(holder)?;
    let md5 = Md5Digest::of(&body);
    let stored = store
        .put(key, body, md5, PutExtras::JSON, condition)
        .await?;
    stored.etag.ok_or_else(|| {
        Error::s3_detail(
            "PutObject",
            store.bucket(),
            key,
            "the response has no ETag, so the lease cannot be renewed or released",
        )
    })
}

/// The lock object as read back: its bytes, and S3's ETag and Last-Modified.
struct LockObject {
    body: Vec<u8>,
    etag: Option<String>,
    last_modified: Option<DateTime<Utc>>,
}

async fn read_lock(store: &Store, key: &str) -> Result<Option<LockObject>> {
    let Some(fetched) = store.get(key).await? else {
        return Ok(None);
    };
    let (etag, last_modified) = (fetched.etag.clone(), fetched.last_modified);
    Ok(Some(LockObject {
        body: fetched.bytes().await?,
        etag,
        last_modified,
    }))
}

/// The holder of a lease that changed hands while we looked at it.
fn unknown_holder(now: DateTime<Utc>) -> Holder {
    Holder {
        run_id: "unknown (the lease changed hands while it was read)".into(),
        acquired_at: now,
        expires_at: now,
        ttl_secs: None,
        renewals: 0,
    }
}

/// Whether the run still holds its lease, as the renewer last found: the
/// first reason it was lost, once it is.
#[derive(Debug, Default)]
pub struct Standing {
    lost: OnceLock<String>,
}

impl Standing {
    pub fn lose(&self, why: String) {
        let _ = self.lost.set(why);
    }

    pub fn is_lost(&self) -> bool {
        self.lost.get().is_some()
    }

    /// Why the lease was lost, if it was.
    pub fn lost_because(&self) -> Option<&str> {
        self.lost.get().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(ttl_secs: Option<u64>, expires_at: DateTime<Utc>) -> Holder {
        Holder {
            run_id: "r".into(),
            acquired_at: expires_at - chrono::Duration::seconds(60),
            expires_at,
            ttl_secs,
            renewals: 0,
        }
    }

    #[test]
    fn expiry_is_judged_by_s3s_clock() {
        let written = Utc::now();
        let at = |secs| Some(written + chrono::Duration::seconds(secs));
        // The writer's clock ran an hour behind: its expires_at means nothing.
        let behind = holder(Some(600), written - chrono::Duration::hours(1));
        assert!(!expired(&behind, Some(written), at(5)));
        assert!(expired(&behind, Some(written), at(602)));
        // An hour ahead: the lease still ends 600 s after the last write.
        let ahead = holder(Some(600), written + chrono::Duration::hours(1));
        assert!(expired(&ahead, Some(written), at(602)));
        // Last-Modified has whole seconds: one more second before taking over.
        assert!(!expired(&ahead, Some(written), at(601)));
        // Locks from before ttl_secs: the span they declared.
        let old = holder(None, written + chrono::Duration::seconds(30));
        assert!(expired(&old, Some(written), at(62)));
        assert!(!expired(&old, Some(written), at(30)));
    }
}
