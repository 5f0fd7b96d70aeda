"""Retarget hand-off files: a character's shape keys (``CharacterKeys``) and a take of its own key values (``KeyTake``).

* ``CharacterKeys`` (``.npz``): written by the add-on from a mesh object,
  read by the backend's character solve.  Rest vertices, triangles and
  per-key vertex deltas, in metres in the head frame (x = character's left,
  y = up, z = out of the face; from Blender, a character facing -Y:
  head (x, y, z) = Blender (X, Z, -Y)), plus optional anchor vertex sets.
* ``KeyTake`` (``.npz``): per-frame values of the character's own shape keys,
  written by the solve, baked by the add-on.

Both are written atomically (temp file + ``os.replace``) and read with strict
validation: every problem is a :class:`FaceKeyError` naming the field.
numpy + standard library only: copied into the add-on.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from .errors import FaceKeyError
from .npzfile import atomic_savez, load_npz

__all__ = ["KeyTake", "CharacterKeys", "ANCHOR_NAMES", "write_key_take", "read_key_take",
           "write_character_keys", "read_character_keys"]

KEY_TAKE_SCHEMA = "facekey.keytake"
CHARACTER_SCHEMA = "facekey.characterkeys"
SCHEMA_VERSION = 1
#: Anchor sets a character may carry (vertex indices picked by the user): eye centres and mouth centre.
ANCHOR_NAMES = ("eye_left", "eye_right", "mouth")


def _bad(kind: str, field: str, what: str) -> None:
    raise FaceKeyError("take_invalid", f"{kind} field '{field}' {what}.",
                       "Re-create the file with FaceKey (measure the character / solve again); do not edit it by hand.")


def _check(kind, field, a, shape, dtype_kind, lo=None, hi=None) -> tuple:
    if not isinstance(a, np.ndarray):
        _bad(kind, field, f"must be a numpy array, got {type(a).__name__}")
    if not np.issubdtype(a.dtype, dtype_kind):
        _bad(kind, field, f"has dtype {a.dtype}")
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        _bad(kind, field, f"has shape {a.shape}, expected {tuple('*' if s is None else s for s in shape)}")
    if dtype_kind is np.floating and not np.all(np.isfinite(a)):
        _bad(kind, field, "contains NaN or infinite values")
    if a.size and lo is not None and (a.min() < lo or a.max() > hi):
        _bad(kind, field, f"values must lie in [{lo}, {hi}], found [{a.min():.4g}, {a.max():.4g}]")
    return a.shape


@dataclasses.dataclass
class KeyTake:
    """Per-frame values of a character's own shape keys.

    Attributes:
        key_names: (K,) shape-key names on the character.
        values: (T, K) float32 in [0, 1].
        timestamps: (T,) float64 seconds, strictly increasing.
        valid: (T,) bool; invalid frames get no key when baked.
        fps: nominal frames per second (> 0).
        header: JSON-able dict (source take, object, solve report, ...).
    """

    key_names: tuple
    values: np.ndarray
    timestamps: np.ndarray
    valid: np.ndarray
    fps: float
    header: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> "KeyTake":
        names = tuple(self.key_names)
        if not names or any(not isinstance(n, str) or not n for n in names) or len(set(names)) != len(names):
            _bad("KeyTake", "key_names", "must be distinct non-empty strings")
        t, _ = _check("KeyTake", "values", self.values, (None, len(names)), np.floating, 0.0, 1.0)
        _check("KeyTake", "timestamps", self.timestamps, (t,), np.floating)
        _check("KeyTake", "valid", self.valid, (t,), np.bool_)
        if t == 0:
            _bad("KeyTake", "values", "has zero frames")
        if t > 1 and not np.all(np.diff(self.timestamps) > 0):
            _bad("KeyTake", "timestamps", "must be strictly increasing")
        if not (np.isfinite(self.fps) and self.fps > 0):
            _bad("KeyTake", "fps", f"must be a positive number, got {self.fps!r}")
        if not isinstance(self.header, dict):
            _bad("KeyTake", "header", "must be a dict")
        return self


@dataclasses.dataclass
class CharacterKeys:
    """A character mesh's rest shape and what each of its shape keys does.

    Attributes:
        object_name: the Blender object it was measured from.
        key_names: (K,) shape-key names (Basis excluded).
        rest: (N, 3) float32 metres, head frame.
        triangles: (F, 3) int32 vertex indices.
        deltas: (K, N, 3) float32 metres, head frame: key at value 1 minus rest.
        anchors: anchor name (one of :data:`ANCHOR_NAMES`) -> (M,) int32 vertex indices.
        header: JSON-able dict (source file, ...).
    """

    object_name: str
    key_names: tuple
    rest: np.ndarray
    triangles: np.ndarray
    deltas: np.ndarray
    anchors: dict = dataclasses.field(default_factory=dict)
    header: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> "CharacterKeys":
        names = tuple(self.key_names)
        if len(set(names)) != len(names) or any(not isinstance(n, str) or not n for n in names):
            _bad("CharacterKeys", "key_names", "must be distinct non-empty strings")
        n, _ = _check("CharacterKeys", "rest", self.rest, (None, 3), np.floating)
        _check("CharacterKeys", "triangles", self.triangles, (None, 3), np.integer, 0, max(n - 1, 0))
        _check("CharacterKeys", "deltas", self.deltas, (len(names), n, 3), np.floating)
        for name, idx in self.anchors.items():
            if name not in ANCHOR_NAMES:
                _bad("CharacterKeys", "anchors", f"has unknown anchor {name!r} (known: {', '.join(ANCHOR_NAMES)})")
            _check("CharacterKeys", f"anchors.{name}", idx, (None,), np.integer, 0, max(n - 1, 0))
            if idx.size == 0:
                _bad("CharacterKeys", f"anchors.{name}", "is empty")
        return self


def _load(path: str, kind: str, schema: str) -> tuple[dict, dict]:
    return load_npz(path, kind, schema, SCHEMA_VERSION, "create it again with FaceKey")


def _need(arrays: dict, kind: str, *names: str) -> None:
    for n in names:
        if n not in arrays:
            _bad(kind, n, "is missing")


def write_key_take(path: str | os.PathLike, kt: KeyTake) -> str:
    """Validate and write ``kt`` atomically; return the path as str."""
    kt.validate()
    header = dict(kt.header, schema=KEY_TAKE_SCHEMA, schema_version=SCHEMA_VERSION, fps=float(kt.fps),
                  key_names=list(kt.key_names))
    return atomic_savez(path, {
        "values": np.ascontiguousarray(kt.values, np.float32), "timestamps": np.ascontiguousarray(kt.timestamps, np.float64),
        "valid": np.ascontiguousarray(kt.valid, np.bool_)}, header)


def read_key_take(path: str | os.PathLike) -> KeyTake:
    """Read and strictly validate a KeyTake file; raise ``FaceKeyError`` on any problem."""
    arrays, header = _load(os.fspath(path), "KeyTake", KEY_TAKE_SCHEMA)
    _need(arrays, "KeyTake", "values", "timestamps", "valid")
    names = header.get("key_names")
    if not isinstance(names, list):
        _bad("KeyTake", "header.key_names", "is missing")
    fps = header.get("fps")
    if not isinstance(fps, (int, float)):
        _bad("KeyTake", "fps", "is missing from the header")
    return KeyTake(tuple(names), arrays["values"], arrays["timestamps"], arrays["valid"], float(fps), header).validate()


def write_character_keys(path: str | os.PathLike, ck: CharacterKeys) -> str:
    """Validate and write ``ck`` atomically; return the path as str."""
    ck.validate()
    header = dict(ck.header, schema=CHARACTER_SCHEMA, schema_version=SCHEMA_VERSION, object_name=ck.object_name,
                  key_names=list(ck.key_names), anchors=sorted(ck.anchors))
    arrays = {"rest": np.ascontiguousarray(ck.rest, np.float32), "triangles": np.ascontiguousarray(ck.triangles, np.int32),
              "deltas": np.ascontiguousarray(ck.deltas, np.float32)}
    for name, idx in ck.anchors.items():
        arrays[f"anchor_{name}"] = np.ascontiguousarray(idx, np.int32)
    return atomic_savez(path, arrays, header)


def read_character_keys(path: str | os.PathLike) -> CharacterKeys:
    """Read and strictly validate a CharacterKeys file; raise ``FaceKeyError`` on any problem."""
    arrays, header = _load(os.fspath(path), "CharacterKeys", CHARACTER_SCHEMA)
    _need(arrays, "CharacterKeys", "rest", "triangles", "deltas")
    names, anchor_names = header.get("key_names"), header.get("anchors", [])
    if not isinstance(names, list) or not isinstance(anchor_names, list):
        _bad("CharacterKeys", "header.key_names", "is missing")
    for a in anchor_names:
        _need(arrays, "CharacterKeys", f"anchor_{a}")
    anchors: dict[str, np.ndarray] = {a: arrays[f"anchor_{a}"] for a in anchor_names}
    return CharacterKeys(str(header.get("object_name", "")), tuple(names), arrays["rest"], arrays["triangles"],
                         arrays["deltas"], anchors, header).validate()
