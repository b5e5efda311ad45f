//! Whether a reader may act on a manifest. Anyone who can put one object
//! into the prefix can write a manifest, so a manifest is taken only when:
//! - the trusted key signed its bytes (where a key is trusted);
//! - its name is the one its own run gives it, so a signed manifest copied
//!   under a newer name does not pose as the latest;
//! - it describes this bucket and a prefix inside the configured one;
//! - each record's object is the one its path maps to under that prefix.

use std::path::{Path, PathBuf};

use super::chain::{BrokenLink, read_stored_files};
use super::read::{Header, Parsed};
use super::{FileRecord, stamp};
use crate::error::{Error, Result};
use crate::store::{Store, keys};
use crate::trust::Verdict;

/// A manifest read, with what its signature proves.
#[derive(Debug)]
pub struct Judged {
    pub parsed: Parsed<Vec<FileRecord>>,
    pub verdict: Verdict,
    /// The manifest itself, if its bytes are not those whose SHA-256 was
    /// stored with it (what vouches for an unsigned manifest).
    pub broken: Option<BrokenLink>,
}

/// The stored records of the manifest at `key`, its signature judged
/// against the trusted key over the bytes read, once its place holds.
pub async fn read_judged(store: &Store, prefix: &str, key: &str) -> Result<Judged> {
    let (parsed, broken) = read_stored_files(store, key).await?;
    check_place(store, prefix, key, &parsed.header)?;
    let verdict = store
        .trust()
        .judge(parsed.signature.as_ref(), &parsed.sha256)
        .await?;
    Ok(Judged {
        parsed,
        verdict,
        broken,
    })
}

/// Stops before anything is read further when the manifest describes
/// another bucket, a prefix outside the configured one, or a run whose
/// name is not the one it is stored under.
fn check_place(store: &Store, prefix: &str, key: &str, header: &Header) -> Result<()> {
    let inside = header.prefix == prefix
        || prefix.is_empty()
        || header.prefix.starts_with(&format!("{prefix}/"));
    if header.bucket != store.bucket() || !inside {
        return Err(Error::Untrusted {
            key: store.uri(key),
            detail: format!(
                "it describes s3://{}/{}, not a prefix of s3://{}/{prefix}",
                header.bucket,
                header.prefix,
                store.bucket()
            ),
        });
    }
    let name = key.rsplit('/').next().unwrap_or(key);
    if !names_its_run(name, header) {
        return Err(Error::Untrusted {
            key: store.uri(key),
            detail: format!(
                "its header is of run {} started {}, which writes another name: a manifest copied under a new name",
                header.run_id,
                header.started_at.map(stamp).unwrap_or_default()
            ),
        });
    }
    Ok(())
}

/// Whether `name` is one the run of `header` writes: its start stamp and
/// run id, then `.json`, `.narrowed.json` or a scope mark.
pub fn names_its_run(name: &str, header: &Header) -> bool {
    let Some(started) = header.started_at else {
        // Written before headers carried a start: nothing to hold it to.
        return true;
    };
    let Some(rest) = name.strip_prefix(&format!("{}-{}", stamp(started), header.run_id)) else {
        return false;
    };
    let scope_tag = rest
        .strip_prefix(".scope-")
        .and_then(|r| r.strip_suffix(".json"));
    rest == ".json"
        || rest == ".narrowed.json"
        || scope_tag.is_some_and(|tag| !tag.is_empty() && !tag.contains(['.', '/']))
}

/// A record's path relative to the backed-up directory; `None` when it
/// is not under it.
pub fn relative_path(header: &Header, record: &FileRecord) -> Option<PathBuf> {
    let path = Path::new(&record.local_path);
    path.strip_prefix(&header.source_dir)
        .ok()
        .map(Path::to_path_buf)
}

/// Why a file record's object is not the one its path maps to under the
/// manifest's prefix: another file's object, or one outside the prefix,
/// would let whoever wrote the manifest choose what lands at that path.
pub fn misplaced(key_prefix: &str, record: &FileRecord, relative: &Path) -> Option<String> {
    let expected = keys::object_key(key_prefix, relative).ok();
    if expected.is_some() && expected.as_deref() == record.s3_key.as_deref() {
        return None;
    }
    Some(format!(
        "its record names the object {}, not the one its path maps to under {key_prefix:?}",
        record.s3_key.as_deref().unwrap_or("(none)")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(run_id: &str, started: &str) -> Header {
        serde_json::from_value(serde_json::json!({
            "run_id": run_id,
            "started_at": started,
            "bucket": "b",
            "prefix": "p",
        }))
        .unwrap()
    }

    #[test]
    fn a_manifest_is_named_for_its_own_run_only() {
        let h = header("abc", "2026-11-22T02:37:06.500Z");
        assert!(names_its_run("20261122T023706.500Z-abc.json", &h));
        assert!(names_its_run("20261122T023706.500Z-abc.narrowed.json", &h));
        assert!(names_its_run(
            "20261122T023706.500Z-abc.scope-0f1e.json",
            &h
        ));
        assert!(!names_its_run("99990101T000000.000Z-abc.json", &h));
        assert!(!names_its_run("20261122T023706.500Z-abd.json", &h));
        assert!(!names_its_run("20261122T023706.500Z-abc.json.json", &h));
        assert!(!names_its_run("20261122T023706.500Z-abcd.json", &h));
    }
}
