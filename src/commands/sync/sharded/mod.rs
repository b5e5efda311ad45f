//! A sharded run, for a tree that one invocation cannot finish (see
//! [`crate::run::shard`]): [`plan`] cuts it, [`shard`] backs up one slice,
//! [`merge`] makes the run's manifest of the slices.

pub mod merge;
pub mod plan;
pub mod shard;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::local::hash::{Md5Digest, Sha256Stream};
use crate::store::{PutExtras, Store, WriteIf};

/// One of the documents a sharded run hands from step to step (the plan,
/// the shard list). Where a key is trusted, it must be signed by it over
/// the bytes read: a planted plan or list would choose what the run covers.
async fn read_document<T: DeserializeOwned>(store: &Store, key: &str, what: &str) -> Result<T> {
    let Some(fetched) = store.get(key).await? else {
        return Err(Error::Shard(format!(
            "{} is missing: was the run planned in this bucket and prefix?",
            store.uri(key)
        )));
    };
    let signature = fetched.signature.clone();
    let body = fetched.bytes().await?;
    let sha256 = Sha256Stream::of(&body);
    if let Some(why) = store.trust().refusal(signature.as_ref(), &sha256).await? {
        return Err(Error::Untrusted {
            key: store.uri(key),
            detail: format!("the {what}: {why}"),
        });
    }
    serde_json::from_slice(&body)
        .map_err(|err| Error::Shard(format!("{what} {} does not parse: {err}", store.uri(key))))
}

/// Stores a document under SSE-KMS, once (a run's documents are never
/// rewritten), signed by the key that signs manifests, if any.
async fn write_document(store: &Store, key: &str, document: &impl Serialize) -> Result<()> {
    let body = serde_json::to_vec(document)?;
    let md5 = Md5Digest::of(&body);
    let sha256 = Sha256Stream::of(&body);
    let signature = match store.trust().signer() {
        Some(signer) => Some(signer.sign(&sha256).await?),
        None => None,
    };
    let extras = PutExtras {
        sha256: Some(&sha256),
        signature: signature.as_ref(),
        ..PutExtras::JSON
    };
    store
        .put(key, body, md5, extras, WriteIf::Absent)
        .await
        .map(|_| ())
}
