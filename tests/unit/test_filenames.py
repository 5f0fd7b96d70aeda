"""File names FaceKey makes from a user's clip and object names."""
from __future__ import annotations

from backend.protocol.filenames import STEM_BYTES, file_stem


def test_names_become_file_names_on_every_system(tmp_path):
    assert file_stem("Body/Face") == "Body_Face" and file_stem("mixamorig:Head") == "mixamorig_Head"
    assert file_stem("My take 2") == "My take 2" and file_stem("Visage é") == "Visage é"
    assert file_stem("..") == "take" and file_stem(" x. ") == "x"
    long_a, long_b = "Visage_" + "é" * 120, "Visage_" + "é" * 119 + "e"     # 247 bytes: Blender 5 allows it
    a, b = file_stem(long_a), file_stem(long_b)
    assert len(a.encode()) <= STEM_BYTES and len(b.encode()) <= STEM_BYTES and a != b
    (tmp_path / f"{a}_rest.npz").write_bytes(b"")                           # "File name too long" before
    a.encode().decode()                                                     # cut on a character boundary


def test_names_read_from_disk_and_windows_device_names(tmp_path):
    """A Latin-1 clip name in a UTF-8 folder (surrogates) raised UnicodeEncodeError; 'CON' or 'nul' is a
    device on Windows, not a file."""
    import os
    assert file_stem(os.fsdecode(b"caf\xe9 clip")) == "caf\ufffd clip"
    assert file_stem("CON") == "CON_" and file_stem("nul") == "nul_" and file_stem("COM1.take") == "COM1_.take"
    assert file_stem("Console") == "Console" and file_stem("LPT9x") == "LPT9x"
