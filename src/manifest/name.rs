//! Manifest names: sortable by start time, unique by run id.

use chrono::{DateTime, SecondsFormat, Utc};

/// Suffix of the manifests of narrowed runs (a sub-directory, a sub-prefix
/// or an event's filter): they describe part of the source only, so they
/// never serve as the index of a run.
const NARROWED_SUFFIX: &str = ".narrowed.json";

/// A manifest file name: sortable by start time, unique by run id, and
/// marked when the run covered only part of the source.
pub fn file_name(started: DateTime<Utc>, run_id: &str, narrowed: bool) -> String {
    let suffix = if narrowed { NARROWED_SUFFIX } else { ".json" };
    format!("{}-{run_id}{suffix}", stamp(started))
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
/// whole source: what the next run may take as its index.
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
        assert_eq!(file_name(t, "abc", false), "20261122T023706.500Z-abc.json");
        assert_ne!(file_name(t, "a", false), file_name(t, "b", false));
        let narrowed = file_name(t, "abc", true);
        assert_eq!(narrowed, "20261122T023706.500Z-abc.narrowed.json");
        assert!(is_full_manifest_name(&file_name(t, "abc", false)));
        assert!(!is_full_manifest_name(&narrowed));
        assert!(!is_full_manifest_name("lock.json"));
        assert!(is_manifest_name(&narrowed) && !is_manifest_name("lock.json"));
    }
}
