"""Trees of many small files for the benchmark rows, made once and reused."""


def spread_tree(root, files, dirs, body):
    """`files` files spread over `dirs` directories; `body(i)` is file i's content."""
    if root.exists():
        return
    for i in range(files):
        path = root / f"d{i % dirs:04d}" / f"f{i:07d}"
        if i < dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body(i))
