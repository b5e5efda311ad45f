//! Each file of the manifest against the bucket, from one listing, with a
//! HeadObject only where the listing cannot vouch for the object.

use std::collections::HashMap;

use futures::StreamExt;
use tracing::warn;

use super::report::{Problem, ProblemKind};
use crate::manifest::FileRecord;
use crate::store::{Listed, Store};

/// The listing, by key and version: what is in the bucket now.
pub struct Listing {
    objects: HashMap<(String, Option<String>), Listed>,
}

impl Listing {
    /// One pass over `prefix`: the versions when the manifest pins any (so a
    /// pinned version is found even after newer ones), else the objects.
    pub async fn of(store: &Store, prefix: &str, pinned: bool) -> Option<Listing> {
        let listed = if pinned {
            store.list_versions(prefix).await
        } else {
            store.list(prefix, &[Default::default()]).await
        };
        match listed {
            Ok(listed) => Some(Listing {
                objects: listed
                    .into_iter()
                    .map(|l| ((l.key.clone(), l.version_id.clone()), l))
                    .collect(),
            }),
            Err(err) => {
                warn!(error = %err, "listing failed; every object is looked up on its own");
                None
            }
        }
    }

    /// Whether the listing shows the object this tool wrote: the same
    /// version (when pinned), ETag and size. Its recorded MD5 and its
    /// encryption, checked when it was written, then still hold.
    fn vouches_for(&self, file: &FileRecord) -> bool {
        let key = (
            file.s3_key.clone().unwrap_or_default(),
            file.version_id.clone(),
        );
        self.objects.get(&key).is_some_and(|listed| {
            listed.etag.is_some()
                && listed.etag == file.etag
                && listed.size == Some(file.size_bytes)
        })
    }
}

/// The problems of `files`; the listing answers for most of them, a HEAD
/// (of the recorded version, if any) for the rest.
pub async fn check(
    store: &Store,
    listing: Option<&Listing>,
    files: &[FileRecord],
    concurrency: usize,
) -> Vec<Problem> {
    futures::stream::iter(files)
        .filter(|file| std::future::ready(!listing.is_some_and(|l| l.vouches_for(file))))
        .map(|file| check_one(store, file))
        .buffer_unordered(concurrency)
        .flat_map(futures::stream::iter)
        .collect()
        .await
}

async fn check_one(store: &Store, file: &FileRecord) -> Vec<Problem> {
    let key = file.s3_key.clone().unwrap_or_default();
    let problem = |kind, detail: String| Problem {
        kind,
        key: key.clone(),
        detail,
    };
    let version = file.version_id.as_deref();
    let object = match store.head_at(&key, version).await {
        Ok(Some(object)) => object,
        Ok(None) => {
            let what = version.map_or("the object".to_owned(), |v| format!("version {v}"));
            return vec![problem(
                ProblemKind::Missing,
                format!("{what} is not in the bucket"),
            )];
        }
        Err(err) => return vec![problem(ProblemKind::Missing, err.to_string())],
    };
    let mut problems = Vec::new();
    let size = object.size.and_then(|s| u64::try_from(s).ok());
    if size != Some(file.size_bytes) {
        let detail = format!("size {size:?}, the manifest says {}", file.size_bytes);
        problems.push(problem(ProblemKind::Changed, detail));
    } else if object.md5 != file.md5 {
        let detail = format!(
            "md5checksum {}, the manifest says {}",
            object.md5.as_deref().unwrap_or("(none)"),
            file.md5.as_deref().unwrap_or("(none)")
        );
        problems.push(problem(ProblemKind::Changed, detail));
    }
    if let Err(err) = store.check_stored_encryption(&key, &object) {
        problems.push(problem(ProblemKind::WrongEncryption, err.to_string()));
    }
    problems
}
