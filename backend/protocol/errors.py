"""The one error class users can act on.

Every failure a user can fix is raised as :class:`FaceKeyError` with a stable
``code`` (machine-readable, travels over the protocol) and a ``hint`` that says
what to do.  Anything else is a bug and is reported with its traceback.

This module imports only the standard library: it is copied into the add-on.
"""
from __future__ import annotations

__all__ = ["FaceKeyError", "CODES"]

#: Stable error codes and what they mean.  Add, never rename.
CODES = {
    "file_missing": "an input file does not exist",
    "video_unreadable": "a video or image could not be decoded",
    "video_empty": "a clip has no frames",
    "no_face": "no face was found in any frame",
    "take_invalid": "a Take file failed validation",
    "write_failed": "an output file could not be written (a folder in the way, no permission, disk full)",
    "csv_invalid": "a Live Link Face CSV could not be parsed",
    "name_map_invalid": "a name map file is malformed",
    "no_shape_keys": "a target object has no shape keys",
    "no_targets": "no target objects were given",
    "object_missing": "a named object does not exist in the .blend",
    "backend_missing": "the backend environment is not set up",
    "backend_died": "the backend process exited unexpectedly",
    "backend_timeout": "the backend did not answer in time",
    "protocol": "a malformed protocol message",
    "cancelled": "the user cancelled the job",
    "weights_missing": "a model weights file is missing",
    "weights_invalid": "a model weights file has wrong names or shapes",
    "bad_argument": "an argument has an invalid value",
    "blender_missing": "no Blender (bpy module or blender binary) was found",
    "blender_failed": "a Blender run failed",
    "face_not_found": "the face of a character mesh could not be located (orientation, units)",
    "internal": "an unexpected error (a bug): see the log",
}


class FaceKeyError(Exception):
    """An error with a code and a hint the user can act on.

    Args:
        code: one of :data:`CODES`.
        message: what went wrong, naming the offending file/field/value.
        hint: what the user should do about it.
    """

    def __init__(self, code: str, message: str, hint: str = ""):
        if code not in CODES:
            raise ValueError(f"unknown FaceKeyError code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message

    def to_dict(self) -> dict:
        """JSON-ready form used by the protocol's ``error`` message."""
        return {"code": self.code, "message": self.message, "hint": self.hint}

    @classmethod
    def from_dict(cls, d: dict) -> "FaceKeyError":
        code = d.get("code", "internal")
        return cls(code if code in CODES else "internal", str(d.get("message", "")), str(d.get("hint", "")))
