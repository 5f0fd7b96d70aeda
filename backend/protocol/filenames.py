"""File names made from names a user chose (clips, objects): valid on every system, never too long."""
from __future__ import annotations

import hashlib
import re

__all__ = ["file_stem", "STEM_BYTES"]

#: Longest stem made from a user's name, in bytes of UTF-8 (a file name holds 255 on most systems).
STEM_BYTES = 100


def file_stem(name: str) -> str:
    """``name`` as a file-name stem on any system: the characters a file name cannot hold on Windows,
    macOS or Linux become '_' ('Body/Face', 'mixamorig:Head'), leading and trailing dots and spaces go,
    a Windows device name gets a '_' ('CON' -> 'CON_'), bytes that are not UTF-8 (a Latin-1 name read
    from disk) become U+FFFD, and a name longer than :data:`STEM_BYTES` is cut and keeps a short hash of
    the whole, so two long names stay apart.  An empty result is "take"."""
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    stem = re.sub(r'[<>:"/\\|?*\x00-\x1f]+', "_", name).strip(". ") or "take"
    if re.fullmatch(r"(CON|PRN|AUX|NUL|COM\d|LPT\d)(\..*)?", stem, re.IGNORECASE):
        stem = stem.split(".", 1)[0] + "_" + stem[len(stem.split(".", 1)[0]):]
    if len(stem.encode()) <= STEM_BYTES:
        return stem
    cut = stem.encode()[:STEM_BYTES - 9].decode(errors="ignore")
    return f"{cut}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"
