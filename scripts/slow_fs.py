#!/usr/bin/python3
"""A read-only FUSE passthrough that waits on each metadata call, the way
EFS answers over the network: `slow_fs.py ROOT MOUNTPOINT [--delay-ms N]`.

For the benchmark's EFS-like row (Debian's fuse3 and python3-fusepy). Every
getattr, readdir, open and statfs sleeps N ms before answering; reads do
not. The kernel's attribute and entry caches are turned off, so each
lookup reaches this process, as it would reach EFS once its short caches
expire. Runs multithreaded: calls in flight wait at the same time.
"""
import argparse
import errno
import os
import time

from fuse_stat import attributes, file_system

try:
    from fusepy import FUSE, FuseOSError, Operations  # Debian's python3-fusepy
except ImportError:
    from fuse import FUSE, FuseOSError, Operations


class SlowPassthrough(Operations):
    def __init__(self, root, delay):
        self.root = root
        self.delay = delay

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _wait(self):
        time.sleep(self.delay)

    def getattr(self, path, fh=None):
        self._wait()
        try:
            return attributes(self._path(path))
        except OSError as err:
            raise FuseOSError(err.errno)

    def readdir(self, path, fh):
        self._wait()
        return [".", ".."] + os.listdir(self._path(path))

    def open(self, path, flags):
        self._wait()
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise FuseOSError(errno.EROFS)
        return os.open(self._path(path), os.O_RDONLY)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        os.close(fh)

    def statfs(self, path):
        self._wait()
        return file_system(self._path(path))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("mountpoint")
    parser.add_argument("--delay-ms", type=float, default=0.5)
    args = parser.parse_args()
    FUSE(SlowPassthrough(os.path.realpath(args.root), args.delay_ms / 1000), args.mountpoint,
         foreground=True, nothreads=False, ro=True, attr_timeout=0, entry_timeout=0, use_ino=True)


if __name__ == "__main__":
    main()
