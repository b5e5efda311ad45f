//! Which snapshots a policy keeps. Snapshots fall into lines: full runs of
//! one scope (the same globs), and narrowed runs; the policy is applied to
//! each line on its own, as restic applies it to each host and path set.
//! Whatever the policy, each line keeps its newest snapshot and its newest
//! complete one: a restore always has a whole tree to start from.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::manifest::catalog::SnapshotLine;
use crate::manifest::{Kind, RunStatus};
use crate::retention::Policy;

/// A snapshot and its fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fate {
    #[serde(flatten)]
    pub line: SnapshotLine,
    pub kept: bool,
    /// Why it is kept; empty when it is forgotten.
    pub reasons: Vec<String>,
}

/// The fate of each snapshot (oldest first, as listed) under `policy`,
/// judged at `now`. Every line given is trusted: untrusted manifests are
/// set apart before, and count for nothing.
pub fn choose(lines: Vec<SnapshotLine>, policy: &Policy, now: DateTime<Utc>) -> Result<Vec<Fate>> {
    let mut by_line: BTreeMap<(bool, Option<String>), Vec<usize>> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let key = (line.kind == Kind::Narrowed, line.scope.clone());
        by_line.entry(key).or_default().push(i);
    }
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); lines.len()];
    for members in by_line.values() {
        let times: Vec<DateTime<Utc>> = members.iter().map(|&i| lines[i].time).collect();
        for decision in policy.apply(&times, now)? {
            reasons[members[decision.index]] = decision.reasons;
        }
        // Listed oldest first: the last member is the newest.
        if let Some(&newest) = members.last() {
            keep(&mut reasons[newest], "newest snapshot");
        }
        let complete = members.iter().rev().find(|&&i| is_whole(&lines[i]));
        if let Some(&i) = complete {
            keep(&mut reasons[i], "newest complete snapshot");
        }
    }
    Ok(lines
        .into_iter()
        .zip(reasons)
        .map(|(line, reasons)| Fate {
            line,
            kept: !reasons.is_empty(),
            reasons,
        })
        .collect())
}

/// Whether the snapshot's run completed and stored every file.
pub fn is_whole(line: &SnapshotLine) -> bool {
    line.complete && line.status == Some(RunStatus::Succeeded)
}

fn keep(reasons: &mut Vec<String>, why: &str) {
    if !reasons.iter().any(|r| r == why) {
        reasons.push(why.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::Count;
    use crate::trust::Verdict;

    fn line(day: u32, kind: Kind, complete: bool) -> SnapshotLine {
        SnapshotLine {
            time: format!("2026-11-{day:02}T02:00:00Z").parse().unwrap(),
            run_id: format!("run-{day}"),
            kind,
            scope: None,
            status: Some(if complete {
                RunStatus::Succeeded
            } else {
                RunStatus::Partial
            }),
            complete,
            files: None,
            bytes: None,
            signature: Verdict::Unsigned,
            untrusted: None,
            restorable: "yes",
            manifest_s3_uri: format!("s3://b/p/_manifests/{day}.json"),
            key: format!("p/_manifests/{day}.json"),
            size: None,
            sha256: None,
            etag: None,
            version_id: None,
        }
    }

    #[test]
    fn each_line_keeps_its_newest_and_newest_complete_whatever_the_policy() {
        let lines = vec![
            line(1, Kind::Full, true),
            line(2, Kind::Full, true),
            line(3, Kind::Narrowed, true),
            line(4, Kind::Full, false),
            line(5, Kind::Narrowed, true),
        ];
        let policy = Policy {
            last: Some(Count::Last(1)),
            ..Policy::default()
        };
        let now = "2026-11-30T00:00:00Z".parse().unwrap();
        let fates = choose(lines, &policy, now).unwrap();
        let kept: Vec<&str> = fates
            .iter()
            .filter(|f| f.kept)
            .map(|f| f.line.run_id.as_str())
            .collect();
        // Full line: run-4 is the newest (last 1), run-2 the newest complete.
        // Narrowed line: run-5 is its newest.
        assert_eq!(kept, ["run-2", "run-4", "run-5"]);
        assert_eq!(fates[1].reasons, ["newest complete snapshot"]);
        assert!(fates[3].reasons.contains(&"last snapshot".to_owned()));
        assert!(fates[0].reasons.is_empty() && fates[2].reasons.is_empty());
    }
}
