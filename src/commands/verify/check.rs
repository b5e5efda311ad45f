//! Each file of the manifest against the bucket, from one listing of
//! versions, with a HeadObject only where the listing cannot vouch for the
//! object, and a read where even the HEAD cannot.

use std::collections::HashMap;

use futures::StreamExt;
use tracing::warn;

use super::data::hash_object;
use super::report::{Problem, ProblemKind};
use crate::manifest::FileRecord;
use crate::run::progress::Progress;
use crate::store::{Listed, Object, Store, may_be_archived};

/// The listing, by key and version: what is in the bucket now.
pub struct Listing {
    objects: HashMap<(String, String), Listed>,
}

impl Listing {
    /// One pass over the versions under `prefix`: every record names its
    /// version ("null" for an object written before versioning), and a
    /// pinned version is found even after newer ones.
    pub async fn of(store: &Store, prefix: &str) -> Option<Listing> {
        match store.list_versions(prefix).await {
            Ok(listed) => Some(Listing {
                objects: listed
                    .into_iter()
                    .filter_map(|l| Some(((l.key.clone(), l.version_id.clone()?), l)))
                    .collect(),
            }),
            Err(err) => {
                warn!(error = %err, "listing failed; every object is looked up on its own");
                None
            }
        }
    }

    /// Whether the listing shows the object this tool wrote, readable: the
    /// same version, ETag and size, in a class GetObject reads directly.
    /// Its recorded MD5 and its encryption, checked when it was written,
    /// then still hold.
    fn vouches_for(&self, file: &FileRecord) -> bool {
        let key = (
            file.s3_key.clone().unwrap_or_default(),
            file.version().to_owned(),
        );
        self.objects.get(&key).is_some_and(|listed| {
            listed.etag.is_some()
                && listed.etag == file.etag
                && listed.size == Some(file.size_bytes)
                && !may_be_archived(listed.storage_class.as_deref())
        })
    }
}

/// The problems of `files`; the listing answers for most of them, a HEAD
/// of the recorded version for the rest.
pub async fn check(
    store: &Store,
    listing: Option<&Listing>,
    files: &[FileRecord],
    concurrency: usize,
) -> Vec<Problem> {
    let progress = Progress::of(files.len() as u64, 0);
    let _shown = progress.show("asked of S3 one by one");
    futures::stream::iter(files)
        .filter(|file| {
            let vouched = listing.is_some_and(|l| l.vouches_for(file));
            if vouched {
                progress.count_done();
            }
            std::future::ready(!vouched)
        })
        .map(|file| async {
            let problems = check_one(store, file).await;
            progress.count_moved(0);
            problems
        })
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
    let object = match store.head_at(&key, Some(file.version())).await {
        Ok(Some(object)) => object,
        Ok(None) => {
            let detail = format!("version {} is not in the bucket", file.version());
            return vec![problem(ProblemKind::Missing, detail)];
        }
        Err(err) => return vec![problem(ProblemKind::Missing, err.to_string())],
    };
    let mut problems = Vec::new();
    let archived = object.archived();
    if let Some(archived) = &archived {
        let detail = format!(
            "archived in {archived}: GetObject refuses it until it is thawed (restore --restore-archived)"
        );
        problems.push(problem(ProblemKind::Archived, detail));
    }
    if let Some(detail) = metadata_mismatch(file, &object) {
        problems.push(problem(ProblemKind::Changed, detail));
    } else if object.etag != file.etag && archived.is_none() {
        problems.extend(
            content_mismatch(store, file, &key)
                .await
                .map(|(kind, d)| problem(kind, d)),
        );
    }
    if let Err(err) = store.check_stored_encryption(&key, &object) {
        problems.push(problem(ProblemKind::WrongEncryption, err.to_string()));
    }
    problems
}

/// How the HEAD's size or recorded MD5 differs from the manifest's.
fn metadata_mismatch(file: &FileRecord, object: &Object) -> Option<String> {
    let size = object.size.and_then(|s| u64::try_from(s).ok());
    if size != Some(file.size_bytes) {
        return Some(format!(
            "size {size:?}, the manifest says {}",
            file.size_bytes
        ));
    }
    (object.md5 != file.md5).then(|| {
        format!(
            "md5checksum {}, the manifest says {}",
            object.md5.as_deref().unwrap_or("(none)"),
            file.md5.as_deref().unwrap_or("(none)")
        )
    })
}

/// An object whose ETag is not the one this tool's write returned was
/// written by someone else: its size and metadata prove nothing, since
/// whoever rewrote it could copy them. Only its bytes can vouch for it.
async fn content_mismatch(
    store: &Store,
    file: &FileRecord,
    key: &str,
) -> Option<(ProblemKind, String)> {
    let rewritten = format!(
        "rewritten: its ETag is not the {} this tool's write returned",
        file.etag.as_deref().unwrap_or("(none)")
    );
    match hash_object(store, key, Some(file.version()), file.size_bytes).await {
        Ok(Some((md5, _))) if Some(md5.hex()) == file.md5 => None,
        Ok(Some((md5, _))) => Some((
            ProblemKind::ContentMismatch,
            format!("{rewritten}, and its bytes have MD5 {}", md5.hex()),
        )),
        Ok(None) => Some((ProblemKind::Missing, format!("{rewritten}, then gone"))),
        Err(err) => Some((
            ProblemKind::Unreadable,
            format!("{rewritten}, and it cannot be read: {err}"),
        )),
    }
}
