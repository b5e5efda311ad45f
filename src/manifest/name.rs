//! Manifest names: sortable by start time, unique by run id.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::local::filter::scope_tag;
use crate::local::hash::Sha256Stream;

/// What marks the manifests of narrowed runs (a sub-directory, a
/// sub-prefix or an event's filter): they describe part of the source
/// only, so they never serve as the index of a run. Since narrowed names
/// carry their line's tag (`.narrowed-<tag>.json`); before, a bare
/// `.narrowed.json`.
const NARROWED_MARK: &str = ".narrowed";

/// What marks the manifest of a full run with configured include or
/// exclude globs, before their scope tag.
const SCOPE_MARK: &str = ".scope-";

/// Which part of the source a run covered, as its manifest's name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameScope<'a> {
    /// The whole source.
    Whole,
    /// The whole source under configured globs, by their scope tag.
    Globs(&'a str),
    /// Part of it, by the tag of its line (`None`: a name from before
    /// narrowed names carried one).
    Narrowed(Option<&'a str>),
}

/// A manifest file name: sortable by start time, unique by run id, and
/// marked with the scope its run covered.
pub fn file_name(started: DateTime<Utc>, run_id: &str, scope: NameScope<'_>) -> String {
    let suffix = match scope {
        NameScope::Whole => ".json".to_owned(),
        NameScope::Globs(tag) => format!("{SCOPE_MARK}{tag}.json"),
        NameScope::Narrowed(None) => format!("{NARROWED_MARK}.json"),
        NameScope::Narrowed(Some(tag)) => format!("{NARROWED_MARK}-{tag}.json"),
    };
    format!("{}-{run_id}{suffix}", stamp(started))
}

/// The name scope of a full run under configured globs of `tag`.
fn full_scope(tag: Option<&str>) -> NameScope<'_> {
    tag.map_or(NameScope::Whole, NameScope::Globs)
}

/// What a manifest says of the part of the source its run covered: what
/// the name it is stored under must carry.
#[derive(Debug, Clone, Copy)]
pub struct ScopeFields<'a> {
    pub source_dir: &'a str,
    pub walked_dir: &'a str,
    pub prefix: &'a str,
    pub configured: (&'a [String], &'a [String]),
    pub event: (&'a [String], &'a [String]),
}

impl ScopeFields<'_> {
    /// The name of the manifest of run `run_id` started at `started`,
    /// narrowed or not.
    pub fn name(&self, started: DateTime<Utc>, run_id: &str, narrowed: bool) -> String {
        if narrowed {
            let tag = self.narrowed_tag();
            return file_name(started, run_id, NameScope::Narrowed(Some(&tag)));
        }
        let tag = scope_tag(self.configured.0, self.configured.1);
        file_name(started, run_id, full_scope(tag.as_deref()))
    }

    /// Whether the run walked a sub-directory of the source.
    pub fn walked_part(&self) -> bool {
        !self.subdir().is_empty()
    }

    fn subdir(&self) -> &str {
        let source = self.source_dir.trim_end_matches('/');
        let walked = self.walked_dir.trim_end_matches('/');
        walked
            .strip_prefix(source)
            .unwrap_or(walked)
            .trim_start_matches('/')
    }

    /// The line tag of a narrowed run: what it walked (relative to the
    /// source), the key prefix it stored under, the configured globs and
    /// the event's. Runs that differ in any of them cover other files, so
    /// each is a line of snapshots of its own, as restic groups by path set.
    pub fn narrowed_tag(&self) -> String {
        let globs = |(include, exclude): (&[String], &[String])| {
            scope_tag(include, exclude).unwrap_or_default()
        };
        let parts = [
            self.subdir(),
            self.prefix,
            &globs(self.configured),
            &globs(self.event),
        ];
        Sha256Stream::of(parts.join("\0").as_bytes())[..12].to_owned()
    }
}

/// The line tag in a narrowed manifest's name, if it carries one.
pub fn narrowed_tag_of(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".json")?;
    let (_, tag) = stem.rsplit_once(&format!("{NARROWED_MARK}-"))?;
    Some(tag)
}

/// Whether `name` is a narrowed run's manifest.
pub fn is_narrowed_name(name: &str) -> bool {
    name.contains(NARROWED_MARK)
}

/// The scope tag in a manifest's name: `None` for a run over everything.
pub fn scope_tag_of(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".json")?;
    let (_, tag) = stem.rsplit_once(SCOPE_MARK)?;
    Some(tag)
}

/// Whether `name` is the manifest of a full run of the scope `tag` names:
/// what a run of that scope may take as its index, and judge its source's
/// file count against.
pub fn is_index_for(name: &str, tag: Option<&str>) -> bool {
    is_full_manifest_name(name) && scope_tag_of(name) == tag
}

/// A run's start as the first, sortable part of the names of what it writes.
pub fn stamp(started: DateTime<Utc>) -> String {
    started.format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// Whether `name` (a file name, no folder) is a run's manifest, full or
/// narrowed (not the lock): a link of the chain.
pub fn is_manifest_name(name: &str) -> bool {
    name.ends_with(".json") && !name.contains('/') && name.starts_with(|c: char| c.is_ascii_digit())
}

/// Whether `name` (a file name, no folder) is the manifest of a run over the
/// whole source (under whatever globs were configured).
pub fn is_full_manifest_name(name: &str) -> bool {
    is_manifest_name(name) && !is_narrowed_name(name)
}

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_stay_unique() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T02:37:06.5Z")
            .unwrap()
            .to_utc();
        let full = file_name(t, "abc", NameScope::Whole);
        assert_eq!(full, "20261122T023706.500Z-abc.json");
        assert_ne!(full, file_name(t, "b", NameScope::Whole));
        let narrowed = file_name(t, "abc", NameScope::Narrowed(Some("4567")));
        assert_eq!(narrowed, "20261122T023706.500Z-abc.narrowed-4567.json");
        assert_eq!(narrowed_tag_of(&narrowed), Some("4567"));
        assert!(!is_full_manifest_name(
            "20261122T023706.500Z-abc.narrowed.json"
        ));
        assert!(is_full_manifest_name(&full));
        let scoped = file_name(t, "abc", NameScope::Globs("0123"));
        assert_eq!(scoped, "20261122T023706.500Z-abc.scope-0123.json");
        assert!(is_full_manifest_name(&scoped) && is_index_for(&scoped, Some("0123")));
        assert!(!is_index_for(&scoped, None) && !is_index_for(&full, Some("0123")));
        assert!(is_index_for(&full, None) && !is_index_for(&narrowed, Some("0123")));
        assert!(!is_full_manifest_name(&narrowed));
        assert!(!is_full_manifest_name("lock.json"));
        assert!(is_manifest_name(&narrowed) && !is_manifest_name("lock.json"));
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;

    /// Item 9 of the prune review: each narrowed scope is a line of its own.
    #[test]
    fn narrowed_runs_of_other_scopes_have_other_tags() {
        let none: &[String] = &[];
        let logs = ["*.log".to_owned()];
        let tag = |walked_dir, prefix, event: &[String]| {
            ScopeFields {
                source_dir: "/src",
                walked_dir,
                prefix,
                configured: (none, none),
                event: (event, none),
            }
            .narrowed_tag()
        };
        let a = tag("/src/A", "p/archA", none);
        assert_eq!(
            a,
            tag("/src/A/", "p/archA", none),
            "a trailing slash is no scope"
        );
        assert_ne!(a, tag("/src/B", "p/archB", none));
        assert_ne!(a, tag("/src/A", "p", none));
        assert_ne!(a, tag("/src/A", "p/archA", &logs));
    }
}
