//! One manifest entry back to disk: refuse what would leave the directory,
//! skip what is already there, stream the rest into a temporary file with
//! its MD5 checked on the way, sync it, and move it into place only if it
//! matches. An archived object is thawed on request, and reported pending.

use std::path::Path;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use super::options::{RestoreOptions, ThawOptions};
use super::ranged::{self, Target};
use crate::error::{Error, Result};
use crate::local::attributes::{self, PRIVATE_FILE_MODE};
use crate::local::flush::Flush;
use crate::local::hash::{Md5Stream, md5_read};
use crate::local::restore_dir::{Existing, RestoreDir, Slot};
use crate::manifest::{FileRecord, trusted};
use crate::store::{Fetched, Store, Thaw};

/// What happened to one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Restored {
    /// Written and synced; durable once its directory is synced too.
    Written {
        bytes: u64,
    },
    /// A recorded directory, there (made if it was missing).
    Directory,
    /// A recorded symbolic link, made.
    Symlink,
    AlreadyThere,
    /// Dry run: it would be restored, for this reason.
    WouldRestore(&'static str),
    /// Archived: a thaw was asked for (or is under way); a later run of the
    /// same restore brings it back.
    Pending {
        detail: String,
    },
    /// Not started: a signal asked the restore to stop first.
    NotStarted,
}

/// Why a dry run would restore an entry.
pub const MISSING: &str = "missing";
pub const REPLACES: &str = "differs (--overwrite replaces it)";

/// One file's restore, with what it needs from the run.
pub struct Worker<'a> {
    pub store: &'a Store,
    pub dir: &'a RestoreDir,
    pub options: &'a RestoreOptions,
    /// Whether recorded owners are given back (as root, without --no-owner).
    pub owners: bool,
    pub flush: &'a Flush,
    /// The key prefix the manifest's run wrote under.
    pub key_prefix: &'a str,
}

impl Worker<'_> {
    pub async fn restore(&self, file: &FileRecord, relative: &Path) -> Result<Restored> {
        self.check_key(file, relative)?;
        let Some(slot) = self.dir.slot(relative, self.options.dry_run)? else {
            return Ok(Restored::WouldRestore(MISSING));
        };
        if self.already_there(file, &slot).await? {
            return Ok(Restored::AlreadyThere);
        }
        if self.options.dry_run {
            // Only a dry run asks again, for the reason it gives.
            let occupied = slot.existing()? != Existing::Nothing;
            return Ok(Restored::WouldRestore(if occupied {
                REPLACES
            } else {
                MISSING
            }));
        }
        let key = file.s3_key.as_deref().unwrap_or_default();
        let ranges = self.options.ranges;
        let opened = match ranges.apply_to(file.size_bytes) {
            true => {
                let first = ranges.spans(file.size_bytes).next();
                let first = first.expect("a ranged object is not empty");
                self.store.get_range(key, Some(file.version()), first).await
            }
            false => self.store.get_at(key, Some(file.version())).await,
        };
        let fetched = match opened {
            Ok(Some(fetched)) => fetched,
            Ok(None) => {
                return Err(Error::Refused {
                    path: slot.path().to_path_buf(),
                    detail: format!(
                        "version {} of {} is not in the bucket",
                        file.version(),
                        self.store.uri(key)
                    ),
                });
            }
            Err(err) if err.s3_code() == Some("InvalidObjectState") => {
                return self.archived(file, key, &slot).await;
            }
            Err(err) => return Err(err),
        };
        let (temp_file, temp) = slot.create_temp()?;
        let committed = self
            .write_into(file, fetched, temp_file, &slot)
            .await
            .and_then(|bytes| {
                slot.commit(&temp, self.options.overwrite)?;
                Ok(bytes)
            });
        if committed.is_err() {
            slot.discard(&temp);
        }
        committed.map(|bytes| Restored::Written { bytes })
    }

    /// A record's object must be the one its path maps to under the run's
    /// prefix.
    fn check_key(&self, file: &FileRecord, relative: &Path) -> Result<()> {
        match trusted::misplaced(self.key_prefix, file, relative) {
            None => Ok(()),
            Some(why) => Err(Error::Refused {
                path: relative.to_path_buf(),
                detail: format!("{why}; refused"),
            }),
        }
    }

    /// Whether the slot holds the recorded content already; an error when
    /// something else is in the way that may not be replaced.
    async fn already_there(&self, file: &FileRecord, slot: &Slot) -> Result<bool> {
        let md5 = file.md5.as_deref().unwrap_or_default();
        match slot.existing()? {
            Existing::Nothing => Ok(false),
            Existing::RegularFile { size } => {
                if size == file.size_bytes && self.existing_md5(slot).await? == md5 {
                    return Ok(true);
                }
                if self.options.overwrite {
                    return Ok(false);
                }
                Err(Error::Refused {
                    path: slot.path().to_path_buf(),
                    detail: "it exists with other content; left alone (--overwrite replaces it)"
                        .into(),
                })
            }
            Existing::Other(what) => Err(Error::Refused {
                path: slot.path().to_path_buf(),
                detail: format!("{what} is in the way; refused"),
            }),
        }
    }

    async fn existing_md5(&self, slot: &Slot) -> Result<String> {
        let handle = slot.open_existing()?;
        let path = slot.path().to_path_buf();
        let (md5, _) = tokio::task::spawn_blocking(move || md5_read(handle, &path)).await??;
        Ok(md5.hex())
    }

    /// GetObject refused the version as archived: thaw it when asked, else
    /// say which flag would.
    async fn archived(&self, file: &FileRecord, key: &str, slot: &Slot) -> Result<Restored> {
        let object = self.store.head_at(key, Some(file.version())).await?;
        let class = object.as_ref().and_then(|o| o.archived());
        let intelligent_tiering = class
            .as_deref()
            .is_some_and(|c| c.starts_with("INTELLIGENT_TIERING"));
        let class = class.unwrap_or_else(|| "an archive class".into());
        let Some(ThawOptions { tier, days }) = &self.options.thaw else {
            return Err(Error::Refused {
                path: slot.path().to_path_buf(),
                detail: format!(
                    "its object is archived in {class}: rerun with --restore-archived [--tier Standard|Bulk|Expedited] to thaw it"
                ),
            });
        };
        let days = (!intelligent_tiering).then_some(*days);
        let detail = match self.store.thaw(key, file.version(), days, tier).await? {
            Thaw::Requested => format!(
                "archived in {class}: a {tier} thaw was asked for; run this restore again once it is done"
            ),
            Thaw::AlreadyThawing => format!(
                "archived in {class}: still thawing; run this restore again once it is done"
            ),
        };
        Ok(Restored::Pending { detail })
    }

    /// Fetches the object into `out`; fails unless size and MD5 are the
    /// recorded ones. Sets the recorded mtime, then syncs.
    async fn write_into(
        &self,
        file: &FileRecord,
        fetched: Fetched,
        out: std::fs::File,
        slot: &Slot,
    ) -> Result<u64> {
        let (out, bytes, md5) = match self.options.ranges.apply_to(file.size_bytes) {
            true => self.fetch_ranges(file, fetched, out, slot).await?,
            false => self.stream_into(file, fetched, out, slot).await?,
        };
        if bytes != file.size_bytes || Some(md5.as_str()) != file.md5.as_deref() {
            return Err(Error::Refused {
                path: slot.path().to_path_buf(),
                detail: format!(
                    "the download has {bytes} bytes with MD5 {md5}; the manifest says {} bytes with MD5 {}; not restored",
                    file.size_bytes,
                    file.md5.as_deref().unwrap_or("(none)")
                ),
            });
        }
        let recorded = file.attributes();
        attributes::apply(&out, slot.path(), recorded, PRIVATE_FILE_MODE, self.owners)?;
        if let Some(mtime_ns) = file.mtime_ns {
            slot.set_mtime(&out, mtime_ns)?;
        }
        self.flush.durable(out, slot.path()).await?;
        Ok(bytes)
    }

    /// Streams the object into `out`, hashing on the way: its bytes and MD5.
    async fn stream_into(
        &self,
        file: &FileRecord,
        fetched: Fetched,
        out: std::fs::File,
        slot: &Slot,
    ) -> Result<(std::fs::File, u64, String)> {
        let key = file.s3_key.as_deref().unwrap_or_default();
        let mut body = fetched.body;
        let mut out = tokio::fs::File::from_std(out);
        let mut md5 = Md5Stream::default();
        let mut bytes = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|err| Error::s3_detail("GetObject", self.store.bucket(), key, err))?;
            md5.update(&chunk);
            bytes += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(|err| Error::io("write", slot.path(), err))?;
        }
        out.flush()
            .await
            .map_err(|err| Error::io("write", slot.path(), err))?;
        Ok((out.into_std().await, bytes, md5.finish()?.hex()))
    }

    /// Fetches a large object range by range into `out`: its bytes and MD5.
    async fn fetch_ranges(
        &self,
        file: &FileRecord,
        first: Fetched,
        out: std::fs::File,
        slot: &Slot,
    ) -> Result<(std::fs::File, u64, String)> {
        let target = Target {
            store: self.store,
            key: file.s3_key.as_deref().unwrap_or_default(),
            version: file.version(),
            size: file.size_bytes,
            out: Arc::new(out),
            path: slot.path(),
        };
        let (md5, bytes) = ranged::fetch(&target, self.options.ranges, first).await?;
        let out = Arc::try_unwrap(target.out).expect("every range is written");
        Ok((out, bytes, md5.hex()))
    }
}
