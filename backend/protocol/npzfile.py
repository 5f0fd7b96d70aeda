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
import tempfile
import zipfile

import numpy as np

from .errors import FaceKeyError

__all__ = ["HEADER_KEY", "atomic_savez", "load_npz"]

HEADER_KEY = "header_json"


def atomic_savez(path: str | os.PathLike, arrays: dict, header: dict) -> str:
    """Write ``arrays`` + ``header`` to ``path`` via a temp file and ``os.replace``; return the path."""
    path = os.fspath(path)
    arrays = dict(arrays)
    arrays[HEADER_KEY] = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".fk-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


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
            data = f.read()
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
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
