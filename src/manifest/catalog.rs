//! The snapshots of a prefix. With no key trusted, listed without reading
//! a manifest body: one listing of the manifest folder and one HEAD per
//! manifest, whose user metadata holds what a line shows (a manifest
//! written before that was kept costs a header-only GET instead). Where a
//! key is trusted, each manifest's bytes are read (its records unparsed)
//! and judged as restore judges them: metadata is anyone's to copy.

use chrono::{DateTime, NaiveDateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::locate::header_of;
use super::stream::Pinned;
use super::trusted::{HeaderJudged, HeaderRead, read_header_judged};
use super::{
    Facts, Kind, RunStatus, Snapshot, is_manifest_name, is_narrowed_name, narrowed_tag_of,
    scope_tag_of,
};
use crate::error::Result;
use crate::store::{KeyRange, Store, keys};
use crate::trust::Verdict;

/// HEADs in flight at once.
const IN_FLIGHT: usize = 16;

/// One snapshot, as `snapshots` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotLine {
    pub time: DateTime<Utc>,
    pub run_id: String,
    pub kind: Kind,
    /// The scope tag of a run under configured globs, or a narrowed run's
    /// line tag: each scope is a line of snapshots of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub status: Option<RunStatus>,
    pub complete: bool,
    /// Files with an object, and their bytes; unknown for a manifest
    /// written before they were kept with it.
    pub files: Option<u64>,
    pub bytes: Option<u64>,
    pub signature: Verdict,
    /// Why the manifest is not trusted, where a key is: it then counts
    /// for nothing (not "latest", not a policy's, not a prune's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untrusted: Option<String>,
    /// As far as these facts tell: `yes` (complete, every file stored,
    /// and trusted where a key is), `partial`, `no` or `untrusted`.
    pub restorable: &'static str,
    pub manifest_s3_uri: String,
    /// The manifest's key in the bucket.
    #[serde(skip)]
    pub key: String,
    /// The manifest's size, as listed.
    #[serde(skip)]
    pub size: Option<u64>,
    /// The SHA-256 of its bytes as judged (where a key is trusted), else
    /// as stored with it; and its ETag: what a forget mark records.
    #[serde(skip)]
    pub sha256: Option<String>,
    #[serde(skip)]
    pub etag: Option<String>,
    /// The version read, where its bytes were judged.
    #[serde(skip)]
    pub version_id: Option<String>,
}

impl SnapshotLine {
    /// Whether the snapshot may count: signed by the trusted key over its
    /// bytes, rightly named and placed, where a key is trusted.
    pub fn trusted(&self) -> bool {
        self.untrusted.is_none()
    }

    /// The bytes its line was made of: what a later read must find again.
    pub fn pinned(&self) -> Pinned {
        Pinned {
            version_id: self.version_id.clone(),
            sha256: self.sha256.clone(),
            kept: None,
        }
    }
}

/// Every snapshot of `prefix`, oldest first.
pub async fn snapshots(store: &Store, prefix: &str) -> Result<Vec<SnapshotLine>> {
    let folder = keys::manifest_key(prefix, "");
    let listed = store.list(&folder, &[KeyRange::default()]).await?;
    let names: Vec<(String, Option<u64>)> = listed
        .into_iter()
        .filter_map(|object| {
            let name = object.key.strip_prefix(&folder)?;
            is_manifest_name(name).then(|| (name.to_owned(), object.size))
        })
        .collect();
    let folder = &folder;
    let mut lines: Vec<SnapshotLine> = futures::stream::iter(names)
        .map(|(name, size)| async move {
            let line = line(store, prefix, &format!("{folder}{name}"), &name).await;
            line.map(|line| line.map(|line| SnapshotLine { size, ..line }))
        })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|line| async move { line.transpose() })
        .collect::<Vec<Result<SnapshotLine>>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    lines.sort_by(|a, b| (a.time, &a.run_id).cmp(&(b.time, &b.run_id)));
    Ok(lines)
}

/// What a line shows, as read.
struct Seen {
    version_id: Option<String>,
    sha256: Option<String>,
    etag: Option<String>,
    signature: Verdict,
    facts: Option<Facts>,
    state: Snapshot,
    kind: Option<Kind>,
    status: Option<RunStatus>,
    untrusted: Option<String>,
}

/// The line of the manifest at `key`; `None` if it vanished meanwhile.
async fn line(store: &Store, prefix: &str, key: &str, name: &str) -> Result<Option<SnapshotLine>> {
    let seen = match store.trust().enforced() {
        true => by_bytes(store, prefix, key).await?,
        false => by_metadata(store, key).await?,
    };
    let Some(seen) = seen else {
        return Ok(None);
    };
    let (time, run_id) = time_and_run(name);
    let restorable = match (seen.state, seen.status, seen.untrusted.is_none()) {
        (_, _, false) => "untrusted",
        (Snapshot::Complete, Some(RunStatus::Succeeded), true) => "yes",
        (_, Some(RunStatus::Failed), true) => "no",
        _ => "partial",
    };
    Ok(Some(SnapshotLine {
        time,
        run_id,
        kind: seen.kind.unwrap_or_else(|| kind_of_name(name)),
        scope: scope_tag_of(name)
            .or_else(|| narrowed_tag_of(name))
            .map(str::to_owned),
        status: seen.status,
        complete: seen.state == Snapshot::Complete,
        files: seen.facts.map(|f| f.files),
        bytes: seen.facts.map(|f| f.bytes),
        signature: seen.signature,
        untrusted: seen.untrusted,
        restorable,
        manifest_s3_uri: store.uri(key),
        key: key.to_owned(),
        size: None,
        sha256: seen.sha256,
        etag: seen.etag,
        version_id: seen.version_id,
    }))
}

/// A line from the manifest's metadata: one HEAD.
async fn by_metadata(store: &Store, key: &str) -> Result<Option<Seen>> {
    let Some(object) = store.head(key).await? else {
        return Ok(None);
    };
    let sha256 = object.sha256.as_deref().unwrap_or_default();
    let signature = store
        .trust()
        .judge(object.signature.as_ref(), sha256)
        .await?;
    let recorded = object.facts.as_deref().and_then(Facts::parse);
    let state = object.snapshot.as_deref().and_then(Snapshot::parse);
    let (facts, state) = match (recorded, state) {
        (Some(facts), Some(state)) => (Some(facts), state),
        // Written before its facts were kept: its header tells the rest.
        _ => {
            let header = header_of(store, key).await?;
            (None, Snapshot::of_header(&header))
        }
    };
    Ok(Some(Seen {
        version_id: None,
        sha256: object.sha256.clone(),
        etag: object.etag.clone(),
        signature,
        facts,
        state,
        kind: facts.map(|f| f.kind),
        status: facts.map(|f| f.status),
        untrusted: None,
    }))
}

/// A line from the manifest's bytes, judged: one GET. Its state, status
/// and kind come from the signed header; only the file and byte counts
/// shown come from metadata.
async fn by_bytes(store: &Store, prefix: &str, key: &str) -> Result<Option<Seen>> {
    let (read, signature, untrusted) = match read_header_judged(store, prefix, key).await? {
        HeaderRead::Gone => return Ok(None),
        // Untrusted: no digest, version or count of it is used.
        HeaderRead::Unreadable(why) => {
            return Ok(Some(Seen {
                version_id: None,
                sha256: None,
                etag: None,
                signature: Verdict::Unsigned,
                facts: None,
                state: Snapshot::Incomplete,
                kind: None,
                status: None,
                untrusted: Some(why),
            }));
        }
        HeaderRead::Read(judged) => {
            let HeaderJudged {
                read,
                verdict,
                refused,
                ..
            } = *judged;
            (read, verdict, refused)
        }
    };
    let facts = read.facts.as_deref().and_then(Facts::parse);
    let header = &read.header;
    let kind = match header.narrowed {
        Some(true) => Some(Kind::Narrowed),
        Some(false) => facts
            .map(|f| f.kind)
            .filter(|k| *k != Kind::Narrowed)
            .or(Some(Kind::Full)),
        None => None,
    };
    Ok(Some(Seen {
        version_id: read.version_id.clone(),
        sha256: Some(read.sha256.clone()),
        etag: read.etag.clone(),
        signature,
        facts,
        state: Snapshot::of_header(header),
        kind,
        status: header.summary.as_ref().map(|s| s.status),
        untrusted,
    }))
}

/// The start and run id a manifest's name carries.
fn time_and_run(name: &str) -> (DateTime<Utc>, String) {
    let (stamp, rest) = name.split_at(name.find('-').unwrap_or(0));
    let time = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ")
        .map(|t| t.and_utc())
        .unwrap_or_default();
    let run = rest.trim_start_matches('-');
    let run = run
        .split_once(".narrowed")
        .or_else(|| run.split_once(".scope-"))
        .or_else(|| run.split_once(".json"))
        .map_or(run, |(run, _)| run);
    (time, run.to_owned())
}

fn kind_of_name(name: &str) -> Kind {
    if is_narrowed_name(name) {
        Kind::Narrowed
    } else {
        Kind::Full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_gives_its_run_and_start() {
        let (time, run) = time_and_run("20261122T023706.500Z-abc-1.scope-0f1e.json");
        assert_eq!(time.to_rfc3339(), "2026-11-22T02:37:06.500+00:00");
        assert_eq!(run, "abc-1");
        assert_eq!(time_and_run("20261122T023706.500Z-r.narrowed.json").1, "r");
        assert_eq!(
            time_and_run("20261122T023706.500Z-r.narrowed-0a1b.json").1,
            "r"
        );
        assert_eq!(time_and_run("20261122T023706.500Z-r.json").1, "r");
        assert_eq!(
            kind_of_name("20261122T023706.500Z-r.narrowed.json"),
            Kind::Narrowed
        );
    }
}
