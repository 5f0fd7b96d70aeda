"""Point Cache 2 (.pc2) files, read by Blender's Mesh Cache modifier (format 'PC2').

Layout (little endian): 12-byte signature ``b"POINTCACHE2\\0"``, int32 version
(1), int32 number of points, float32 start frame, float32 sample rate (frames
per sample), int32 number of samples; then ``samples x points x 3`` float32
positions.  Blender reads the positions as the object's local vertex
coordinates in vertex order (no axis change for PC2).

numpy + standard library only: copied into the add-on.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .errors import FaceKeyError
from .npzfile import atomic_write

__all__ = ["write_pc2", "read_pc2", "SIGNATURE"]

SIGNATURE = b"POINTCACHE2\0"
_HEADER = struct.Struct("<12siiffi")


def write_pc2(path: str | Path, frames: np.ndarray, start_frame: float = 1.0, sample_rate: float = 1.0) -> Path:
    """Write (T, N, 3) vertex positions (object-local units) atomically to ``path``.

    Args:
        path: output file (folders created).
        frames: (T, N, 3) finite positions, T >= 1.
        start_frame: scene frame of the first sample.
        sample_rate: frames between samples.
    """
    f = np.asarray(frames, np.float32)
    if f.ndim != 3 or f.shape[2] != 3 or f.shape[0] < 1:
        raise FaceKeyError("bad_argument", f"frames must have shape (T>=1, N, 3), got {f.shape}",
                           "Pass per-frame vertex positions.")
    if not np.all(np.isfinite(f)):
        raise FaceKeyError("bad_argument", "frames contain NaN or infinite positions",
                           "Fill invalid frames before writing a cache.")
    def write(fh) -> None:
        fh.write(_HEADER.pack(SIGNATURE, 1, f.shape[1], float(start_frame), float(sample_rate), f.shape[0]))
        fh.write(f.astype("<f4").tobytes())

    return Path(atomic_write(path, write, ".pc2.tmp"))


def read_pc2(path: str | Path) -> tuple[np.ndarray, float, float]:
    """Read a .pc2 file -> ``(frames (T, N, 3) float32, start_frame, sample_rate)``."""
    p = Path(path)
    if not p.is_file():
        raise FaceKeyError("file_missing", f"Point cache not found: {p}", "Check the path.")
    data = p.read_bytes()
    if len(data) < _HEADER.size:
        raise FaceKeyError("bad_argument", f"{p} is too short for a PC2 header", "Pass a .pc2 file.")
    sig, version, n, start, rate, t = _HEADER.unpack_from(data)
    if sig != SIGNATURE or version != 1:
        raise FaceKeyError("bad_argument", f"{p} is not a PC2 version 1 file", "Pass a .pc2 file.")
    if len(data) != _HEADER.size + t * n * 12:
        raise FaceKeyError("bad_argument", f"{p}: size does not match {t} samples of {n} points",
                           "The file is truncated; write it again.")
    return np.frombuffer(data, "<f4", offset=_HEADER.size).reshape(t, n, 3).copy(), float(start), float(rate)
