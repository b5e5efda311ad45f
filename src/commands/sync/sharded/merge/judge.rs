//! What the merge takes of a shard's manifest: nothing until it is judged
//! of this run, bucket and prefix, signed by the trusted key over the bytes
//! read (where a key is trusted), and held inside the slice the signed
//! shard list gave it. A shard manifest that another principal put there,
//! or one whose records reach into another slice, would otherwise become
//! the signed run's.

use serde::Deserialize;

use crate::error::Result;
use crate::local::range::PathRange;
use crate::manifest::paged::{Reading, Root};
use crate::manifest::read::{Header, read_fetched_narrowed};
use crate::manifest::stream::Pinned;
use crate::run::shard::Shard;
use crate::store::Store;

/// What a shard's manifest proved.
pub(super) enum Judged {
    Missing,
    Refused(String),
    Sound(Box<Sound>),
}

/// A shard manifest judged sound: its header (a paged one's root with it),
/// and the version and bytes judged, which a later read must match.
pub(super) struct Sound {
    pub header: Header,
    pub pinned: Pinned,
}

impl Sound {
    /// The root of a paged shard that says where its tree starts and ends:
    /// one a merge joins unread.
    pub fn joinable_root(&self) -> Option<&Root> {
        self.header.paged_root().filter(|root| root.span.is_some())
    }
}

/// Reads the shard manifest at `key` once and judges it. A paged one is
/// judged by its object alone (its root's span says where its records lie);
/// one of the first format is read whole, unspooled.
pub(super) async fn judge_shard(
    store: &Store,
    prefix: &str,
    key: &str,
    slice: &Shard,
    source_dir: &str,
) -> Result<Judged> {
    let Some(fetched) = store.get(key).await? else {
        return Ok(Judged::Missing);
    };
    let outside = OutsideSlice {
        source_dir: source_dir.to_owned(),
        range: slice.range.clone(),
        first: None,
    };
    let reading = Reading::header_only();
    let check = OutsideSlice::check;
    let read = match read_fetched_narrowed(store, (key, fetched), &reading, outside, check).await {
        Ok(read) => read,
        Err(err) => return Ok(Judged::Refused(format!("unreadable: {err}"))),
    };
    let header = &read.header;
    if header.run_id != slice.run_id || !header.describes(store.bucket(), prefix) {
        return Ok(Judged::Refused(format!(
            "it is of run {} on s3://{}/{}, not of this run",
            header.run_id, header.bucket, header.prefix
        )));
    }
    let mut outside = read.state;
    let filled = header.paged_root().filter(|root| root.records > 0);
    if let Some(span) = filled.and_then(|root| root.span.as_ref()) {
        outside.check_path(&span.first);
        outside.check_path(&span.last);
    }
    if let Some(path) = &outside.first {
        return Ok(Judged::Refused(format!(
            "its record of {path} lies outside the shard's slice"
        )));
    }
    let trust = store.trust();
    if let Some(why) = trust.refusal(read.signature.as_ref(), &read.sha256).await? {
        return Ok(Judged::Refused(why));
    }
    Ok(Judged::Sound(Box::new(Sound {
        header: read.header,
        pinned: Pinned {
            version_id: read.version_id,
            sha256: Some(read.sha256),
            kept: None,
        },
    })))
}

/// The first record of a shard manifest outside its slice, if any.
struct OutsideSlice {
    /// The configured source: every shard backs up under it.
    source_dir: String,
    range: PathRange,
    first: Option<String>,
}

/// The field of a record that says where it lies.
#[derive(Deserialize)]
struct SliceRecord {
    local_path: String,
}

impl OutsideSlice {
    fn check(&mut self, record: SliceRecord) {
        self.check_path(&record.local_path);
    }

    fn check_path(&mut self, local_path: &str) {
        if self.first.is_some() {
            return;
        }
        let relative = local_path
            .strip_prefix(self.source_dir.trim_end_matches('/'))
            .and_then(|rest| rest.strip_prefix('/'));
        if !relative.is_some_and(|path| self.range.holds_slashed(path)) {
            self.first = Some(local_path.to_owned());
        }
    }
}
