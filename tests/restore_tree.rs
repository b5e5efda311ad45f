//! `restore` gives the whole tree back: modes, owners, empty directories,
//! symbolic links, names as long as the file system allows; durably, and on
//! a file system that refuses rename flags as the NFS client (so EFS) does.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use s3_kms_sync::commands::restore::{self, RestoreOptions, RestoreReport};
use s3_kms_sync::manifest::RunStatus;
use support::*;

const BUCKET: &str = "trees";
const PREFIX: &str = "t";

fn options(target: &Path) -> RestoreOptions {
    restore_options(target)
}

async fn restore(backup: &Backup, options: &RestoreOptions) -> RestoreReport {
    let report = restore::run(&backup.engine.store, PREFIX, options)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    report
}

/// What `ls -l` would show of every entry under `root`: kind, mode, owner,
/// group, a link's target, and a directory's or link's mtime.
fn listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            let owner = format!("{:o} {}:{}", meta.mode() & 0o7777, meta.uid(), meta.gid());
            let line = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                format!("link -> {} {}:{}", target.display(), meta.uid(), meta.gid())
            } else if meta.is_dir() {
                walk(root, &path, into);
                format!("dir {owner} mtime {}", meta.mtime())
            } else {
                format!("file {owner} {} bytes", meta.len())
            };
            into.insert(relative, line);
        }
    }
    let mut entries = BTreeMap::new();
    walk(root, root, &mut entries);
    entries
}

fn set_dir_mtime(path: &Path, secs: i64) {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(secs as u64);
    std::fs::File::open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// The tree of a home directory that must come back as it was: a private
/// `.ssh`, an empty directory, links (one dangling, one relative), a file
/// of another owner, and directories with their own mtimes.
fn write_home(root: &Path) {
    std::fs::create_dir_all(root.join(".ssh")).unwrap();
    std::fs::write(root.join(".ssh/authorized_keys"), b"ssh-ed25519 AAAA me\n").unwrap();
    std::fs::set_permissions(
        root.join(".ssh/authorized_keys"),
        PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(root.join(".ssh"), PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
    std::fs::set_permissions(root.join("empty"), PermissionsExt::from_mode(0o750)).unwrap();
    std::fs::write(root.join("script.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("script.sh"), PermissionsExt::from_mode(0o4755)).unwrap();
    symlink("/nonexistent/target", root.join("dangling")).unwrap();
    symlink(".ssh/authorized_keys", root.join("keys")).unwrap();
    std::fs::write(root.join("theirs.txt"), b"another user's\n").unwrap();
    std::os::unix::fs::chown(root.join("theirs.txt"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::lchown(root.join("keys"), Some(1234), Some(5678)).unwrap();
    for (dir, secs) in [
        (".ssh", 1_600_000_000),
        ("empty", 1_500_000_000),
        ("empty/nested-empty", 1_400_000_000),
    ] {
        set_dir_mtime(&root.join(dir), secs);
    }
    settle();
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[tokio::test]
async fn modes_owners_empty_directories_and_links_come_back_as_they_were() {
    assert!(
        is_root(),
        "this test gives files away: run it as root, as CI does"
    );
    let backup = Backup::new(BUCKET, PREFIX, true).await;
    let src = backup.source.path();
    write_home(src);
    let summary = backup.sync().await;
    assert!(summary.recorded >= 6, "directories and links: {summary:?}");
    let expected = listing(src);

    let target = tempfile::tempdir().unwrap();
    let report = restore(&backup, &options(target.path())).await;
    assert_eq!((report.symlinks, report.failed), (2, 0), "{report:?}");
    assert_eq!(listing(target.path()), expected);
    assert_eq!(
        std::fs::read(target.path().join("keys")).unwrap(),
        b"ssh-ed25519 AAAA me\n",
        "the relative link resolves inside the restored tree"
    );

    // --no-owner: the modes as recorded, the owner this process's.
    let mine = tempfile::tempdir().unwrap();
    let mut no_owner = options(mine.path());
    no_owner.no_owner = true;
    restore(&backup, &no_owner).await;
    let theirs = std::fs::symlink_metadata(mine.path().join("theirs.txt")).unwrap();
    assert_eq!((theirs.uid(), theirs.gid()), (0, 0));
    assert_eq!(theirs.mode() & 0o7777, 0o644);

    // A second restore finds everything in place.
    let again = restore(&backup, &options(target.path())).await;
    assert_eq!((again.restored, again.symlinks), (0, 0), "{again:?}");
    assert_eq!(listing(target.path()), expected);
}

#[tokio::test]
async fn a_snapshot_that_recorded_no_modes_restores_private() {
    let mut backup = Backup::new(BUCKET, PREFIX, false).await;
    // Such a manifest is of the first format: one document.
    backup.engine.config.command.snapshot_format = 1;
    let first = backup.sync().await;
    // The same snapshot as a manifest written before modes were recorded:
    // file records without mode, owner or group, and no directories.
    let key = first
        .manifest_s3_uri
        .as_deref()
        .unwrap()
        .strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap()
        .to_owned();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&get_bytes(&backup.moto.s3(), BUCKET, &key).await).unwrap();
    let files = manifest["files"].as_array_mut().unwrap();
    files.retain(|f| f.get("kind").is_none());
    for file in files.iter_mut() {
        let file = file.as_object_mut().unwrap();
        for field in ["mode", "uid", "gid"] {
            assert!(file.remove(field).is_some(), "{field} was recorded");
        }
    }
    // Its own run, named as that run names its manifest.
    let old_run = format!("{}-old", manifest["run_id"].as_str().unwrap());
    manifest["run_id"] = old_run.into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let mut digest = s3_kms_sync::local::hash::Sha256Stream::default();
    digest.update(&bytes);
    let sha256 = digest.finish_hex();
    let old_key = key.replace(".json", "-old.json");
    backup.put(&old_key, bytes, ("sha256", &sha256)).await;

    let target = tempfile::tempdir().unwrap();
    let mut old = options(target.path());
    old.manifest = Some(old_key);
    restore(&backup, &old).await;
    let modes: Vec<(String, u32)> = listing(target.path())
        .keys()
        .map(|path| {
            let meta = std::fs::symlink_metadata(target.path().join(path)).unwrap();
            (path.clone(), meta.mode() & 0o7777)
        })
        .collect();
    assert!(!modes.is_empty());
    for (path, mode) in modes {
        let is_dir = target.path().join(&path).is_dir();
        assert_eq!(mode, if is_dir { 0o700 } else { 0o600 }, "{path}");
    }
}

#[tokio::test]
async fn a_name_as_long_as_the_file_system_allows_is_restored() {
    let backup = Backup::new(BUCKET, PREFIX, false).await;
    let long = format!("{}.txt", "n".repeat(251));
    assert_eq!(long.len(), 255);
    std::fs::write(backup.source.path().join(&long), b"long name\n").unwrap();
    settle();
    backup.sync().await;
    let target = tempfile::tempdir().unwrap();
    let report = restore(&backup, &options(target.path())).await;
    assert_eq!(report.failed, 0, "{:?}", report.failures);
    assert_eq!(
        std::fs::read(target.path().join(&long)).unwrap(),
        b"long name\n"
    );
}

/// A writable FUSE passthrough on the libfuse 2 API (`scripts/nfs_like_fs.py`):
/// the kernel answers EINVAL to every rename flag on it, as the NFS client
/// does, and it logs each fsync, fsyncdir, rename and link.
struct NfsLikeMount {
    child: Child,
    mountpoint: PathBuf,
    log: PathBuf,
}

impl NfsLikeMount {
    fn start(root: &Path, mountpoint: &Path, log: &Path) -> NfsLikeMount {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nfs_like_fs.py");
        let child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(root)
            .arg(mountpoint)
            .arg("--log")
            .arg(log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the FUSE passthrough (make test installs fuse3 and python3-fusepy)");
        let mount = NfsLikeMount {
            child,
            mountpoint: mountpoint.to_path_buf(),
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !mount.mounted() {
            assert!(
                Instant::now() < deadline,
                "the FUSE passthrough did not mount: is /dev/fuse there, and are fuse3 and python3-fusepy installed?"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        mount
    }

    fn mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let point = self.mountpoint.display().to_string();
        mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(point.as_str()))
    }

    fn log(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }
}

impl Drop for NfsLikeMount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mountpoint)
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_restore_onto_an_nfs_like_mount_never_replaces_and_is_durable() {
    let backup = Backup::new(BUCKET, PREFIX, false).await;
    let whole = tree(backup.source.path());
    backup.sync().await;
    let (root, mountpoint, logs) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mount = NfsLikeMount::start(root.path(), mountpoint.path(), &logs.path().join("ops"));
    // The mount refuses rename flags, as the NFS client does.
    std::fs::write(mountpoint.path().join("probe"), b"p").unwrap();
    let refused = rustix::fs::renameat_with(
        rustix::fs::CWD,
        mountpoint.path().join("probe"),
        rustix::fs::CWD,
        mountpoint.path().join("probe2"),
        rustix::fs::RenameFlags::NOREPLACE,
    );
    assert_eq!(refused, Err(rustix::io::Errno::INVAL));
    std::fs::remove_file(mountpoint.path().join("probe")).unwrap();

    let target = mountpoint.path().join("restored");
    let report = restore(&backup, &options(&target)).await;
    assert_eq!(report.restored, whole.len() as u64, "{:?}", report.failures);
    assert_eq!(tree(&target), whole);

    // Durable: each file synced before it got its name, and its directory
    // synced after its last name came in.
    let ops = mount.log();
    let position = |what: &[&str]| {
        ops.iter()
            .rposition(|op| op.iter().map(String::as_str).eq(what.iter().copied()))
    };
    for relative in whole.keys() {
        let name = format!("/restored/{relative}");
        let linked = ops
            .iter()
            .position(|op| op[0] == "link" && op[2] == name)
            .unwrap_or_else(|| panic!("{name} was not linked into place: {ops:?}"));
        let temp = ops[linked][1].clone();
        let synced = position(&["fsync", &temp]).expect("the file was synced");
        assert!(synced < linked, "{name}: synced after it got its name");
        let dir = Path::new(&name).parent().unwrap().display().to_string();
        let dir_synced = position(&["fsyncdir", &dir]).expect("the directory was synced");
        assert!(
            dir_synced > linked,
            "{name}: its directory was synced before it came in"
        );
    }

    // A file that exists is never replaced, on this mount too.
    std::fs::write(target.join("top.txt"), b"mine").unwrap();
    std::fs::remove_file(target.join("with space/file name.txt")).unwrap();
    let again = restore::run(&backup.engine.store, PREFIX, &options(&target))
        .await
        .unwrap();
    assert_eq!((again.restored, again.failed), (1, 1), "{again:?}");
    assert_eq!(std::fs::read(target.join("top.txt")).unwrap(), b"mine");
}
