"""What the benchmark rows share: trees of many small files (made once and
reused), the in-memory S3 stand-in with its key, and waiting for a port."""
import contextlib
import socket
import subprocess
import time
import urllib.request

# Any key id will do: the stand-in echoes it back as S3 does.
STANDIN_KEY = "arn:aws:kms:us-east-1:123456789012:key/standin"


def spread_tree(root, files, dirs, body):
    """`files` files spread over `dirs` directories; `body(i)` is file i's content."""
    if root.exists():
        return
    for i in range(files):
        path = root / f"d{i % dirs:04d}" / f"f{i:07d}"
        if i < dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body(i))


@contextlib.contextmanager
def standin(binary, bucket, delay_ms=0, extra=()):
    """examples/s3_standin.rs with `bucket` created; yields its endpoint."""
    server = subprocess.Popen([str(binary), "--delay-ms", str(delay_ms), *extra], stdout=subprocess.PIPE,
                              start_new_session=True)
    try:
        endpoint = server.stdout.readline().decode().strip()
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")).close()
        yield endpoint
    finally:
        server.terminate()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, what="a server", seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start on port {port}")
