#!/usr/bin/python3
"""A writable FUSE passthrough that refuses rename flags the way the Linux
NFS client does, and logs what makes a write durable:
`nfs_like_fs.py ROOT MOUNTPOINT --log FILE`.

It is built on the libfuse 2 API (Debian's python3-fusepy), which has no
rename2: the kernel gets ENOSYS for FUSE_RENAME2 and answers EINVAL to
every renameat2 flag, as the NFS client does for EFS (NFS 4.1). Plain
renames, hard links and everything else pass through to ROOT.

Each line of the log is one operation, its fields separated by tabs: `fsync PATH`, `fsyncdir PATH`,
`rename OLD NEW`, `link EXISTING NEW`, `unlink PATH`, with paths relative
to the mount. The kernel's attribute and entry caches are off, so each
call reaches this process.
"""
import argparse
import os
import threading

from fuse_stat import attributes, file_system

try:
    from fusepy import FUSE, FuseOSError, Operations  # Debian's python3-fusepy
except ImportError:
    from fuse import FUSE, FuseOSError, Operations


def passing_errors(call):
    def wrapped(*args, **kwargs):
        try:
            return call(*args, **kwargs)
        except OSError as err:
            raise FuseOSError(err.errno)
    return wrapped


class NfsLike(Operations):
    def __init__(self, root, log):
        self.root = root
        self.log_file = open(log, "a", buffering=1)
        self.log_lock = threading.Lock()

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _log(self, *words):
        with self.log_lock:
            self.log_file.write("\t".join(words) + "\n")

    @passing_errors
    def getattr(self, path, fh=None):
        return attributes(self._path(path))

    @passing_errors
    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    @passing_errors
    def readlink(self, path):
        return os.readlink(self._path(path))

    @passing_errors
    def access(self, path, amode):
        if not os.access(self._path(path), amode):
            raise FuseOSError(13)

    @passing_errors
    def mkdir(self, path, mode):
        os.mkdir(self._path(path), mode)

    @passing_errors
    def rmdir(self, path):
        os.rmdir(self._path(path))

    @passing_errors
    def symlink(self, target, source):
        os.symlink(source, self._path(target))

    @passing_errors
    def unlink(self, path):
        self._log("unlink", path)
        os.unlink(self._path(path))

    @passing_errors
    def rename(self, old, new):
        self._log("rename", old, new)
        os.rename(self._path(old), self._path(new))

    @passing_errors
    def link(self, target, source):
        self._log("link", source, target)
        os.link(self._path(source), self._path(target))

    @passing_errors
    def chmod(self, path, mode):
        os.chmod(self._path(path), mode, follow_symlinks=False)

    @passing_errors
    def chown(self, path, uid, gid):
        os.chown(self._path(path), uid, gid, follow_symlinks=False)

    @passing_errors
    def utimens(self, path, times=None):
        if times is None:
            os.utime(self._path(path), follow_symlinks=False)
        else:
            ns = tuple(int(t * 1e9) for t in times)
            os.utime(self._path(path), ns=ns, follow_symlinks=False)

    @passing_errors
    def truncate(self, path, length, fh=None):
        os.truncate(self._path(path), length)

    @passing_errors
    def open(self, path, flags):
        return os.open(self._path(path), flags)

    @passing_errors
    def create(self, path, mode, fi=None):
        return os.open(self._path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)

    @passing_errors
    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    @passing_errors
    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def flush(self, path, fh):
        return 0

    @passing_errors
    def release(self, path, fh):
        os.close(fh)

    @passing_errors
    def fsync(self, path, datasync, fh):
        os.fsync(fh)
        self._log("fsync", path)

    def fsyncdir(self, path, datasync, fh):
        self._log("fsyncdir", path)
        return 0

    @passing_errors
    def statfs(self, path):
        return file_system(self._path(path))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("mountpoint")
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    FUSE(NfsLike(os.path.realpath(args.root), args.log), args.mountpoint,
         foreground=True, nothreads=False, attr_timeout=0, entry_timeout=0, use_ino=True,
         default_permissions=True, allow_other=True)


if __name__ == "__main__":
    main()
