"""Footage: streaming decoding of videos, image sequences and photos.

``open_footage(path, max_side=None, fps=30.0)`` returns a :class:`Footage`
whose iteration yields :class:`Frame` (index, time in seconds, (H, W, 3)
uint8 RGB image in display orientation) one at a time.  See ``reader`` for
the rules (timestamps, rotation, truncated files, errors).
"""
from .hashing import sha256_file, sha256_files  # noqa: F401
from .orientation import Orientation, apply_orientation  # noqa: F401
from .reader import (IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Footage, FootageInfo, Frame, clip_files,  # noqa: F401
                     iter_frames, natural_sort_key, open_footage, scaled_size)

__all__ = ["open_footage", "iter_frames", "Footage", "FootageInfo", "Frame", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS",
           "clip_files",
           "Orientation", "apply_orientation", "sha256_file", "sha256_files", "natural_sort_key", "scaled_size"]
