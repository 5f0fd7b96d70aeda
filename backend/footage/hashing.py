"""sha256 of footage files, streamed in chunks (never the whole file in memory)."""
from __future__ import annotations

import hashlib
import os
from typing import Iterable

__all__ = ["sha256_file", "sha256_files", "CHUNK_BYTES"]

CHUNK_BYTES = 1 << 20


def _update(h, path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK_BYTES)
            if not chunk:
                break
            h.update(chunk)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of one file's bytes (same as ``sha256sum``)."""
    h = hashlib.sha256()
    _update(h, path)
    return h.hexdigest()


def sha256_files(paths: Iterable[str | os.PathLike]) -> str:
    """Hex sha256 of an ordered list of files (an image sequence).

    Each file contributes its base name, a NUL, its size, a NUL, then its
    bytes, so renaming, reordering or editing any frame changes the digest.
    """
    h = hashlib.sha256()
    for p in paths:
        h.update(os.path.basename(os.fspath(p)).encode("utf-8", "surrogateescape") + b"\0")
        h.update(str(os.path.getsize(p)).encode("ascii") + b"\0")
        _update(h, p)
    return h.hexdigest()
