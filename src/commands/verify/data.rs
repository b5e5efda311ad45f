//! `--read-data`: download a share of the objects and hash them, streamed
//! and in parallel. The share is a slice of a fixed order of the keys that
//! moves on with the seed, so repeated runs cover the whole backup.

use futures::{StreamExt, stream};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::options::ReadShare;
use super::report::{Problem, ProblemKind, ReadData};
use crate::error::{Error, Result};
use crate::local::hash::{Md5Digest, Md5Stream};
use crate::manifest::FileRecord;
use crate::run::progress::Progress;
use crate::store::{Ranges, Store};

/// Slots of the key order; a share is a run of consecutive slots.
const SLOTS: u32 = 10_000;

/// The slice of slots a share and a seed pick: `(first, count)`.
pub fn slice(share: ReadShare, seed: u64) -> (u32, u32) {
    match share {
        ReadShare::All => (0, SLOTS),
        ReadShare::BasisPoints(width) => {
            let first = (seed % u64::from(SLOTS)) * u64::from(width) % u64::from(SLOTS);
            (first as u32, width)
        }
    }
}

/// A key's slot: stable, and spread evenly whatever the key names look like.
fn slot(key: &str) -> u32 {
    let digest = Md5Digest::of(key.as_bytes());
    let hex = digest.hex();
    (u64::from_str_radix(&hex[..16], 16).unwrap_or(0) % u64::from(SLOTS)) as u32
}

fn in_slice(key: &str, (first, count): (u32, u32)) -> bool {
    (slot(key) + SLOTS - first) % SLOTS < count
}

/// Reads the files in the slice; returns what was read and the mismatches.
pub async fn read_back(
    store: &Store,
    files: &[FileRecord],
    share: ReadShare,
    seed: u64,
    concurrency: usize,
) -> (ReadData, Vec<Problem>) {
    let picked = slice(share, seed);
    let chosen: Vec<&FileRecord> = files
        .iter()
        .filter(|f| f.s3_key.as_deref().is_some_and(|k| in_slice(k, picked)))
        .collect();
    let bytes = chosen.iter().map(|file| file.size_bytes).sum();
    let progress = Progress::of(chosen.len() as u64, bytes);
    let _shown = progress.show("read back");
    let results: Vec<(u64, Option<Problem>)> = futures::stream::iter(chosen)
        .map(|file| async {
            let (read, problem) = read_one(store, file).await;
            progress.count_moved(read);
            (read, problem)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let report = ReadData {
        share,
        first_slot: picked.0,
        slots: picked.1,
        seed,
        objects_read: results.len() as u64,
        bytes_read: results.iter().map(|(bytes, _)| bytes).sum(),
    };
    (report, results.into_iter().filter_map(|(_, p)| p).collect())
}

async fn read_one(store: &Store, file: &FileRecord) -> (u64, Option<Problem>) {
    let key = file.s3_key.clone().unwrap_or_default();
    let read = hash_object(store, &key, Some(file.version()), file.size_bytes).await;
    let (bytes, detail) = match read {
        Ok(Some((md5, bytes))) if Some(md5.hex()) == file.md5 => return (bytes, None),
        Ok(Some((md5, bytes))) => (
            bytes,
            format!(
                "the bytes have MD5 {}, the manifest says {}",
                md5.hex(),
                file.md5.as_deref().unwrap_or("(none)")
            ),
        ),
        Ok(None) => (0, "gone before it could be read".to_owned()),
        Err(err) => (0, err.to_string()),
    };
    let problem = Problem {
        kind: ProblemKind::ContentMismatch,
        key,
        detail,
    };
    (bytes, Some(problem))
}

/// Ranges of large objects under way at once, across every object a
/// verify reads: each holds its bytes until they are hashed in order, so
/// this bounds what reading back holds (8 of 8 MiB by default).
static RANGES_HELD: Semaphore = Semaphore::const_new(8);

/// The MD5 and length of the bytes of an object recorded as `size` bytes:
/// streamed, or for a large one fetched in ranges at once and hashed in
/// order.
pub async fn hash_object(
    store: &Store,
    key: &str,
    version: Option<&str>,
    size: u64,
) -> Result<Option<(Md5Digest, u64)>> {
    let ranges = Ranges::default();
    if !ranges.apply_to(size) {
        return hash_whole(store, key, version).await;
    }
    let mut fetched = stream::iter(ranges.spans(size))
        .map(|range| fetch_range(store, key, version, range, size))
        .buffered(ranges.at_once);
    let mut md5 = Md5Stream::default();
    let mut bytes = 0u64;
    while let Some(range) = fetched.next().await {
        let Some((range, _held)) = range? else {
            return Ok(None);
        };
        md5.update(&range);
        bytes += range.len() as u64;
    }
    Ok(Some((md5.finish()?, bytes)))
}

async fn hash_whole(
    store: &Store,
    key: &str,
    version: Option<&str>,
) -> Result<Option<(Md5Digest, u64)>> {
    let Some(fetched) = store.get_at(key, version).await? else {
        return Ok(None);
    };
    let mut body = fetched.body;
    let mut md5 = Md5Stream::default();
    let mut bytes = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|err| Error::s3_detail("GetObject", store.bucket(), key, err))?;
        md5.update(&chunk);
        bytes += chunk.len() as u64;
    }
    Ok(Some((md5.finish()?, bytes)))
}

/// One range's bytes, with its place among the ranges held; fails when the
/// object is not the recorded `size` long.
async fn fetch_range(
    store: &Store,
    key: &str,
    version: Option<&str>,
    range: (u64, u64),
    size: u64,
) -> Result<Option<(Vec<u8>, SemaphorePermit<'static>)>> {
    let held = RANGES_HELD.acquire().await.expect("never closed");
    let Some(fetched) = store.get_range(key, version, range).await? else {
        return Ok(None);
    };
    if let Some(why) = fetched.length_differs(size) {
        return Err(Error::s3_detail("GetObject", store.bucket(), key, why));
    }
    let bytes = fetched
        .body
        .collect()
        .await
        .map_err(|err| Error::s3_detail("GetObject", store.bucket(), key, err))?
        .to_vec();
    Ok(Some((bytes, held)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_seeds_read_disjoint_slices_that_cover_everything() {
        let share = ReadShare::BasisPoints(2500);
        let keys: Vec<String> = (0..2000).map(|i| format!("p/file-{i}.txt")).collect();
        let mut times_read = vec![0; keys.len()];
        for seed in 40..44 {
            for (i, key) in keys.iter().enumerate() {
                times_read[i] += u32::from(in_slice(key, slice(share, seed)));
            }
        }
        assert!(
            times_read.iter().all(|&n| n == 1),
            "four 25% runs read each key once"
        );
        let one_run = keys.iter().filter(|k| in_slice(k, slice(share, 7))).count();
        assert!(
            (400..600).contains(&one_run),
            "a quarter, roughly: {one_run}"
        );
        assert_eq!(slice(ReadShare::All, 7), (0, SLOTS));
    }
}
