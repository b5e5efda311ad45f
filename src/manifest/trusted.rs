//! Whether a reader may act on a manifest. Anyone who can put one object
//! into the prefix can write a manifest, so a manifest is taken only when:
//! - the trusted key signed its bytes (where a key is trusted);
//! - its name is the one its own run gives it, so a signed manifest copied
//!   under a newer name does not pose as the latest;
//! - it describes this bucket and a prefix inside the configured one;
//! - each record's object is the one its path maps to under that prefix.

use std::path::{Path, PathBuf};

use super::chain::{BrokenLink, read_stored_files};
use super::paged::Reading;
use super::read::{HEADER_LIMIT, Header, Parsed, read_header_fetched};
use super::{FileRecord, NameScope, file_name, stamp, timestamp};
use crate::error::{Error, Result};
use crate::local::filter::scope_tag;
use crate::store::{Kept, Store, keys};
use crate::trust::Verdict;
use chrono::{DateTime, Utc};

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
/// against the trusted key over the bytes read, once its place holds; of a
/// paged snapshot, those of the nodes `reading` needs.
pub async fn read_judged(
    store: &Store,
    prefix: &str,
    (key, kept): (&str, Option<&Kept>),
    reading: &Reading,
) -> Result<Judged> {
    let (parsed, broken) = read_stored_files(store, (key, kept), reading).await?;
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

/// A manifest's header read from S3, every byte hashed and its records
/// unparsed, with the judgement on it.
pub enum HeaderRead {
    /// It is gone.
    Gone,
    /// Its bytes are no manifest this tool can read, and why.
    Unreadable(String),
    Read(Box<HeaderJudged>),
}

/// A manifest's header read, and what was found of it.
pub struct HeaderJudged {
    pub read: Parsed<()>,
    /// The object read, where it was small enough to keep (a paged
    /// snapshot's always is): what reads it again without a request.
    pub kept: Option<Kept>,
    pub verdict: Verdict,
    /// Why it may not stand for its run (see [`refusal`]).
    pub refused: Option<String>,
}

/// The one small read behind "latest", the catalog, the chain's link and
/// the judged record stream: one GET of the manifest at `key`, judged as
/// [`judge`] judges it.
pub async fn read_header_judged(store: &Store, prefix: &str, key: &str) -> Result<HeaderRead> {
    let Some(fetched) = store.get(key).await? else {
        return Ok(HeaderRead::Gone);
    };
    let (fetched, kept) = match fetched.keep_within(HEADER_LIMIT).await? {
        Ok(kept) => (kept.fetched(), Some(kept)),
        Err(fetched) => (fetched, None),
    };
    let read = match read_header_fetched(fetched).await {
        Ok(read) => read,
        Err(err) => return Ok(HeaderRead::Unreadable(format!("unreadable: {err}"))),
    };
    let (verdict, refused) = judge(store, prefix, key, &read).await?;
    Ok(HeaderRead::Read(Box::new(HeaderJudged {
        read,
        kept,
        verdict,
        refused,
    })))
}

/// How far a manifest's claimed start may lie after S3 stored it: clocks
/// drift by seconds, and S3 keeps whole seconds; a host whose clock runs
/// minutes fast would push real snapshots out of "newest".
const CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Why a manifest read from S3 may not stand for its run: a name other
/// than the one its signed header gives, a place other than this bucket
/// under `prefix`, a start its writer's clock put after S3 stored it, or,
/// where a key is trusted, a signature that key did not make over the
/// bytes read. "Latest", a sync's index and forget's count each take a
/// manifest only when this is `None`.
pub async fn refusal<S>(
    store: &Store,
    prefix: &str,
    key: &str,
    read: &Parsed<S>,
) -> Result<Option<String>> {
    Ok(judge(store, prefix, key, read).await?.1)
}

/// [`refusal`], with the verdict on the signature it judged.
async fn judge<S>(
    store: &Store,
    prefix: &str,
    key: &str,
    read: &Parsed<S>,
) -> Result<(Verdict, Option<String>)> {
    let trust = store.trust();
    let verdict = trust.judge(read.signature.as_ref(), &read.sha256).await?;
    let header = &read.header;
    let refused = match check_place(store, prefix, key, header) {
        Err(Error::Untrusted { detail, .. }) => Some(detail),
        _ => trust.refusal_of(&verdict),
    };
    let refused = refused.or_else(|| from_the_future(header, read.last_modified));
    Ok((verdict, refused))
}

/// Why a manifest's claimed start cannot be true: more than
/// [`CLOCK_SLACK`] after S3 stored it.
pub fn from_the_future(header: &Header, stored: Option<DateTime<Utc>>) -> Option<String> {
    let (started, stored) = (header.started_at?, stored?);
    (started > stored + CLOCK_SLACK).then(|| {
        format!(
            "suspect: it claims to have started at {}, more than 5 minutes after S3 stored it at {}; its writer's clock runs fast",
            timestamp(started),
            timestamp(stored)
        )
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
    match misnamed(name, header) {
        Some(detail) => Err(Error::Untrusted {
            key: store.uri(key),
            detail,
        }),
        None => Ok(()),
    }
}

/// Whether `name` is the one the run of `header` stores its manifest under.
pub fn names_its_run(name: &str, header: &Header) -> bool {
    misnamed(name, header).is_none()
}

/// Why `name` is not the name the run of `header` writes: its start stamp
/// and run id, then the mark of its scope (whole source, narrowed, or the
/// tag of its configured globs), all taken from the signed header. A
/// signed manifest copied under a newer name, or under the name of a
/// wider scope, so poses as what it is not.
pub fn misnamed(name: &str, header: &Header) -> Option<String> {
    let Some(started) = header.started_at else {
        // Written before headers carried a start: nothing to hold it to.
        return None;
    };
    let fields = header.scope_fields();
    let run_id = header.run_id.as_str();
    let fits = |narrowed: bool| name == fields.name(started, run_id, narrowed);
    let legacy_narrowed = || name == file_name(started, run_id, NameScope::Narrowed(None));
    let named_right = match header.narrowed {
        Some(narrowed) => fits(narrowed),
        // A header from before `narrowed` was written: narrowed names had
        // no line tag, and a run that walked a sub-directory was narrowed.
        None => (!fields.walked_part() && fits(false)) || legacy_narrowed(),
    };
    if named_right {
        return None;
    }
    let own = format!("{}-{run_id}", stamp(started));
    Some(match name.strip_prefix(&own) {
        Some(_) => format!(
            "its name does not say the scope its signed header gives ({}): a snapshot of part of the source renamed to stand for another scope",
            describe_scope(header)
        ),
        None => format!(
            "its header is of run {run_id} started {}, which writes another name: a manifest copied under a new name",
            timestamp(started)
        ),
    })
}

fn describe_scope(header: &Header) -> String {
    let fields = header.scope_fields();
    match (header.narrowed, scope_tag(&header.include, &header.exclude)) {
        (Some(true), _) => format!("a narrowed run, line {}", fields.narrowed_tag()),
        (_, Some(tag)) => format!("a run under configured globs, scope {tag}"),
        (_, None) => "the whole source".into(),
    }
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

    fn scoped(narrowed: bool, include: &[&str]) -> Header {
        serde_json::from_value(serde_json::json!({
            "run_id": "abc",
            "started_at": "2026-11-22T02:37:06.500Z",
            "source_dir": "/src",
            "walked_dir": "/src/",
            "bucket": "b",
            "prefix": "p",
            "narrowed": narrowed,
            "include": include,
        }))
        .unwrap()
    }

    /// Item 3 of the trust review: the scope is signed, and the name must
    /// say it.
    #[test]
    fn a_name_must_say_the_scope_its_header_gives() {
        let logs = scoped(false, &["*.log"]);
        let tag = scope_tag(&logs.include, &logs.exclude).unwrap();
        let scoped_name = format!("20261122T023706.500Z-abc.scope-{tag}.json");
        assert!(names_its_run(&scoped_name, &logs));
        let why = misnamed("20261122T023706.500Z-abc.json", &logs).unwrap();
        assert!(why.contains("scope"), "{why}");
        assert!(!names_its_run(
            "20261122T023706.500Z-abc.scope-0f1e00000000.json",
            &logs
        ));

        let narrowed = scoped(true, &[]);
        let tag = narrowed.scope_fields().narrowed_tag();
        let narrowed_name = format!("20261122T023706.500Z-abc.narrowed-{tag}.json");
        assert!(names_its_run(&narrowed_name, &narrowed));
        assert!(!names_its_run(
            "20261122T023706.500Z-abc.narrowed.json",
            &narrowed
        ));
        assert!(!names_its_run("20261122T023706.500Z-abc.json", &narrowed));
        let whole = scoped(false, &[]);
        assert!(names_its_run("20261122T023706.500Z-abc.json", &whole));
        assert!(!names_its_run(
            "20261122T023706.500Z-abc.narrowed.json",
            &whole
        ));
    }

    #[test]
    fn a_manifest_is_named_for_its_own_run_only() {
        let h = header("abc", "2026-11-22T02:37:06.500Z");
        assert!(names_its_run("20261122T023706.500Z-abc.json", &h));
        assert!(names_its_run("20261122T023706.500Z-abc.narrowed.json", &h));
        assert!(
            !names_its_run("20261122T023706.500Z-abc.scope-0f1e.json", &h),
            "a header with no globs has no scope tag"
        );
        assert!(!names_its_run("99990101T000000.000Z-abc.json", &h));
        assert!(!names_its_run("20261122T023706.500Z-abd.json", &h));
        assert!(!names_its_run("20261122T023706.500Z-abc.json.json", &h));
        assert!(!names_its_run("20261122T023706.500Z-abcd.json", &h));
    }
}
