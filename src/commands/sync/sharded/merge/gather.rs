//! What the shards' manifests add up to: where every shard wrote a paged
//! tree, the trees joined unread (O(shards), whatever they hold); else the
//! records of each, spooled and sorted.

use tracing::warn;

use super::judge::Sound;
use crate::error::Result;
use crate::manifest::paged::{PageWriter, Tree};
use crate::manifest::publish::Contents;
use crate::manifest::read::read_fetched;
use crate::manifest::spool::{RecordSpool, SortedRecords};
use crate::manifest::{FileRecord, Tally};
use crate::run::RunOptions;
use crate::store::{Store, keys};

/// The run's records, as the merge gathered them.
pub(super) enum Gathered {
    Spooled(SortedRecords),
    Joined(Tree),
}

impl Gathered {
    pub fn contents(&self) -> Contents<'_> {
        match self {
            Gathered::Spooled(records) => Contents::Records(records),
            Gathered::Joined(tree) => Contents::Joined(tree.clone()),
        }
    }
}

/// The shards judged sound, in slice order, with their indexes and keys.
pub(super) type SoundShards = Vec<(u32, String, Sound)>;

/// What the merge gathered, its counts, and the shards whose manifest
/// vanished after it was judged (their slices are not in the snapshot).
pub(super) struct Gathering {
    pub gathered: Gathered,
    pub tally: Tally,
    pub vanished: Vec<u32>,
}

pub(super) async fn gather(
    store: &Store,
    prefix: &str,
    options: &RunOptions,
    sound: &SoundShards,
) -> Result<Gathering> {
    let roots: Option<Vec<_>> = sound
        .iter()
        .map(|(_, _, shard)| shard.joinable_root().cloned())
        .collect();
    match roots {
        Some(roots) => {
            let home = keys::manifest_key(prefix, "");
            let tree = PageWriter::new(store, &home).join(&roots).await?;
            Ok(Gathering {
                gathered: Gathered::Joined(tree),
                tally: summed_tallies(sound),
                vanished: Vec::new(),
            })
        }
        None => spool(store, options, sound).await,
    }
}

/// The counts the shards' summaries give.
fn summed_tallies(sound: &SoundShards) -> Tally {
    let mut tally = Tally::default();
    for (_, key, shard) in sound {
        match &shard.header.summary {
            Some(summary) => tally.absorb(Tally::of_summary(summary)),
            None => warn!(
                key,
                "a shard manifest without a summary; its counts are left out"
            ),
        }
    }
    tally
}

/// Every shard's records, from the version judged, spooled and sorted.
async fn spool(store: &Store, options: &RunOptions, sound: &SoundShards) -> Result<Gathering> {
    let mut spool = RecordSpool::new(&options.manifest_dir)?;
    let mut vanished = Vec::new();
    for (index, key, shard) in sound {
        let pinned = &shard.pinned;
        let Some(fetched) = store.get_at(key, pinned.version_id.as_deref()).await? else {
            vanished.push(*index);
            continue;
        };
        let parsed = read_fetched(store, key, fetched, (spool, Ok(())), spool_record).await?;
        let (back, spooled) = parsed.state;
        spool = back;
        spooled?;
        pinned.check(&store.uri(key), &parsed.sha256)?;
    }
    Ok(Gathering {
        tally: spool.tally(),
        gathered: Gathered::Spooled(spool.sort()?),
        vanished,
    })
}

/// Sends each record of a shard manifest to the spool; the first failure stays.
fn spool_record(state: &mut (RecordSpool, Result<()>), record: FileRecord) {
    if state.1.is_ok() {
        state.1 = state.0.push(&record);
    }
}
