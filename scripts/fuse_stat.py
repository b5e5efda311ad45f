"""What a FUSE passthrough answers for getattr and statfs: the underlying
file's `lstat` and its file system's `statvfs`, as fusepy wants them.
Shared by scripts/slow_fs.py and scripts/nfs_like_fs.py."""
import os

STAT_KEYS = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid", "st_ino")
STATFS_KEYS = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize",
               "f_namemax")


def attributes(path):
    """`lstat` of `path`, with times to the nanosecond; raises OSError."""
    st = os.lstat(path)
    out = {key: getattr(st, key) for key in STAT_KEYS}
    for key in ("st_atime", "st_ctime", "st_mtime"):
        out[key] = getattr(st, key + "_ns") / 1e9
    return out


def file_system(path):
    """`statvfs` of the file system holding `path`."""
    st = os.statvfs(path)
    return {key: getattr(st, key) for key in STATFS_KEYS}
