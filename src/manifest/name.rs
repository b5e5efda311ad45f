//! Manifest names: sortable by start time, unique by run id.

use chrono::{DateTime, SecondsFormat, Utc};

/// Suffix of the manifests of narrowed runs (a sub-directory, a sub-prefix
/// or an event's filter): they describe part of the source only, so they
/// never serve as the index of a run.
const NARROWED_SUFFIX: &str = ".narrowed.json";

/// What marks the manifest of a full run with configured include or
/// exclude globs, before their scope tag.
const SCOPE_MARK: &str = ".scope-";

/// A manifest file name: sortable by start time, unique by run id, and
/// marked when the run covered only part of the source: a narrowed run,
/// or a full run under configured globs (by their scope tag).
pub fn file_name(
    started: DateTime<Utc>,
    run_id: &str,
    narrowed: bool,
    scope_tag: Option<&str>,
) -> String {
    let suffix = match (narrowed, scope_tag) {
        (true, _) => NARROWED_SUFFIX.to_owned(),
        (false, Some(tag)) => format!("{SCOPE_MARK}{tag}.json"),
        (false, None) => ".json".to_owned(),
    };
    format!("{}-{run_id}{suffix}", stamp(started))
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
    is_manifest_name(name) && !name.ends_with(NARROWED_SUFFIX)
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
        let full = file_name(t, "abc", false, None);
        assert_eq!(full, "20261122T023706.500Z-abc.json");
        assert_ne!(full, file_name(t, "b", false, None));
        let narrowed = file_name(t, "abc", true, Some("0123"));
        assert_eq!(narrowed, "20261122T023706.500Z-abc.narrowed.json");
        assert!(is_full_manifest_name(&full));
        let scoped = file_name(t, "abc", false, Some("0123"));
        assert_eq!(scoped, "20261122T023706.500Z-abc.scope-0123.json");
        assert!(is_full_manifest_name(&scoped) && is_index_for(&scoped, Some("0123")));
        assert!(!is_index_for(&scoped, None) && !is_index_for(&full, Some("0123")));
        assert!(is_index_for(&full, None) && !is_index_for(&narrowed, Some("0123")));
        assert!(!is_full_manifest_name(&narrowed));
        assert!(!is_full_manifest_name("lock.json"));
        assert!(is_manifest_name(&narrowed) && !is_manifest_name("lock.json"));
    }
}
