//! The prefix as this run's listing saw it, and how to list it.
//!
//! A key the last manifest recorded is not kept twice: the listing marks
//! its record in the [`Index`] (listed unchanged, or rewritten), and keeps
//! only the objects the index has no record of.

use std::sync::Arc;

use super::sorted::SortedMap;

use super::index::{Index, Recorded, Seen};
use crate::manifest::{is_index_for, is_manifest_name};
use crate::store::{Etag, KeyRange, Listed};

/// How to list the prefix when the last manifest is known: ranges of 990
/// of the keys it recorded (room for a few new keys before a range needs a
/// second page), listed at once. Of the manifest folder, the range lists
/// what sorts after `manifests_after` (newer manifests and the lock), or
/// nothing when the folder was listed on its own.
pub fn plan_listing(
    index: &Index,
    manifest_folder: &str,
    manifests_after: Option<&str>,
) -> Vec<KeyRange> {
    let keys = index.sorted_keys();
    let splits: Vec<&str> = keys
        .iter()
        .copied()
        .skip(RANGE_KEYS - 1)
        .step_by(RANGE_KEYS)
        .collect();
    // Every key in the folder sorts after the folder and before this.
    let folder_end = format!("{manifest_folder}\u{10FFFF}");
    let resume = manifests_after.unwrap_or(&folder_end);
    let mut ranges = Vec::with_capacity(splits.len() + 2);
    let mut after: Option<&str> = None;
    for until in splits.into_iter().map(Some).chain(std::iter::once(None)) {
        let holds_folder =
            after.is_none_or(|a| a < manifest_folder) && until.is_none_or(|u| u >= manifest_folder);
        if holds_folder {
            // List the keys before the folder (if the last run had any
            // there), then from `resume`. A new key before the folder in a
            // range that had none is listed by the next run; until then it
            // only costs one needless upload.
            let before_folder = keys.partition_point(|k| *k < manifest_folder)
                > after.map_or(0, |a| keys.partition_point(|k| *k <= a));
            if before_folder {
                ranges.push(range(after, Some(manifest_folder)));
            }
            ranges.push(range(Some(resume), until));
        } else {
            ranges.push(range(after, until));
        }
        after = until;
    }
    ranges
}

fn range(after: Option<&str>, until: Option<&str>) -> KeyRange {
    KeyRange {
        after: after.map(str::to_owned),
        until: until.map(str::to_owned),
    }
}

/// Keys per listing range, a little under the 1,000 of a page.
const RANGE_KEYS: usize = 990;

/// Whether a key is in the bucket, as the listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence<'a> {
    Absent,
    Present {
        etag: Option<Etag>,
        size: Option<u64>,
        /// `None` for STANDARD; a re-encrypting copy keeps it.
        storage_class: Option<&'a str>,
    },
}

/// A listed object's ETag, size and storage class (an index into the classes).
type ListedObject = (Option<Etag>, Option<u64>, Option<u8>);

/// The prefix as one ListObjectsV2 pass saw it, beside the index.
#[derive(Debug, Default)]
pub struct Listing {
    /// Listed objects the index has no record of (new files, other writers').
    others: SortedMap<ListedObject>,
    classes: Vec<Arc<str>>,
    /// What the listing showed of the manifest folder.
    pub manifests: Manifests,
}

impl Listing {
    /// An empty listing, for a run of the scope `tag` names.
    pub fn of_scope(scope_tag: Option<String>) -> Self {
        Listing {
            manifests: Manifests::of_scope(scope_tag),
            ..Listing::default()
        }
    }

    #[cfg(test)]
    pub fn from_listing(listed: Vec<Listed>, manifest_folder: &str, index: &mut Index) -> Self {
        let mut view = Listing::default();
        for object in listed {
            view.add(object, manifest_folder, Some(index));
        }
        view.seal();
        view
    }

    /// Readies the objects taken in for lookups.
    pub fn seal(&mut self) {
        self.others.seal();
    }

    /// Takes in one listed object (objects may come in any order), marking
    /// its record in `index` if it has one.
    pub fn add(&mut self, object: Listed, manifest_folder: &str, index: Option<&mut Index>) {
        if object.key.starts_with(manifest_folder) {
            self.manifests.add(object, manifest_folder);
            return;
        }
        let class = object.storage_class.map(|class| self.class_id(class));
        let etag = object.etag.as_deref().map(Etag::new);
        let marked = index
            .is_some_and(|index| index.mark_listed(&object.key, etag.as_ref(), object.size, class));
        if !marked {
            self.others
                .push(object.key.into(), (etag, object.size, class));
        }
    }

    fn class_id(&mut self, class: String) -> u8 {
        let id = match self.classes.iter().position(|c| **c == *class) {
            Some(id) => id,
            None => {
                self.classes.push(class.into());
                self.classes.len() - 1
            }
        };
        // S3 has about ten storage classes.
        u8::try_from(id).unwrap_or(u8::MAX)
    }

    fn class(&self, id: Option<u8>) -> Option<&str> {
        id.and_then(|id| self.classes.get(usize::from(id)))
            .map(|class| &**class)
    }

    /// What the listing showed of `key`, whose record (if any) it marked.
    pub fn presence(&self, key: &str, recorded: Option<&Recorded>) -> Presence<'_> {
        match recorded.map(|r| (r, r.seen)) {
            Some((recorded, Seen::Unchanged { class })) => Presence::Present {
                etag: recorded.etag.clone(),
                size: Some(recorded.stamp.size),
                storage_class: self.class(class),
            },
            Some((_, Seen::Rewritten)) => Presence::Present {
                etag: None,
                size: None,
                storage_class: None,
            },
            Some((_, Seen::NotListed)) => Presence::Absent,
            None => match self.others.get(key) {
                None => Presence::Absent,
                Some((etag, size, class)) => Presence::Present {
                    etag: etag.clone(),
                    size: *size,
                    storage_class: self.class(*class),
                },
            },
        }
    }

    /// Listed objects the index has no record of.
    pub fn others(&self) -> usize {
        self.others.len()
    }
}

/// Which manifests the manifest folder holds, as listed.
#[derive(Debug, Default)]
pub struct Manifests {
    /// The scope tag of the run's configured globs (`None`: everything).
    pub scope_tag: Option<String>,
    /// The manifests of full runs of this scope, in the order listed: the
    /// newest one that passes judgement is the next run's index.
    full: Vec<String>,
    /// The manifests of every run, full or narrowed, with their ETags: the
    /// newest that passes judgement is the chain's next link.
    all: Vec<(String, Option<String>)>,
}

impl Manifests {
    /// Manifests as a run of the scope `tag` names sees them.
    pub fn of_scope(scope_tag: Option<String>) -> Self {
        Manifests {
            scope_tag,
            ..Manifests::default()
        }
    }

    /// Takes in one object of `folder`; manifest names sort by start time.
    pub fn add(&mut self, object: Listed, folder: &str) {
        let Some(name) = object.key.strip_prefix(folder) else {
            return;
        };
        if is_manifest_name(name) {
            self.all.push((object.key.clone(), object.etag.clone()));
        }
        if is_index_for(name, self.scope_tag.as_deref()) {
            self.full.push(object.key);
        }
    }

    /// The manifests of every run, with their ETags, newest first.
    pub fn newest_first(&self) -> Vec<(String, Option<String>)> {
        let mut all = self.all.clone();
        all.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        all
    }

    /// The newest manifest of a full run of this scope, as its name says.
    pub fn latest_full(&self) -> Option<&str> {
        self.full.iter().max().map(String::as_str)
    }

    /// The manifests of full runs of this scope, newest first: the
    /// candidates for the index, each taken only once judged.
    pub fn full_newest_first(&self) -> Vec<&str> {
        let mut full: Vec<&str> = self.full.iter().map(String::as_str).collect();
        full.sort_unstable_by(|a, b| b.cmp(a));
        full
    }
}

/// Whether `recorded` still describes what the listing shows: same ETag and
/// size means nobody has written the object since this tool did.
pub fn unchanged_remotely(recorded: &Recorded, presence: &Presence<'_>) -> bool {
    match presence {
        Presence::Present { etag, size, .. } => recorded.is_listed_as(etag.as_ref(), *size),
        Presence::Absent => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sync::index::tests::index_of;

    fn listed(key: &str, etag: &str, size: u64) -> Listed {
        Listed {
            key: key.into(),
            etag: Some(etag.into()),
            size: Some(size),
            version_id: None,
            storage_class: None,
        }
    }

    #[test]
    fn the_manifest_folder_names_the_newest_manifests() {
        let mut manifests = Manifests::default();
        for key in [
            "p/_manifests/20260101T000000.000Z-x.json",
            "p/_manifests/20261231T235959.999Z-y.json",
            "p/_manifests/20261231T235959.999Z-z.narrowed.json",
            "p/_manifests/lock.json",
            "p/_manifests/shards/0b6ec4a4-32b5-4a2f-9a6e-0a5c8e0f6a11/plan.json",
        ] {
            manifests.add(listed(key, "\"m\"", 9), "p/_manifests/");
        }
        assert_eq!(
            manifests.latest_full(),
            Some("p/_manifests/20261231T235959.999Z-y.json")
        );
        assert_eq!(
            manifests.newest_first().first(),
            Some(&(
                "p/_manifests/20261231T235959.999Z-z.narrowed.json".into(),
                Some("\"m\"".into())
            ))
        );
    }

    /// A recorded key is marked in its record, not kept again; the rest is kept.
    #[test]
    fn the_listing_marks_recorded_keys_and_keeps_the_others() {
        // index_of records every key with size 1 and ETag "e".
        let mut index = index_of(
            ["p/same", "p/rewritten", "p/gone"]
                .map(String::from)
                .into_iter(),
        );
        let mut glacier = listed("p/same", "\"e\"", 1);
        glacier.storage_class = Some("GLACIER_IR".into());
        let view = Listing::from_listing(
            vec![
                glacier,
                listed("p/rewritten", "\"other\"", 1),
                listed("p/new.txt", "\"n\"", 3),
                listed("p/_manifests/20260101T000000.000Z-x.json", "\"m\"", 9),
            ],
            "p/_manifests/",
            &mut index,
        );
        assert_eq!(view.others(), 1, "only the unrecorded file is kept");
        assert!(
            view.manifests.latest_full().is_some(),
            "the folder's keys name manifests"
        );
        let presence = |key| view.presence(key, index.get(key));
        let same = presence("p/same");
        assert_eq!(
            same,
            Presence::Present {
                etag: Some(Etag::new("\"e\"")),
                size: Some(1),
                storage_class: Some("GLACIER_IR")
            }
        );
        assert!(unchanged_remotely(index.get("p/same").unwrap(), &same));
        let rewritten = presence("p/rewritten");
        assert!(!unchanged_remotely(
            index.get("p/rewritten").unwrap(),
            &rewritten
        ));
        assert_ne!(rewritten, Presence::Absent);
        assert_eq!(presence("p/gone"), Presence::Absent);
        assert_eq!(
            presence("p/new.txt"),
            Presence::Present {
                etag: Some(Etag::new("\"n\"")),
                size: Some(3),
                storage_class: None
            }
        );
        assert_eq!(presence("p/absent"), Presence::Absent);
    }

    #[test]
    fn the_listing_plan_covers_every_key_but_recorded_manifests() {
        let index = index_of((0..2000).rev().map(|i| format!("p/k{i:05}")));
        let newest = "p/_manifests/20260101T000000.000Z-r.json";
        let bounds = |plan: &[KeyRange]| -> Vec<(Option<String>, Option<String>)> {
            plan.iter()
                .map(|r| (r.after.clone(), r.until.clone()))
                .collect()
        };
        let s = |text: &str| Some(text.to_owned());
        assert_eq!(
            bounds(&plan_listing(&index, "p/_manifests/", Some(newest))),
            [
                (s(newest), s("p/k00989")),
                (s("p/k00989"), s("p/k01979")),
                (s("p/k01979"), None),
            ]
        );
        // Once the folder was listed on its own, no range lists it again.
        let plan = plan_listing(&index, "p/_manifests/", None);
        assert_eq!(plan[0].after, s("p/_manifests/\u{10FFFF}"));
        let in_plan = |key: &str| {
            plan.iter()
                .filter(|r| r.after.as_deref().is_none_or(|a| key > a))
                .filter(|r| r.until.as_deref().is_none_or(|u| key <= u))
                .count()
        };
        assert_eq!(in_plan(newest), 0);
        for key in ["p/k00000", "p/k00990", "p/z"] {
            assert_eq!(in_plan(key), 1, "{key}");
        }

        // A key that sorts before the manifest folder gets its own range.
        let index = index_of(
            (0..2000)
                .map(|i| format!("p/k{i:05}"))
                .chain(["p/A.txt".to_owned()]),
        );
        let plan = plan_listing(&index, "p/_manifests/", Some(newest));
        assert_eq!(plan[0].until.as_deref(), Some("p/_manifests/"));
        assert_eq!(plan[1].after.as_deref(), Some(newest));
        assert_eq!(plan.len(), 4);
    }

    #[test]
    fn only_the_same_etag_and_size_prove_an_object_unchanged() {
        let recorded = crate::commands::sync::index::tests::recorded("\"e1\"", None);
        let present = |etag: &str, size| Presence::Present {
            etag: Some(Etag::new(etag)),
            size: Some(size),
            storage_class: None,
        };
        assert!(unchanged_remotely(&recorded, &present("\"e1\"", 3)));
        assert!(!unchanged_remotely(&recorded, &present("\"e2\"", 3)));
        assert!(!unchanged_remotely(&recorded, &present("\"e1\"", 4)));
        assert!(!unchanged_remotely(&recorded, &Presence::Absent));
    }
}
