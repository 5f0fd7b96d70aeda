"""Folders of takes, for batch retargeting: which files count as takes, and reading either kind.

A take folder holds FaceKey Take files (``.npz``, from ``facekey capture``)
and Live Link Face recordings (``.csv``), in any mix.  Sub-folders and hidden
files (``.name``) are not read.
"""
from __future__ import annotations

import os

from .errors import FaceKeyError
from .livelink import read_livelink_csv
from .take import Take, read_take

__all__ = ["TAKE_SUFFIXES", "take_files", "read_any_take"]

#: File name endings (lower case) of the takes in a folder.
TAKE_SUFFIXES = (".npz", ".csv")


def take_files(folder: str | os.PathLike) -> list[str]:
    """Absolute paths of the take files directly in ``folder``, sorted by name.

    Raises:
        FaceKeyError: ``file_missing`` when the folder does not exist or holds no take; ``bad_argument``
        when two takes share a name (``a.npz`` and ``a.csv``): everything made from a take is named after
        it (its action, key take, point cache), so one would overwrite or shadow the other.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FaceKeyError("file_missing", f"Take folder not found: {folder}",
                           "Pass a folder that holds Take .npz files or Live Link Face .csv files.")
    names = sorted(n for n in os.listdir(folder)
                   if not n.startswith(".") and n.lower().endswith(TAKE_SUFFIXES)
                   and os.path.isfile(os.path.join(folder, n)))
    if not names:
        raise FaceKeyError("file_missing", f"No takes in {folder}: no {' or '.join(TAKE_SUFFIXES)} files.",
                           "Capture footage with `facekey capture CLIP -o FOLDER/take.npz`, or copy Live Link "
                           "Face .csv recordings into the folder.")
    seen: dict[str, str] = {}
    for n in names:
        stem = os.path.splitext(n)[0]
        if stem.lower() in seen:
            raise FaceKeyError("bad_argument", f"{seen[stem.lower()]} and {n} in {folder} are two takes of one name: "
                               "what is made from them (actions, key takes, point caches) would be named alike, "
                               "and one would overwrite the other.",
                               "Rename one of them, or move it to another folder.")
        seen[stem.lower()] = n
    return [os.path.abspath(os.path.join(folder, n)) for n in names]


def read_any_take(path: str | os.PathLike) -> Take:
    """A Take from a Take ``.npz`` or a Live Link Face ``.csv`` (chosen by the file ending)."""
    path = os.fspath(path)
    return read_livelink_csv(path) if path.lower().endswith(".csv") else read_take(path)
