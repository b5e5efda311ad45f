//! Which manifest a command reads: the newest full one of the prefix, or
//! one the user names.

use super::is_full_manifest_name;
use crate::error::{Error, Result};
use crate::store::{KeyRange, Store, keys};

/// The key of the manifest `which` names: `None` or `"latest"` for the
/// newest full manifest of `prefix`; else the `manifest_s3_uri` a run
/// printed, a key, or a file name in the prefix's manifest folder.
pub async fn locate(store: &Store, prefix: &str, which: Option<&str>) -> Result<String> {
    let folder = keys::manifest_key(prefix, "");
    let which = which
        .map(str::trim)
        .filter(|w| !w.is_empty() && *w != "latest");
    let Some(which) = which else {
        let listed = store.list(&folder, &[KeyRange::default()]).await?;
        return listed
            .into_iter()
            .map(|object| object.key)
            .filter(|key| key.strip_prefix(&folder).is_some_and(is_full_manifest_name))
            .max()
            .ok_or_else(|| {
                Error::Config(format!(
                    "no manifest under {}: run sync first, or check SYNC_PREFIX (--prefix)",
                    store.uri(&folder)
                ))
            });
    };
    let key = match keys::parse_s3_uri(which) {
        Ok((bucket, key)) => {
            if bucket != store.bucket() {
                return Err(Error::Config(format!(
                    "manifest {which} is not in the configured bucket {}: pass one of its manifests to --manifest",
                    store.bucket()
                )));
            }
            key.to_owned()
        }
        Err(_) if which.contains('/') => which.to_owned(),
        Err(_) => format!("{folder}{which}"),
    };
    match key.strip_prefix(&folder) {
        Some(name) if super::is_manifest_name(name) => Ok(key),
        _ => Err(Error::Config(format!(
            "{which} is not a manifest under {}: pass a manifest_s3_uri a run printed, or \"latest\", to --manifest",
            store.uri(&folder)
        ))),
    }
}
