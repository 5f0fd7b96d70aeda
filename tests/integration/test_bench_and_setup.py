"""The bake benchmark's two paths agree (the loop is the naive reference); the job benchmark's parts run
on one worker; the Set up backend job works."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from blender_fixtures import REPO, VENV_PYTHON

pytest.importorskip("bpy")


def test_bulk_bake_matches_the_keyframe_insert_reference():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_bake.py"), "--json", "--frames", "300",
                           "--keys", "6", "--slow-frames", "40"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["paths_agree_max_abs_diff"] <= 1e-6
    assert report["slow_frames"] == 40 and report["frames"] == 300 and report["keys"] == 6
    assert set(report["seconds"]) == {"bulk_at_slow_frames", "insert_loop_at_slow_frames", "bulk_at_frames"}


def test_job_benchmark_runs_a_sequence_and_jobs_in_a_row_on_one_worker():
    """bench_jobs: every ping and photo capture part succeeds both ways; the add-on's way starts one
    worker per job, the old way one per part; jobs in a row on the kept worker start it once."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_jobs.py"), "--json", "--parts", "2"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    want = {"own": 2, "shared": 1, "jobs_each": 2, "jobs_kept": 1}
    assert report["workers_started"] == {"ping": want, "capture": want}
    assert set(report["seconds_per_part"]) == set(report["seconds_per_job"]) == {"ping", "capture"}


def test_setup_job_creates_a_venv_with_the_bundled_wheel(run_scenario, tmp_path):
    res = run_scenario("setup_job", {"python": VENV_PYTHON, "env_dir": str(tmp_path / "env"),
                                     "log": str(tmp_path / "setup.log")})
    assert res["state"]["status"] == "done", res["state"]
    assert res["exists"] and res["resolved"] == res["python"]
    assert any(m.startswith("installed facekey") or m.startswith("processing") for m in res["messages"]), res["messages"]
    log = (tmp_path / "setup.log").read_text()
    assert "backend ok" in log and "-m venv" in log


def test_setup_refuses_what_would_fail_later_and_never_counts_a_half_setup(run_scenario, tmp_path):
    """Official Blender 3.4-4.0 ship Python 3.10: pip refused the 3.11 wheel only after the venv was made,
    with a hint blaming the network.  A PYTHONPATH made pip skip packages the backend then lacked.  A
    failed or cancelled set-up's python counted as a backend."""
    res = run_scenario("setup_checks", {"python": VENV_PYTHON, "tmp": str(tmp_path), "log": str(tmp_path / "s.log")})
    refused = res["refused"]
    assert refused["status"] == "error" and refused["code"] == "backend_missing" and not refused["env_made"]
    assert ">=3.99" in refused["message"] and "Backend Python" in refused["hint"]
    assert res["env"]
    # a damaged wheel, or a set-up thread that dies silently, ends the job (it stayed 'running' for good)
    assert res["stuck"] == [[True, "error", "file_missing"], [True, "error", "internal"]]
    assert res["half"][0] == "backend_missing" and "did not finish" in res["half"][1]
    assert res["fits"] == [True, False, False, True, False, True]
    # Preferences say whether a backend is there, and that Backend Python wins over the folder
    assert any(t.startswith("Backend: ") and "did not finish" in t for t in res["prefs_half"])
    assert any(t.startswith("Backend: ready") for t in res["prefs_ready"])
    assert any("Backend Python is used" in t for t in res["prefs_python"])
