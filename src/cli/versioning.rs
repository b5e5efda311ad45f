//! Without versioning, a changed file's older content is overwritten in
//! place: every older snapshot that recorded it can no longer restore it.
//! The CLI looks once per run (one GetBucketVersioning) and says so; the
//! template's bucket is always versioned.

use tracing::{debug, warn};

use crate::store::Store;

/// Why the bucket cannot keep older snapshots restorable, if it cannot.
pub async fn unversioned(store: &Store) -> Option<String> {
    match store.versioning_enabled().await {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "bucket {} is not versioned: once a file changes or is deleted, older snapshots can no longer restore it; \
             enable versioning (aws s3api put-bucket-versioning --bucket {} --versioning-configuration Status=Enabled)",
            store.bucket(),
            store.bucket()
        )),
        // Not allowed to ask, say: the run itself will tell what is wrong.
        Err(err) => {
            debug!(error = %err, "cannot read the bucket's versioning");
            None
        }
    }
}

/// Warns on stderr when the bucket is not versioned.
pub async fn warn_if_unversioned(store: &Store) {
    if let Some(why) = unversioned(store).await {
        warn!("{why}");
    }
}
