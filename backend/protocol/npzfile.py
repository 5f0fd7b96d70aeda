"""Versioned ``.npz`` files with a JSON header: atomic write, strict read.

Shared by Take (``take``) and the retarget files (``keytake``).  Arrays are
stored without pickles; the header is UTF-8 JSON in a uint8 array under
``header_json`` and carries ``schema`` and ``schema_version``.
numpy + standard library only: copied into the add-on.
"""
from __future__ import annotations

import io
import json
import os
import uuid
import zipfile

import numpy as np

from .errors import FaceKeyError

__all__ = ["HEADER_KEY", "atomic_write", "atomic_savez", "load_npz"]

HEADER_KEY = "header_json"


def atomic_write(path: str | os.PathLike, write, suffix: str) -> str:
    """Write a file through ``write(binary file)`` into a temp file beside ``path``, then ``os.replace`` it
    onto ``path``: a reader never sees half a file, and a failed write leaves no temp file and ``path`` as it
    was.  The new file gets the permissions of any other new file (0666 less the umask), not the temp file's
    0600.  Returns the path; ``write_failed`` names the path when the system refuses (a folder there, no
    permission, disk full)."""
    path = os.fspath(path)
    tmp = None
    try:
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".fk-{uuid.uuid4().hex[:12]}{suffix}")    # short: any name fits
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise FaceKeyError("write_failed", f"Could not write {path}: {e.strerror or e}.",
                           "Check that the output is a file name in a folder you can write to (not a folder "
                           "itself) and that the disk has room.") from e
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_savez(path: str | os.PathLike, arrays: dict, header: dict) -> str:
    """Write ``arrays`` + ``header`` to ``path`` (:func:`atomic_write`); return the path."""
    arrays = dict(arrays)
    arrays[HEADER_KEY] = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), np.uint8)
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays), ".npz.tmp")


def load_npz(path: str | os.PathLike, kind: str, schema: str, version: int, recreate: str) -> tuple[dict, dict]:
    """Read ``path`` as a ``kind`` file of ``schema`` (versions 1..``version``).

    Returns (arrays, header).  Raises FaceKeyError: ``file_missing``, or
    ``take_invalid`` naming what is wrong (unreadable, no/invalid header, other
    schema, newer version); ``recreate`` is the hint for making the file again.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FaceKeyError("file_missing", f"{kind} file not found: {path}", f"Check the path, or {recreate}.")
    try:
        with open(path, "rb") as f:
            data = io.BytesIO(f.read())       # read once: a file replaced meanwhile is never half one, half the other
    except OSError as e:
        raise FaceKeyError("take_invalid", f"{path} is not a readable {kind} file ({e}).",
                           recreate[:1].upper() + recreate[1:] + ".") from e
    if not zipfile.is_zipfile(data):
        raise FaceKeyError("take_invalid", f"{path} is not a {kind} file (not an .npz archive).",
                           recreate[:1].upper() + recreate[1:] + ".")
    data.seek(0)                              # is_zipfile leaves it at the end
    try:
        with np.load(data, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise FaceKeyError("take_invalid", f"{path} is not a readable {kind} file ({e}).", recreate[:1].upper() + recreate[1:] + ".") from e
    bad = FaceKeyError("take_invalid", f"{kind} field 'header' is missing or not valid JSON ({path} is not a FaceKey {kind} file).",
                       recreate[:1].upper() + recreate[1:] + ".")
    if HEADER_KEY not in arrays:
        raise bad
    try:
        header = json.loads(arrays.pop(HEADER_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad from e
    if not isinstance(header, dict) or header.get("schema") != schema:
        found = header.get("schema") if isinstance(header, dict) else None
        raise FaceKeyError("take_invalid", f"{kind} field 'header' has schema {found!r}, expected {schema!r}.",
                           recreate[:1].upper() + recreate[1:] + ".")
    v = header.get("schema_version")
    if not isinstance(v, int) or not 1 <= v <= version:
        raise FaceKeyError("take_invalid", f"{kind} schema version {v!r} is not supported (this FaceKey reads up to {version}).",
                           "Update FaceKey to read files written by a newer version.")
    return arrays, header
