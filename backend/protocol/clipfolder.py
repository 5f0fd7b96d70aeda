"""Folders of footage: which files are frames of an image sequence and which are video clips.

A folder that holds image files (:data:`IMAGE_EXTENSIONS`) is one footage,
an image sequence read in natural order (``f2`` before ``f10``).  A folder
that holds video files (:data:`VIDEO_EXTENSIONS`) and no images is a *folder
of clips*: the CLI and the panel capture each clip into its own take.
Only files directly in the folder count; hidden files (``.name``) never do.
Standard library only: the add-on reads it too.
"""
from __future__ import annotations

import os
import re
from typing import Optional

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "natural_sort_key", "folder_files", "clip_files"]

#: File name endings read as still images (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".webp", ".tif", ".tiff")
#: File name endings of the clips in a folder of clips (case-insensitive); a single video file is
#: opened whatever its name, by what FFmpeg finds in it.
VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".mts", ".m2ts", ".wmv",
                    ".mxf")


def natural_sort_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``f2.png`` < ``f10.png``."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), p) if p.isdigit() else (1, p.lower(), p) for p in parts)


def folder_files(folder: str | os.PathLike, suffixes: tuple[str, ...]) -> list[str]:
    """Paths of the files directly in ``folder`` whose names end in one of ``suffixes`` (any case),
    hidden files left out, in natural order of their names."""
    return sorted((e.path for e in os.scandir(os.fspath(folder))
                   if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(suffixes)),
                  key=lambda p: natural_sort_key(os.path.basename(p)))


def clip_files(folder: str | os.PathLike) -> Optional[list[str]]:
    """Absolute paths of the clips of a folder of clips, in natural order; None when ``folder`` is not
    a directory, holds image files (an image sequence) or holds no video file."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder) or folder_files(folder, IMAGE_EXTENSIONS):
        return None
    return [os.path.abspath(p) for p in folder_files(folder, VIDEO_EXTENSIONS)] or None
