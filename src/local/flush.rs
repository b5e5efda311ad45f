//! Making a restored file's data durable before it gets its name: a file
//! moved into place before its data reach the disk can be empty after a
//! crash. On a local file system one `syncfs` stands for the `fsync` of
//! every file written before it started, so files in flight share one
//! (group commit) instead of a journal commit each. NFS and FUSE get an
//! `fsync` per file: `syncfs` there promises nothing (FUSE ignores it
//! unless the server implements it; the NFS client commits per file).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// `statfs` magic numbers of the file systems that get an `fsync` per file.
const NFS_SUPER_MAGIC: i64 = 0x6969;
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
const SMB2_SUPER_MAGIC: i64 = 0xfe53_4d42;
const CIFS_SUPER_MAGIC: i64 = 0xff53_4d42;

/// How the files of one restore directory are made durable.
#[derive(Debug)]
pub enum Flush {
    EachFile,
    Grouped(Group),
}

/// `syncfs` calls shared by the files written before each started.
#[derive(Debug)]
pub struct Group {
    fd: Arc<OwnedFd>,
    /// Number of the last `syncfs` started, and of the last one finished.
    started: AtomicU64,
    finished: AtomicU64,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Flush {
    /// The way for the file system that holds `dir`.
    // `f_type`'s type differs between targets; the cast is needed on some.
    #[allow(clippy::unnecessary_cast)]
    pub fn for_dir(dir: OwnedFd) -> Flush {
        let remote = rustix::fs::fstatfs(&dir).is_ok_and(|stat| {
            let kind = stat.f_type as i64;
            [
                NFS_SUPER_MAGIC,
                FUSE_SUPER_MAGIC,
                SMB2_SUPER_MAGIC,
                CIFS_SUPER_MAGIC,
            ]
            .contains(&kind)
        });
        if remote {
            return Flush::EachFile;
        }
        Flush::Grouped(Group::new(dir))
    }

    /// Returns once `file`'s data, all written, are on disk.
    pub async fn durable(&self, file: File, path: &Path) -> Result<()> {
        let path = path.to_path_buf();
        match self {
            Flush::EachFile => {
                tokio::task::spawn_blocking(move || {
                    file.sync_all().map_err(|err| Error::io("sync", &path, err))
                })
                .await?
            }
            Flush::Grouped(group) => group.barrier(&path).await,
        }
    }
}

impl Group {
    fn new(dir: OwnedFd) -> Group {
        Group {
            fd: Arc::new(dir),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// Waits for a `syncfs` that started after this call did: it covers
    /// every write made before the call.
    async fn barrier(&self, path: &Path) -> Result<()> {
        let wanted = self.started.load(Ordering::SeqCst) + 1;
        let _turn = self.one_at_a_time.lock().await;
        if self.finished.load(Ordering::SeqCst) >= wanted {
            return Ok(());
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let fd = Arc::clone(&self.fd);
        tokio::task::spawn_blocking(move || rustix::fs::syncfs(&*fd))
            .await?
            .map_err(|err| Error::io("sync the file system of", path, err.into()))?;
        self.finished.store(number, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(dir: &Path) -> Group {
        let fd =
            rustix::fs::open(dir, rustix::fs::OFlags::RDONLY, rustix::fs::Mode::empty()).unwrap();
        Group::new(fd)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn files_waiting_together_share_one_syncfs_and_a_later_file_gets_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let group = Arc::new(group(dir.path()));
        // Ten files finish writing while the group is busy: each waits for a
        // syncfs that starts after it arrived.
        let busy = group.one_at_a_time.lock().await;
        let waiting: Vec<_> = (0..10)
            .map(|_| {
                let group = Arc::clone(&group);
                tokio::spawn(async move { group.barrier(Path::new("f")).await })
            })
            .collect();
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        drop(busy);
        for file in waiting {
            file.await.unwrap().unwrap();
        }
        assert_eq!(
            group.started.load(Ordering::SeqCst),
            1,
            "one syncfs for ten files"
        );
        // A file written after that syncfs started is not covered by it.
        group.barrier(Path::new("g")).await.unwrap();
        assert_eq!(group.started.load(Ordering::SeqCst), 2);
        assert_eq!(group.finished.load(Ordering::SeqCst), 2);
    }
}
