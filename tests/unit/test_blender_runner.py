"""Which Blender runs FaceKey's Blender-side code (``backend.blender_runner``)."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from backend.blender_runner import _blender_command
from backend.protocol.errors import FaceKeyError


def test_a_named_blender_wins_and_an_empty_or_wrong_one_is_handled(tmp_path, monkeypatch):
    exe = tmp_path / "blender-4.2"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("FACEKEY_BLENDER", str(exe))
    assert _blender_command("s.py", [], None)[:2] == [str(exe), "-b"]               # over the bpy module
    assert _blender_command("s.py", [], str(exe))[0] == str(exe)
    monkeypatch.setenv("FACEKEY_BLENDER", str(tmp_path / "gone" / "blender"))
    with pytest.raises(FaceKeyError) as e:
        _blender_command("s.py", [], None)
    assert e.value.code == "blender_missing" and "FACEKEY_BLENDER" in e.value.message and "unset" in e.value.hint
    if importlib.util.find_spec("bpy") is not None:                                 # an empty variable names nothing
        monkeypatch.setenv("FACEKEY_BLENDER", "")
        assert _blender_command("s.py", [], None)[:2] == [sys.executable, "s.py"]
