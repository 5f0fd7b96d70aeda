"""Fidelity benchmark on the shared real data (skipped when absent): landmark GT and the quick real checks."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from backend.fidelity.landmark_gt import read_aflw_mat, run_landmark_gt
from backend.fidelity.real_checks import run_real_checks

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


def test_aflw_mat_reader(realdata):
    gt, yaw = read_aflw_mat(realdata / "landmarks_gt" / "aflw2000_3d_prnet" / "image00050.mat")
    assert gt.shape == (68, 2) and np.all((gt > 0) & (gt < 450))
    assert abs(yaw) < 10  # a frontal image


def test_undetected_photo_counts_as_failure(realdata, tmp_path):
    """An AFLW annotation whose image shows no face is reported as a failure, not dropped."""
    folder = tmp_path / "landmarks_gt" / "aflw2000_3d_prnet"
    folder.mkdir(parents=True)
    src = realdata / "landmarks_gt" / "aflw2000_3d_prnet"
    for stem in ("image00050", "image00081"):
        shutil.copy(src / f"{stem}.mat", folder / f"{stem}.mat")
    shutil.copy(src / "image00050.jpg", folder / "image00050.jpg")
    import cv2

    cv2.imwrite(str(folder / "image00081.jpg"), np.full((450, 450, 3), 128, np.uint8))
    aflw = run_landmark_gt(tmp_path)["aflw2000_3d"]
    assert aflw["faces"] == 2 and aflw["failures"] == 1
    assert [i["detected"] for i in aflw["items"]] == [True, False]
    assert 0 < aflw["nme_bbox_mean"] < 10  # the frontal face's landmarks are close to the annotation


def test_quick_real_checks(realdata):
    torch.set_num_threads(1)
    results = run_real_checks(realdata, "quick")
    kinds = [r["check"] for r in results]
    assert kinds.count("expected units") == 2 and "left/right" in kinds and "identity halves" in kinds
    for r in results:
        assert isinstance(r["passed"], bool), r
        assert np.isfinite(r["measured"]) and r["threshold"] > 0 and r["detail"]
    smile = next(r for r in results if "smile" in r["subject"])
    assert smile["passed"], smile  # a broad smile photo must give a smile weight >= 0.3
