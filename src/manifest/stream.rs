//! A manifest's records pulled one at a time, in the manifest's order (by
//! path), while a blocking thread parses it: what lets a command walk two
//! manifests side by side, or many one after another, in bounded memory.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::paged::Reading;
use super::read::{Header, read_fetched_narrowed};
use super::trusted::{HeaderRead, read_header_judged};
use super::{FileRecord, header_of};
use crate::error::{Error, Result};
use crate::store::{Kept, Store};

/// Records parsed ahead of the reader, at most.
const AHEAD: usize = 1024;

/// A stored file of a snapshot, by its path in the backed-up tree: what
/// commands that compare or search snapshots look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub path: String,
    pub size: u64,
    pub md5: Option<String>,
}

/// The records of one manifest, as they are parsed.
pub struct Records {
    pub key: String,
    pub header: Header,
    receiver: mpsc::Receiver<FileRecord>,
    parsing: JoinHandle<Result<()>>,
    last_path: Option<String>,
    done: bool,
}

/// One manifest's bytes as a reader judged them: the version read and the
/// SHA-256 of its bytes, which the records later streamed must match.
#[derive(Debug, Clone, Default)]
pub struct Pinned {
    pub version_id: Option<String>,
    pub sha256: Option<String>,
    /// The bytes judged, where they were small enough to keep: read again
    /// from memory, not from S3.
    pub kept: Option<Kept>,
}

impl Pinned {
    /// Refuses the manifest at `uri` read again when its bytes (of SHA-256
    /// `read`) are not those judged: what was judged would not be what is
    /// acted on.
    pub fn check(&self, uri: &str, read: &str) -> Result<()> {
        match &self.sha256 {
            Some(judged) if judged != read => Err(Error::Untrusted {
                key: uri.to_owned(),
                detail: "its bytes changed after they were judged; run the command again".into(),
            }),
            _ => Ok(()),
        }
    }
}

impl Records {
    /// Starts reading the manifest at `key` under `prefix`. Where a key is
    /// trusted its bytes are judged first (one GET, records unparsed), as
    /// restore judges them, and the records then come from the version
    /// judged: nothing is printed from a manifest that fails.
    pub async fn open_judged(store: &Store, prefix: &str, key: &str) -> Result<Records> {
        let (header, pinned) = Records::judge(store, prefix, key).await?;
        Records::open_at(store, key, (header, pinned), &Reading::default()).await
    }

    /// The header of the manifest at `key` and the version to read, once
    /// judged as [`Records::open_judged`] judges it.
    pub async fn judge(store: &Store, prefix: &str, key: &str) -> Result<(Header, Pinned)> {
        if !store.trust().enforced() {
            return Ok((header_of(store, key).await?, Pinned::default()));
        }
        let judged = match read_header_judged(store, prefix, key).await? {
            HeaderRead::Gone => {
                return Err(Error::Config(format!(
                    "manifest {} vanished",
                    store.uri(key)
                )));
            }
            HeaderRead::Unreadable(why) => {
                return Err(Error::Config(format!(
                    "manifest {} is {why}",
                    store.uri(key)
                )));
            }
            HeaderRead::Read(judged) => judged,
        };
        if let Some(detail) = judged.refused {
            return Err(Error::Untrusted {
                key: store.uri(key),
                detail,
            });
        }
        let read = judged.read;
        let pinned = Pinned {
            version_id: read.version_id,
            sha256: Some(read.sha256),
            kept: judged.kept,
        };
        Ok((read.header, pinned))
    }

    /// Starts reading the manifest at `key` whose header is known, from the
    /// version `pinned` names; its bytes must have the SHA-256 it names. Of
    /// a paged snapshot, only the nodes `reading` needs are read.
    pub async fn open_at(
        store: &Store,
        key: &str,
        (header, pinned): (Header, Pinned),
        reading: &Reading,
    ) -> Result<Records> {
        let fetched = match &pinned.kept {
            Some(kept) => kept.fetched(),
            None => store
                .get_at(key, pinned.version_id.as_deref())
                .await?
                .ok_or_else(|| Error::Config(format!("manifest {} vanished", store.uri(key))))?,
        };
        let (sender, receiver) = mpsc::channel(AHEAD);
        let uri = store.uri(key);
        let (store, owned_key, reading) = (store.clone(), key.to_owned(), reading.clone());
        // The sender comes back with the parse; dropping it then is what
        // ends the reader's stream.
        let parsing = tokio::spawn(async move {
            let object = (owned_key.as_str(), fetched);
            let read = read_fetched_narrowed(&store, object, &reading, sender, pass_on).await?;
            pinned.check(&uri, &read.sha256)
        });
        Ok(Records {
            key: key.to_owned(),
            header,
            receiver,
            parsing,
            last_path: None,
            done: false,
        })
    }

    /// The next record; `None` at the end, once the whole document parsed.
    /// A manifest out of path order is an error: no merge could trust it.
    pub async fn next(&mut self) -> Result<Option<FileRecord>> {
        let Some(record) = self.receiver.recv().await else {
            return self.finish().await.map(|_| None);
        };
        if self
            .last_path
            .as_deref()
            .is_some_and(|last| last >= record.local_path.as_str())
        {
            return Err(Error::Config(format!(
                "manifest {} is not in path order at {:?}; it was not written by this tool",
                self.key, record.local_path
            )));
        }
        self.last_path = Some(record.local_path.clone());
        Ok(Some(record))
    }

    /// The next record of a stored file; directories, links and files that
    /// failed or were never uploaded are passed over.
    pub async fn next_stored_file(&mut self) -> Result<Option<StoredFile>> {
        while let Some(record) = self.next().await? {
            if record.is_stored_file() {
                return Ok(Some(StoredFile {
                    path: self.relative(&record).to_owned(),
                    size: record.size_bytes,
                    md5: record.md5,
                }));
            }
        }
        Ok(None)
    }

    /// The path of `record` relative to the backed-up directory.
    pub fn relative<'r>(&self, record: &'r FileRecord) -> &'r str {
        relative_to(&self.header.source_dir, &record.local_path)
    }

    async fn finish(&mut self) -> Result<()> {
        if !std::mem::replace(&mut self.done, true) {
            (&mut self.parsing).await??;
        }
        Ok(())
    }
}

/// `local_path` relative to `source_dir`, the backed-up directory.
pub fn relative_to<'r>(source_dir: &str, local_path: &'r str) -> &'r str {
    let source = source_dir.trim_end_matches('/');
    local_path
        .strip_prefix(source)
        .map_or(local_path, |rest| rest.trim_start_matches('/'))
}

fn pass_on(sender: &mut mpsc::Sender<FileRecord>, record: FileRecord) {
    // A reader that stopped early dropped its end: the rest is not needed.
    let _ = sender.blocking_send(record);
}
