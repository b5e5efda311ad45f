//! The snapshots of a prefix, listed without reading a manifest body: one
//! listing of the manifest folder and one HEAD per manifest, whose user
//! metadata holds what a line shows (a manifest written before that was
//! kept costs a header-only GET instead).

use chrono::{DateTime, NaiveDateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::locate::header_of;
use super::{Facts, Kind, RunStatus, Snapshot, is_manifest_name, scope_tag_of};
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
    /// The scope tag of a run under configured globs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub status: Option<RunStatus>,
    pub complete: bool,
    /// Files with an object, and their bytes; unknown for a manifest
    /// written before they were kept with it.
    pub files: Option<u64>,
    pub bytes: Option<u64>,
    pub signature: Verdict,
    /// As far as these facts tell: `yes` (complete, every file stored,
    /// and trusted where a key is), `partial`, `no` or `untrusted`.
    pub restorable: &'static str,
    pub manifest_s3_uri: String,
    /// The manifest's key in the bucket.
    #[serde(skip)]
    pub key: String,
}

/// Every snapshot of `prefix`, oldest first.
pub async fn snapshots(store: &Store, prefix: &str) -> Result<Vec<SnapshotLine>> {
    let folder = keys::manifest_key(prefix, "");
    let listed = store.list(&folder, &[KeyRange::default()]).await?;
    let names: Vec<String> = listed
        .into_iter()
        .filter_map(|object| object.key.strip_prefix(&folder).map(str::to_owned))
        .filter(|name| is_manifest_name(name))
        .collect();
    let folder = &folder;
    let mut lines: Vec<SnapshotLine> = futures::stream::iter(names)
        .map(|name| async move { line(store, &format!("{folder}{name}"), &name).await })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|line| async move { line.transpose() })
        .collect::<Vec<Result<SnapshotLine>>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    lines.sort_by(|a, b| (a.time, &a.run_id).cmp(&(b.time, &b.run_id)));
    Ok(lines)
}

/// The line of the manifest at `key`; `None` if it vanished meanwhile.
async fn line(store: &Store, key: &str, name: &str) -> Result<Option<SnapshotLine>> {
    let Some(object) = store.head(key).await? else {
        return Ok(None);
    };
    let (time, run_id) = time_and_run(name);
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
    let kind = facts.map_or_else(|| kind_of_name(name), |f| f.kind);
    let status = facts.map(|f| f.status);
    let trusted = !store.trust().enforced() || signature.is_valid();
    let restorable = match (state, status, trusted) {
        (_, _, false) => "untrusted",
        (Snapshot::Complete, Some(RunStatus::Succeeded), true) => "yes",
        (_, Some(RunStatus::Failed), true) => "no",
        _ => "partial",
    };
    Ok(Some(SnapshotLine {
        time,
        run_id,
        kind,
        scope: scope_tag_of(name).map(str::to_owned),
        status,
        complete: state == Snapshot::Complete,
        files: facts.map(|f| f.files),
        bytes: facts.map(|f| f.bytes),
        signature,
        restorable,
        manifest_s3_uri: store.uri(key),
        key: key.to_owned(),
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
        .split_once(".narrowed.json")
        .or_else(|| run.split_once(".scope-"))
        .or_else(|| run.split_once(".json"))
        .map_or(run, |(run, _)| run);
    (time, run.to_owned())
}

fn kind_of_name(name: &str) -> Kind {
    if name.ends_with(".narrowed.json") {
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
        assert_eq!(time_and_run("20261122T023706.500Z-r.json").1, "r");
        assert_eq!(
            kind_of_name("20261122T023706.500Z-r.narrowed.json"),
            Kind::Narrowed
        );
    }
}
