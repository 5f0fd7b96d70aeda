"""JSON-lines messages between the add-on (client) and the backend worker.

One message per line, UTF-8 JSON objects with a ``type`` field:

* worker -> client: ``hello`` {protocol, version, device}, ``progress``
  {id, done, total, message}, ``result`` {id, payload}, ``error`` {id, code,
  message, hint}, ``log`` {level, message}.
* client -> worker: ``request`` {id, op, args}, ``cancel`` {id},
  ``shutdown`` {}.

Arrays never travel inside JSON: a result names a Take file.
Standard library only: copied into the add-on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import FaceKeyError

__all__ = ["PROTOCOL_VERSION", "TYPES", "encode", "decode", "read_messages", "Progress"]

PROTOCOL_VERSION = 1

#: message type -> required fields
TYPES: dict[str, tuple[str, ...]] = {
    "hello": ("protocol", "version"),
    "request": ("id", "op", "args"),
    "progress": ("id", "done", "total", "message"),
    "result": ("id", "payload"),
    "error": ("id", "code", "message", "hint"),
    "cancel": ("id",),
    "log": ("level", "message"),
    "shutdown": (),
}


@dataclass(frozen=True)
class Progress:
    """One progress event: ``done`` of ``total`` units of work (frames), and a message."""

    done: int
    total: int
    message: str = ""


def encode(msg_type: str, **fields: Any) -> str:
    """Build one protocol line (with trailing newline); checks required fields."""
    if msg_type not in TYPES:
        raise ValueError(f"unknown message type {msg_type!r}")
    missing = [f for f in TYPES[msg_type] if f not in fields]
    if missing:
        raise ValueError(f"{msg_type} message lacks {missing}")
    return json.dumps({"type": msg_type, **fields}, separators=(",", ":")) + "\n"


def decode(line: str) -> dict:
    """Parse and check one protocol line; raise ``FaceKeyError('protocol')`` if malformed."""
    try:
        msg = json.loads(line)
    except json.JSONDecodeError as e:
        raise FaceKeyError("protocol", f"Malformed protocol line: {line[:200]!r}",
                           "The backend printed something that is not a message; see the log file.") from e
    if not isinstance(msg, dict) or msg.get("type") not in TYPES:
        raise FaceKeyError("protocol", f"Unknown protocol message: {line[:200]!r}",
                           "The add-on and the backend may be different versions: run Set up backend again.")
    missing = [f for f in TYPES[msg["type"]] if f not in msg]
    if missing:
        raise FaceKeyError("protocol", f"{msg['type']} message lacks {missing}",
                           "The add-on and the backend may be different versions: run Set up backend again.")
    return msg


def read_messages(stream, on_malformed):
    """The decoded messages of ``stream`` (binary, one protocol line each), in order; a blank line is
    skipped, a malformed one goes to ``on_malformed(FaceKeyError)`` and is skipped.  Ends with the stream."""
    for raw in stream:
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        try:
            msg = decode(text)
        except FaceKeyError as e:
            on_malformed(e)
            continue
        yield msg
