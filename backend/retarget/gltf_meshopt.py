"""Unpack ``EXT_meshopt_compression`` in a binary glTF (.glb) so Blender's importer can read it.

Blender's glTF importer (bpy 5.0.1) refuses files that *require*
``EXT_meshopt_compression`` (VRoid / three.js exports often do).  This
module decodes every compressed bufferView with ``meshopt`` (a binding of
meshoptimizer's decoder, an optional dependency) and writes a plain .glb:
one binary buffer, the extension removed from ``extensionsUsed`` /
``extensionsRequired``, everything else (textures, morph targets, skins)
byte-for-byte the same.
"""
from __future__ import annotations

import json
import os
import struct

from ..protocol.errors import FaceKeyError

__all__ = ["needs_meshopt_unpack", "unpack_meshopt_glb"]

_EXT = "EXT_meshopt_compression"
_GLB_MAGIC, _JSON, _BIN = 0x46546C67, 0x4E4F534A, 0x004E4942


def _read_glb(path: str) -> tuple[dict, bytes]:
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 20 or struct.unpack_from("<I", data, 0)[0] != _GLB_MAGIC:
        raise FaceKeyError("bad_argument", f"{path} is not a binary glTF (.glb) file.",
                           "Export the character as .glb, or import a .gltf directly in Blender.")
    pos, doc, binary = 12, None, b""
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from("<II", data, pos)
        chunk = data[pos + 8: pos + 8 + length]
        if kind == _JSON:
            doc = json.loads(chunk.decode("utf-8"))
        elif kind == _BIN and not binary:
            binary = bytes(chunk)
        pos += 8 + length
    if doc is None:
        raise FaceKeyError("bad_argument", f"{path} has no JSON chunk.", "Re-export the character as .glb.")
    return doc, binary


def needs_meshopt_unpack(path: str | os.PathLike) -> bool:
    """True when the .glb at ``path`` uses ``EXT_meshopt_compression``."""
    doc, _ = _read_glb(os.fspath(path))
    return _EXT in doc.get("extensionsUsed", [])


def _pad4(b: bytes, fill: bytes = b"\0") -> bytes:
    return b + fill * ((-len(b)) % 4)


def unpack_meshopt_glb(src: str | os.PathLike, dst: str | os.PathLike) -> str:
    """Write ``dst``: the .glb ``src`` with every meshopt-compressed bufferView decoded; return ``dst``.

    Raises:
        FaceKeyError: ``bad_argument`` for a non-.glb file or external buffers;
        ``file_missing`` when the ``meshopt`` package is not installed.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    doc, binary = _read_glb(src)
    views = doc.get("bufferViews", [])
    if any(_EXT in v.get("extensions", {}) for v in views):
        try:
            import meshopt
        except ImportError as e:
            raise FaceKeyError("file_missing", f"{src} uses {_EXT}, and the 'meshopt' package is not installed.",
                               "pip install meshopt (in the backend environment), or re-export without meshopt compression.") from e
    for i, b in enumerate(doc.get("buffers", [])):
        if "uri" in b and not b.get("extensions", {}).get(_EXT, {}).get("fallback"):
            raise FaceKeyError("bad_argument", f"{src}: buffer {i} is an external file.",
                               "Pack the character into one .glb before importing.")
    out = bytearray()
    for v in views:
        ext = v.get("extensions", {}).get(_EXT)
        if ext is not None:
            if ext.get("buffer", 0) != 0:
                raise FaceKeyError("bad_argument", f"{src}: compressed data outside the .glb binary chunk.",
                                   "Pack the character into one .glb before importing.")
            raw = binary[ext.get("byteOffset", 0): ext.get("byteOffset", 0) + ext["byteLength"]]
            rows = meshopt.decode_gltf_buffer(raw, int(ext["count"]), int(ext["byteStride"]), ext["mode"],
                                              ext.get("filter", "NONE"))
            if ext["mode"] == "ATTRIBUTES":
                chunk = rows.tobytes()
            else:  # decoded indices: write them at the view's declared element size
                dtype = {2: "<u2", 4: "<u4"}[int(ext["byteStride"])]
                chunk = rows.astype(dtype).tobytes()
            v["extensions"].pop(_EXT)  # the view's own byteStride already equals the decoded stride
            if not v["extensions"]:
                v.pop("extensions")
        else:
            if v.get("buffer", 0) != 0:
                raise FaceKeyError("bad_argument", f"{src}: a bufferView points outside the .glb binary chunk.",
                                   "Pack the character into one .glb before importing.")
            chunk = binary[v.get("byteOffset", 0): v.get("byteOffset", 0) + v["byteLength"]]
        while len(out) % 4:
            out.append(0)
        v["buffer"], v["byteOffset"], v["byteLength"] = 0, len(out), len(chunk)
        out += chunk
    doc["buffers"] = [{"byteLength": len(out)}]
    for key in ("extensionsUsed", "extensionsRequired"):
        if key in doc:
            doc[key] = [e for e in doc[key] if e != _EXT]
            if not doc[key]:
                doc.pop(key)
    js = _pad4(json.dumps(doc, separators=(",", ":")).encode("utf-8"), b" ")
    bn = _pad4(bytes(out))
    body = struct.pack("<II", len(js), _JSON) + js + struct.pack("<II", len(bn), _BIN) + bn
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<III", _GLB_MAGIC, 2, 12 + len(body)) + body)
    os.replace(tmp, dst)
    return dst
