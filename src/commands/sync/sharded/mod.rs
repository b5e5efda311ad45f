//! A sharded run, for a tree that one invocation cannot finish (see
//! [`crate::run::shard`]): [`plan`] cuts it, [`shard`] backs up one slice,
//! [`merge`] makes the run's manifest of the slices.

pub mod merge;
pub mod plan;
pub mod shard;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::local::hash::Md5Digest;
use crate::store::{PutExtras, Store, WriteIf};

/// One of the documents a sharded run hands from step to step.
async fn read_document<T: DeserializeOwned>(store: &Store, key: &str, what: &str) -> Result<T> {
    let Some(fetched) = store.get(key).await? else {
        return Err(Error::Shard(format!(
            "{} is missing: was the run planned in this bucket and prefix?",
            store.uri(key)
        )));
    };
    serde_json::from_slice(&fetched.bytes().await?)
        .map_err(|err| Error::Shard(format!("{what} {} does not parse: {err}", store.uri(key))))
}

/// Stores a document under SSE-KMS, once: a run's documents are never rewritten.
async fn write_document(store: &Store, key: &str, document: &impl Serialize) -> Result<()> {
    let body = serde_json::to_vec(document)?;
    let md5 = Md5Digest::of(&body);
    store
        .put(key, body, md5, PutExtras::JSON, WriteIf::Absent)
        .await
        .map(|_| ())
}
