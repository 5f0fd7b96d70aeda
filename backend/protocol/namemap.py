"""Unit-name -> shape-key maps (standard library only; copied into the add-on).

A :class:`NameMap` decides which shape key of a character receives each of the
52 ARKit units.  Built-in maps (``auto``, ``arkit``, ``livelink``) match names
in any case and in the common spellings found on rigs::

    eyeBlinkLeft  EyeBlinkLeft  eyeblinkleft  EYE_BLINK_LEFT  eyeBlink_L
    eyeBlink.L    eyeBlink_l    blendShape1.eyeBlinkLeft  ARKit_eyeBlinkLeft

Ranking when several keys fit one unit: the exact preferred spelling
(camelCase for ``arkit``/``auto``, PascalCase for ``livelink``), then the
other exact spelling, then a case/separator-insensitive match, then a match
after a prefix (``ARKit_``, ``CC_Base_``...).  Each key serves at most one
unit in built-in maps.  A ``custom`` map is a JSON object ``{"eyeBlinkLeft":
"Blink_L", ...}`` (ARKit unit name -> shape-key name); only the listed units
are mapped, and each key receives at most one unit.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re

from .arkit import ARKIT_NAMES, INDEX, pascal
from .errors import FaceKeyError

__all__ = ["NameMap", "Resolution", "load_name_map", "normalize_name", "KINDS"]

KINDS = ("auto", "arkit", "livelink", "custom")

_SIDE_SUFFIX = re.compile(r"[._\-\s](l|r|left|right)$", re.IGNORECASE)
_NAMESPACE = re.compile(r"^.*[.:|/]")
_NON_ALNUM = re.compile(r"[^0-9a-z]")
_UNIT_KEYS = {n.lower(): i for i, n in enumerate(ARKIT_NAMES)}


def normalize_name(name: str) -> str:
    """Spelling-free key of a shape-key name: ``"blendShape1.eyeBlink_L"`` -> ``"eyeblinkleft"``."""
    side = ""
    m = _SIDE_SUFFIX.search(name)
    if m:
        side = "left" if m.group(1).lower().startswith("l") else "right"
        name = name[:m.start()]
    name = _NAMESPACE.sub("", name)
    return _NON_ALNUM.sub("", name.lower()) + side


@dataclasses.dataclass
class Resolution:
    """How the units of a take land on a character's shape keys.

    Attributes:
        mapping: unit index (ARKit order, 0..51) -> shape-key name.
        unmapped_units: ARKit names of units no shape key receives (ARKit order).
        unused_keys: shape-key names no unit drives (in the order given).
    """

    mapping: dict[int, str]
    unmapped_units: list[str]
    unused_keys: list[str]


@dataclasses.dataclass(frozen=True)
class NameMap:
    """A rule turning shape-key names into a :class:`Resolution`.

    Attributes:
        kind: one of :data:`KINDS`.
        custom: for ``custom`` maps, unit name -> shape-key name.
        path: the JSON file a custom map came from, for messages.
    """

    kind: str = "auto"
    custom: dict[str, str] | None = None
    path: str | None = None

    def resolve(self, shape_key_names: list[str]) -> Resolution:
        """Map units to the given shape keys (pass the keys without the reference/Basis key)."""
        names = list(shape_key_names)
        mapping = self._resolve_custom(names) if self.kind == "custom" else self._resolve_builtin(names)
        used = set(mapping.values())
        return Resolution(
            mapping=dict(sorted(mapping.items())),
            unmapped_units=[n for i, n in enumerate(ARKIT_NAMES) if i not in mapping],
            unused_keys=[k for k in names if k not in used],
        )

    def _resolve_custom(self, names: list[str]) -> dict[int, str]:
        exact = set(names)
        folded: dict[str, str] = {}
        for k in names:
            folded.setdefault(k.lower(), k)
        mapping, taken = {}, set()
        # exact names first, then names that differ only in case, each key to one unit (BLINK_L and Blink_L
        # in a map are two keys; with only Blink_L in the mesh, the unit named exactly gets it)
        for exact_pass in (True, False):
            for unit, key in (self.custom or {}).items():
                found = (key if key in exact else None) if exact_pass else folded.get(key.lower())
                if found is not None and INDEX[unit] not in mapping and found not in taken:
                    mapping[INDEX[unit]] = found
                    taken.add(found)
        return mapping

    def _resolve_builtin(self, names: list[str]) -> dict[int, str]:
        preferred = pascal if self.kind == "livelink" else (lambda n: n)
        other = (lambda n: n) if self.kind == "livelink" else pascal
        candidates: list[tuple[int, int, int, str]] = []  # (rank, key order, unit, key)
        for order, key in enumerate(names):
            norm = normalize_name(key)
            for unit_index, unit in enumerate(ARKIT_NAMES):
                if key == preferred(unit):
                    rank = 0
                elif key == other(unit):
                    rank = 1
                elif norm == unit.lower():
                    rank = 2
                elif norm.endswith(unit.lower()):
                    rank = 3
                else:
                    continue
                candidates.append((rank, order, unit_index, key))
        mapping: dict[int, str] = {}
        taken: set[str] = set()
        for _rank, _order, unit_index, key in sorted(candidates):
            if unit_index not in mapping and key not in taken:
                mapping[unit_index] = key
                taken.add(key)
        return mapping


def _invalid(path: str, what: str) -> FaceKeyError:
    return FaceKeyError(
        "name_map_invalid", f"Name map {path}: {what}.",
        'A name map is a JSON object from ARKit unit names to shape-key names, e.g. {"eyeBlinkLeft": "Blink_L"}.')


def load_name_map(kind: str = "auto", path: str | os.PathLike | None = None) -> NameMap:
    """Return the built-in map ``kind`` or, for ``custom``, the JSON map at ``path``.

    Custom unit names may be written in any case (``EyeBlinkLeft``) but must be
    ARKit units; raises ``name_map_invalid``, ``file_missing`` or ``bad_argument``.
    """
    if kind not in KINDS:
        raise FaceKeyError("bad_argument", f"Unknown name map kind {kind!r}.",
                           f"Use one of {', '.join(KINDS)} (custom needs a JSON file).")
    if kind != "custom":
        return NameMap(kind=kind)
    if path is None:
        raise FaceKeyError("bad_argument", "A custom name map needs a JSON file path.",
                           "Pass the path of a JSON file mapping ARKit unit names to shape-key names.")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FaceKeyError("file_missing", f"Name map file not found: {path}", "Check the path of the JSON name map.")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _invalid(path, f"is not valid JSON ({e})") from e
    if not isinstance(data, dict) or not data:
        raise _invalid(path, "must be a non-empty JSON object")
    custom: dict[str, str] = {}
    for unit, key in data.items():
        canonical = _UNIT_KEYS.get(unit.lower())
        if canonical is None:
            raise _invalid(path, f"{unit!r} is not an ARKit unit name")
        if not isinstance(key, str) or not key:
            raise _invalid(path, f"the value for {unit!r} must be a shape-key name (a non-empty string)")
        name = ARKIT_NAMES[canonical]
        if name in custom:
            raise _invalid(path, f"unit {name!r} is listed twice")
        other = next((u for u, k in custom.items() if k == key), None)
        if other is not None:
            raise _invalid(path, f"shape key {key!r} is named for both {other!r} and {name!r} (one unit per key)")
        custom[name] = key
    return NameMap(kind="custom", custom=custom, path=path)
