"""Write a small, deterministic sample tree: nested folders, an empty file,
names with spaces and non-ASCII characters, and one file above the default
8 MiB multipart threshold."""
import hashlib
import pathlib
import sys


def content(seed: str, size: int) -> bytes:
    block = hashlib.sha256(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def main(root: str) -> None:
    base = pathlib.Path(root)
    files = {f"projects/p{p}/notes-{n}.txt": 200 + 37 * n for p in range(3) for n in range(5)}
    files.update({
        "reports/2026/q1.csv": 4_096,
        "reports/2026/scratch.tmp": 10,
        "photos/été à la plage.jpg": 150_000,
        "with space/read me.md": 512,
        "empty.dat": 0,
        "archive/large.bin": 12 * 1024 * 1024 + 3,
    })
    for relative, size in files.items():
        path = base / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(relative, size))
    print(f"{len(files)} files under {base}")


if __name__ == "__main__":
    main(sys.argv[1])
