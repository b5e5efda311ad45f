//! A large object fetched as ranged GETs of its pinned version, several at
//! once, each written at its offset in the temporary file. A range that
//! fails is fetched again alone. Nothing is held but a buffer per range, so
//! memory does not grow with the object or the ranges in flight; the MD5 is
//! taken over the written file as its start fills in, from the page cache,
//! while later ranges are still arriving.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::{Semaphore, watch};
use tracing::warn;

use crate::error::{Error, Result};
use crate::local::hash::{Md5Digest, Md5Stream, READ_BUFFER};
use crate::store::{Fetched, Ranges, Store};

/// Bytes gathered from a range's body before they are written: hundreds
/// of files may be under way, each with one.
const WRITE_CHUNK: usize = 256 * 1024;
/// Tries of one range before the file fails.
const ATTEMPTS: u32 = 3;
/// Ranges under way at once across every file a restore fetches, beyond
/// each file's first: each holds a write buffer and a connection, and
/// hundreds of files may be in flight, which keep the connections busy.
static RANGES_UNDER_WAY: Semaphore = Semaphore::const_new(32);

/// One object version, and where its bytes go.
pub struct Target<'a> {
    pub store: &'a Store,
    pub key: &'a str,
    pub version: &'a str,
    /// The recorded size: every range must say the object has exactly this.
    pub size: u64,
    pub out: Arc<File>,
    pub path: &'a Path,
}

/// Writes the object into `target.out`: `first` is the answer to the first
/// range, already under way; the rest are fetched `at_once` at a time.
/// The MD5 is taken as the written bytes join up from the start, so hashing
/// overlaps the download; the object's MD5 and length.
pub async fn fetch(
    target: &Target<'_>,
    ranges: Ranges,
    first: Fetched,
) -> Result<(Md5Digest, u64)> {
    let mut spans = ranges.spans(target.size);
    let (start, end) = spans.next().expect("a ranged object is not empty");
    let (written, hashed) = watch::channel(0);
    let written = Written {
        ends: Mutex::default(),
        mark: written,
    };
    let first = async {
        let fetched = match write_answer(target, (start, end), first).await {
            Err(err) if !matches!(err, Error::Refused { .. }) => {
                warn!(key = target.key, error = %err, "first range failed; fetching it again");
                retried(target, (start, end)).await
            }
            done => done,
        };
        fetched.map(|()| written.done((start, end)))
    };
    let others = stream::iter(spans)
        .map(|range| {
            let written = &written;
            async move {
                retried(target, range).await?;
                written.done(range);
                Ok(())
            }
        })
        .buffer_unordered(ranges.at_once.saturating_sub(1).max(1))
        .try_collect::<()>();
    // A failed range ends the join with its error, and the hashing with it.
    let (_, _, hash) = tokio::try_join!(first, others, hash_behind(target, hashed))?;
    Ok(hash)
}

/// Where the ranges written so far reach from the start without a gap.
struct Written {
    /// Ranges written beyond the mark: first byte to the byte after the last.
    ends: Mutex<BTreeMap<u64, u64>>,
    mark: watch::Sender<u64>,
}

impl Written {
    fn done(&self, (first, last): (u64, u64)) {
        let mut ends = self.ends.lock().expect("not poisoned");
        ends.insert(first, last + 1);
        let mut mark = *self.mark.borrow();
        while let Some(end) = ends.remove(&mark) {
            mark = end;
        }
        self.mark.send_replace(mark);
    }
}

/// Hashes the file from the start as far as the written bytes reach, until
/// the whole object is hashed.
async fn hash_behind(
    target: &Target<'_>,
    mut mark: watch::Receiver<u64>,
) -> Result<(Md5Digest, u64)> {
    let mut md5 = Md5Stream::default();
    let mut hashed = 0;
    while hashed < target.size {
        let reach = *mark.borrow_and_update();
        if reach == hashed {
            if mark.changed().await.is_err() {
                return Err(refused(target, "the download stopped short".into()));
            }
            continue;
        }
        let (out, path) = (Arc::clone(&target.out), target.path.to_path_buf());
        md5 = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0; READ_BUFFER.min((reach - hashed) as usize)];
            let mut at = hashed;
            while at < reach {
                let length = buffer.len().min((reach - at) as usize);
                out.read_exact_at(&mut buffer[..length], at)
                    .map_err(|err| Error::io("read", &path, err))?;
                md5.update(&buffer[..length]);
                at += length as u64;
            }
            Ok::<_, Error>(md5)
        })
        .await??;
        hashed = reach;
    }
    Ok((md5.finish()?, hashed))
}

/// One range, fetched until it arrives whole or its tries run out.
async fn retried(target: &Target<'_>, range: (u64, u64)) -> Result<()> {
    let _under_way = RANGES_UNDER_WAY.acquire().await.expect("never closed");
    let mut attempt = 1;
    loop {
        let fetched = target
            .store
            .get_range(target.key, Some(target.version), range)
            .await;
        let written = match fetched {
            Ok(Some(fetched)) => write_answer(target, range, fetched).await,
            Ok(None) => {
                return Err(refused(
                    target,
                    "its version is not in the bucket any more".into(),
                ));
            }
            Err(err) => Err(err),
        };
        match written {
            Err(err) if attempt < ATTEMPTS && !matches!(err, Error::Refused { .. }) => {
                warn!(key = target.key, ?range, attempt, error = %err, "range failed; fetching it again");
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// Streams one range's answer to its offset; refuses an object whose
/// length is not the recorded one, and a body of another length than asked.
async fn write_answer(
    target: &Target<'_>,
    (first, last): (u64, u64),
    fetched: Fetched,
) -> Result<()> {
    if let Some(why) = fetched.length_differs(target.size) {
        return Err(refused(target, why));
    }
    let mut body = fetched.body;
    let mut at = first;
    let mut buffer = Vec::with_capacity(WRITE_CHUNK);
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|err| Error::s3_detail("GetObject", target.store.bucket(), target.key, err))?;
        buffer.extend_from_slice(&chunk);
        if buffer.len() >= WRITE_CHUNK {
            at = write_at(target, std::mem::take(&mut buffer), at).await?;
        }
    }
    at = write_at(target, buffer, at).await?;
    if at != last + 1 {
        return Err(Error::s3_detail(
            "GetObject",
            target.store.bucket(),
            target.key,
            format!("bytes {first}-{last} asked, {} received", at - first),
        ));
    }
    Ok(())
}

/// Writes `bytes` at `at`; where the next bytes go.
async fn write_at(target: &Target<'_>, bytes: Vec<u8>, at: u64) -> Result<u64> {
    let (out, path) = (Arc::clone(&target.out), target.path.to_path_buf());
    tokio::task::spawn_blocking(move || {
        out.write_all_at(&bytes, at)
            .map_err(|err| Error::io("write", &path, err))?;
        Ok(at + bytes.len() as u64)
    })
    .await?
}

fn refused(target: &Target<'_>, why: String) -> Error {
    Error::Refused {
        path: target.path.to_path_buf(),
        detail: format!("{why}; not restored"),
    }
}
