"""Real Live Link Face recording onto the head it was made for: Import CSV keys all 51 keys, Export CSV round-trips."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from blender_fixtures import addon_zips, run_scenario  # noqa: E402,F401  (fixtures shared with the integration tests)

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

CSV = "blendshape_recordings/livelinkface_MySlate_3_Jason_Millers_iPhone.csv"
BLEND = "characters/jmtechart_Live_Link_Face_FBHead_arkit51.blend"


def _rows(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_livelink_csv_onto_fbhead_and_back(run_scenario, realdata, tmp_path):
    pytest.importorskip("bpy")
    src = realdata / CSV
    res = run_scenario("realdata_csv", {"blend": str(realdata / BLEND), "csv": str(src), "object": "FBHead",
                                        "export": str(tmp_path / "export.csv")})
    assert res["rc"] == ["FINISHED"], res["state"]
    assert res["num_keys"] == 51
    info = res["state"]["report"]["objects"]["FBHead"]
    assert len(info["mapped"]) == 51 and info["unmapped_units"] == ["tongueOut"] and info["unused_keys"] == []

    header, rows = _rows(src)
    values = np.array([[float(x) for x in r[2:]] for r in rows])
    assert len(res["evaluated"]) == 51
    for path, ev in res["evaluated"].items():
        name = path.split('"')[1]
        col = header.index(name) - 2
        assert len(ev["values"]) == len(rows)
        np.testing.assert_allclose(ev["values"], values[:, col], atol=1e-6, err_msg=name)

    assert res["export_rc"] == ["FINISHED"], res["export_state"]
    header2, rows2 = _rows(tmp_path / "export.csv")
    assert header2 == header
    assert [r[:2] for r in rows2] == [r[:2] for r in rows]  # timecodes and BlendShapeCount
    np.testing.assert_allclose(np.array([[float(x) for x in r[2:]] for r in rows2]), values, atol=1e-6)
    for name, curves in res["before"]["actions"].items():
        assert res["after"]["actions"][name] == curves
