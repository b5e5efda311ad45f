//! One manifest entry back to disk: refuse what would leave the directory,
//! skip what is already there, stream the rest into a temporary file with
//! its MD5 checked on the way, and rename it into place only if it matches.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::options::RestoreOptions;
use crate::error::{Error, Result};
use crate::local::hash::{Md5Stream, md5_read};
use crate::local::restore_dir::{Existing, RestoreDir, Slot};
use crate::manifest::FileRecord;
use crate::store::Store;

/// What happened to one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Restored {
    Written { bytes: u64 },
    AlreadyThere,
    WouldRestore,
}

/// One file's restore, with what it needs from the run.
pub struct Worker<'a> {
    pub store: &'a Store,
    pub dir: &'a RestoreDir,
    pub options: &'a RestoreOptions,
    /// The backed-up directory as the manifest names it: local paths are
    /// made relative to it.
    pub source_dir: &'a Path,
    /// Names this run's temporary files.
    pub run_id: &'a str,
}

impl Worker<'_> {
    /// The path a record restores to, relative to the directory.
    pub fn relative(&self, file: &FileRecord) -> Result<PathBuf> {
        Path::new(&file.local_path)
            .strip_prefix(self.source_dir)
            .map(Path::to_path_buf)
            .map_err(|_| Error::Refused {
                path: PathBuf::from(&file.local_path),
                detail: format!(
                    "it is not under the backed-up directory {}; refused",
                    self.source_dir.display()
                ),
            })
    }

    pub async fn restore(&self, file: &FileRecord, relative: &Path) -> Result<Restored> {
        let Some(slot) = self.dir.slot(relative, self.options.dry_run)? else {
            return Ok(Restored::WouldRestore);
        };
        let md5 = file.md5.as_deref().unwrap_or_default();
        match slot.existing()? {
            Existing::Nothing => {}
            Existing::RegularFile { size } => {
                if size == file.size_bytes && self.existing_md5(&slot).await? == md5 {
                    return Ok(Restored::AlreadyThere);
                }
                if !self.options.overwrite {
                    return Err(Error::Refused {
                        path: slot.path().to_path_buf(),
                        detail:
                            "it exists with other content; left alone (--overwrite replaces it)"
                                .into(),
                    });
                }
            }
            Existing::Other(what) => {
                return Err(Error::Refused {
                    path: slot.path().to_path_buf(),
                    detail: format!("{what} is in the way; refused"),
                });
            }
        }
        if self.options.dry_run {
            return Ok(Restored::WouldRestore);
        }
        let (temp_file, temp) = slot.create_temp(self.run_id)?;
        let fetched = self.fetch_into(file, temp_file, &slot).await;
        let committed = fetched.and_then(|bytes| {
            slot.commit(&temp, self.options.overwrite)?;
            Ok(bytes)
        });
        if committed.is_err() {
            slot.discard(&temp);
        }
        committed.map(|bytes| Restored::Written { bytes })
    }

    async fn existing_md5(&self, slot: &Slot) -> Result<String> {
        let handle = slot.open_existing()?;
        let path = slot.path().to_path_buf();
        let (md5, _) = tokio::task::spawn_blocking(move || md5_read(handle, &path)).await??;
        Ok(md5.hex())
    }

    /// Streams the object (its recorded version, if any) into `out`,
    /// hashing on the way; fails unless size and MD5 are the recorded ones.
    async fn fetch_into(&self, file: &FileRecord, out: std::fs::File, slot: &Slot) -> Result<u64> {
        let key = file.s3_key.as_deref().unwrap_or_default();
        let version = file.version_id.as_deref();
        let fetched = self
            .store
            .get_at(key, version)
            .await?
            .ok_or_else(|| Error::Refused {
                path: slot.path().to_path_buf(),
                detail: format!("{} is not in the bucket", self.store.uri(key)),
            })?;
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
        let md5 = md5.finish()?.hex();
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
        let out = out.into_std().await;
        if let Some(mtime_ns) = file.mtime_ns {
            slot.set_mtime(&out, mtime_ns)?;
        }
        Ok(bytes)
    }
}
