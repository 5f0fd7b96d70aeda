"""Fidelity benchmark: metric functions against naive references, readers, the quick synthetic run, CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from backend.cli import app
from backend.estimators.camera import project
from backend.facemodel import load_face_model
from backend.fidelity.landmark_gt import INNER_POINTS, bbox_size, interocular, nme, read_dlib_xml, read_pts
from backend.fidelity.report import fidelity_table, run_fidelity, write_report
from backend.fidelity.synthetic_scores import (EVAL_UNITS, exclusive_violation_rate, held_jitter,
                                               neutral_distance_mm, reshoot, rotation_error_deg, synthetic_cases,
                                               unit_correlation, weight_errors)
from backend.protocol.arkit import INDEX
from backend.protocol.errors import FaceKeyError
from backend.protocol.rotations import ypr_to_quat
from backend.synthetic import make_clip


def test_weight_errors_and_correlation_match_naive_loops():
    rng = np.random.default_rng(0)
    true = rng.uniform(0, 1, (30, 52))
    est = np.clip(true + rng.normal(0, 0.1, true.shape), 0, 1)
    est[:, INDEX["jawOpen"]] = 0.4  # constant estimate: correlation undefined
    overall, per_unit = weight_errors(est, true)
    naive = [sum(abs(est[t, u] - true[t, u]) for t in range(30)) / 30 for u in range(52)]
    np.testing.assert_allclose(per_unit, naive)
    assert overall == pytest.approx(np.mean([naive[u] for u in EVAL_UNITS]))
    corr = unit_correlation(est, true)
    assert math.isnan(corr[INDEX["jawOpen"]])
    for u in (0, 10, 40):
        assert corr[u] == pytest.approx(np.corrcoef(est[:, u], true[:, u])[0, 1])


def test_rotation_error_is_the_relative_angle():
    q0 = ypr_to_quat(np.zeros(3), np.zeros(3), np.zeros(3))
    q1 = ypr_to_quat(np.radians([10.0, -25.0, 0.0]), np.zeros(3), np.zeros(3))
    np.testing.assert_allclose(rotation_error_deg(q1, q0), [10.0, 25.0, 0.0], atol=1e-6)
    q2 = ypr_to_quat(np.radians([30.0] * 3), np.radians([5.0] * 3), np.zeros(3))
    q3 = ypr_to_quat(np.radians([30.0] * 3), np.radians([5.0] * 3), np.radians([2.0] * 3))
    np.testing.assert_allclose(rotation_error_deg(q2, q3), 2.0, atol=1e-6)


def test_neutral_distance_in_millimetres():
    m = load_face_model()
    a = np.zeros(m.num_identity, np.float32)
    assert neutral_distance_mm(a, None) == pytest.approx(0.0, abs=1e-6)
    b = a.copy()
    b[0] = 1.0  # one std of face width
    expect = np.linalg.norm(m.identity_basis[0, :468], axis=1).mean() * 1000
    assert neutral_distance_mm(b, a) == pytest.approx(expect, rel=1e-5)
    assert neutral_distance_mm(a, b) == pytest.approx(neutral_distance_mm(b, a))


def test_exclusive_violations_count_frames_with_both_units_up():
    w = np.zeros((4, 52))
    w[0, [INDEX["eyeBlinkLeft"], INDEX["eyeWideLeft"]]] = 0.5     # violation
    w[1, [INDEX["eyeBlinkLeft"], INDEX["eyeWideRight"]]] = 0.5    # not a pair
    w[2, [INDEX["mouthSmileLeft"], INDEX["mouthFrownLeft"]]] = (0.9, 0.1)  # one below the level
    w[3, [INDEX["jawLeft"], INDEX["jawRight"]]] = 0.3             # violation
    assert exclusive_violation_rate(w) == 0.5


def test_held_jitter_only_counts_frames_where_truth_holds():
    t = 6
    true_w = np.zeros((t, 52))
    true_w[3:, 5] = np.linspace(0.1, 0.6, 3)  # frames 3..5 move
    est_w = true_w.copy()
    est_w[1, 7] = 0.052  # held frames 0-1-2 jitter on unit 7
    q = ypr_to_quat(np.zeros(t), np.zeros(t), np.zeros(t))
    est_q = ypr_to_quat(np.radians([0, 0, 1.0, 1.0, 1.0, 1.0]), np.zeros(t), np.zeros(t))
    dw, dr, n = held_jitter(est_w, true_w, est_q, q, np.ones(t, bool))
    assert n == 2  # pairs (0,1) and (1,2); (2,3) moves in truth
    assert dw == pytest.approx(2 * 0.052 / len(EVAL_UNITS) / 2)
    assert dr == pytest.approx(0.5, abs=1e-6)
    valid = np.ones(t, bool)
    valid[1] = False
    assert held_jitter(est_w, true_w, est_q, q, valid)[2] == 0


def test_detail_scale_gives_actors_shape_beyond_the_solver_components():
    from backend.facemodel import load_face_model
    from backend.facemodel.identity import is_detail

    detail = np.array([is_detail(n) for n in load_face_model().identity_names])
    _, plain = make_clip(seed=4, num_frames=3)
    _, rich = make_clip(seed=4, num_frames=3, detail_scale=0.3)
    assert np.all(plain["identity"][detail] == 0) and np.abs(plain["identity"][~detail]).max() > 0.5
    np.testing.assert_allclose(rich["identity"][~detail], plain["identity"][~detail])
    assert 0.05 < np.abs(rich["identity"][detail]).mean() < 0.6


def test_reshoot_changes_perspective_not_face_size():
    track, truth = make_clip(seed=4, num_frames=5, noise_px=0.0)
    same, same_truth = reshoot(track, truth, 60.0, 0.0, seed=1)  # the generator's own lens
    np.testing.assert_allclose(same.landmarks, track.landmarks, atol=1e-3)
    wide, wide_truth = reshoot(track, truth, 80.0, 0.0, seed=1)
    width = lambda lm: np.linalg.norm(lm[:, 454, :2] - lm[:, 234, :2], axis=1)  # noqa: E731
    np.testing.assert_allclose(width(wide.landmarks), width(track.landmarks), rtol=0.03)
    assert np.abs(wide.landmarks - track.landmarks).max() > 0.5
    assert wide.focal_px is None and wide_truth["focal_px"] < truth["focal_px"]
    reproj = project(wide_truth["vertices"], wide_truth["focal_px"], track.image_size)
    np.testing.assert_allclose(wide.landmarks, reproj, atol=1e-3)


def test_cases_cover_the_issue_ranges():
    cases = synthetic_cases("default")
    yaws = {c.config.max_yaw_deg for c in cases if c.group == "pose"}
    assert max(yaws) == 60.0 and len(yaws) >= 4
    assert {c.group for c in cases} == {"pose", "lens", "held", "detail", "detail_rest"}
    detail = [c for c in cases if c.group.startswith("detail")]
    assert {c.config.detail_scale for c in detail} == {0.3}
    assert {c.config.detail_scale for c in cases if c not in detail} == {0.0}
    # the calibrated group solves the very clips of the plain one, on a frame of their rest lead-in
    plain = [c.config for c in detail if c.group == "detail"]
    rest = [c for c in detail if c.group == "detail_rest"]
    assert [c.config for c in rest] == plain and all(c.rest_frame < c.config.rest_frames for c in rest)
    assert all(c.rest_frame is None for c in cases if c not in rest)
    assert {c.config.identity_scale for c in cases} == {1.0, 1.5}
    assert any(c.halves for c in cases) and len({c.config.seed for c in cases if c not in rest}) == len(cases) - len(rest)
    assert len(synthetic_cases("quick")) < len(cases)
    with pytest.raises(ValueError):
        synthetic_cases("huge")


def test_nme_normalisers():
    gt = np.zeros((68, 2))
    gt[:, 0] = np.linspace(0, 40, 68)
    gt[:, 1] = np.linspace(0, 90, 68)
    assert bbox_size(gt) == pytest.approx(60.0)
    gt[36], gt[45] = (10, 50), (40, 50)
    assert interocular(gt) == pytest.approx(30.0)
    pred = gt + np.array([3.0, 4.0])
    assert nme(pred, gt, 50.0) == pytest.approx(10.0)
    pred[INNER_POINTS] = gt[INNER_POINTS]          # only the jaw is off: the inner-point NME is 0
    assert nme(pred, gt, 50.0) == pytest.approx(10.0 * 17 / 68)
    assert nme(pred, gt, 50.0, INNER_POINTS) == 0.0


def test_read_pts_is_zero_based(tmp_path):
    p = tmp_path / "a.pts"
    p.write_text("version: 1\nn_points:  3\n{\n1 2\n3.5 4\n10 20\n}\n")
    np.testing.assert_allclose(read_pts(p), [[0, 1], [2.5, 3], [9, 19]])
    p.write_text("version: 1\nn_points: 4\n{\n1 2\n}\n")
    with pytest.raises(FaceKeyError) as e:
        read_pts(p)
    assert e.value.code == "bad_argument" and e.value.hint


def test_read_dlib_xml(tmp_path):
    parts = "".join(f"<part name='{k:02d}' x='{k}' y='{2 * k}'/>" for k in range(68))
    (tmp_path / "f.xml").write_text(
        "<dataset><images><image file='a.jpg'>"
        f"<box top='5' left='6' width='7' height='8'>{parts}</box>"
        "<box top='1' left='1' width='2' height='2'><part name='00' x='1' y='1'/></box>"
        "</image></images></dataset>")
    faces = read_dlib_xml(tmp_path / "f.xml")
    assert len(faces) == 1 and faces[0]["image"] == "a.jpg" and faces[0]["box"] == (6, 5, 7, 8)
    assert faces[0]["points"].shape == (68, 2) and faces[0]["points"][67].tolist() == [67, 134]


def test_bad_size_and_part_are_coded_errors():
    for kwargs in ({"size": "huge"}, {"parts": ("nope",)}, {"parts": ()}):
        with pytest.raises(FaceKeyError) as e:
            run_fidelity(**kwargs)
        assert e.value.code == "bad_argument" and e.value.hint


@pytest.fixture(scope="module")
def quick_synthetic():
    torch.set_num_threads(1)
    return run_fidelity("quick", ("synthetic",), realdata=None)


def test_quick_synthetic_report(quick_synthetic, tmp_path):
    syn = quick_synthetic["synthetic"]
    o = syn["overall"]
    assert o["clips"] == 4 and o["frames"] == 160
    assert len(syn["per_unit"]) == 52 and not syn["per_unit"]["tongueOut"]["scored"]
    assert {c["group"] for c in syn["clips"]} == {"pose", "lens", "held"}
    # the solver recovers the performance at all (loose bounds; the issue's targets are tighter)
    assert 0.0 < o["weight_mae"] < 0.1 and o["rotation_median_deg"] < 5.0
    assert o["identity_error_mm"] < o["identity_canonical_baseline_mm"]
    assert 0.0 <= o["exclusive_violation_rate"] <= 1.0 and o["held_pairs"] > 0
    assert o["identity_halves_mm"] is not None and o["identity_halves_mm"] >= 0
    assert sum(b["frames"] for b in syn["rotation_by_yaw"].values()) == o["frames"]
    ph = syn["photos"]
    assert ph["photos"] == 5 and 0.0 < ph["weight_mae_with_actor"] < ph["weight_mae_alone"] < 0.2
    hands = syn["hands"]
    assert hands["clips"] == 1 and hands["covered_frames"] == 24
    # what the tracker invents under the hand is read without the mask and ignored with it
    assert hands["invented_units_mae_covered"]["masked"] < 0.1 < hands["invented_units_mae_covered"]["blind"]
    assert hands["weight_mae_covered"]["masked"] < hands["weight_mae_covered"]["blind"]
    assert ph["identity_error_with_actor_mm"] < ph["identity_error_alone_mm"]
    path = write_report(quick_synthetic, tmp_path / "r" / "fidelity.json")
    assert json.loads(path.read_text())["synthetic"]["overall"] == o
    console = Console(record=True, width=160)
    console.print(fidelity_table(quick_synthetic))
    text = console.export_text()
    assert "weight MAE" in text and "<= 0.03" in text and "held-pose jitter" in text and "single photos" in text
    assert "hand over the mouth" in text


def test_cli_fidelity_landmarks(realdata, tmp_path):
    out = tmp_path / "fid.json"
    res = CliRunner().invoke(app, ["bench", "fidelity", "--quick", "--part", "landmarks", "--realdata",
                                   str(realdata), "-o", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    aflw = report["landmarks"]["aflw2000_3d"]
    assert aflw["faces"] >= 1 and aflw["faces"] == len(aflw["items"])
    assert "AFLW2000-3D" in res.output and "synthetic" not in report


def test_cli_fidelity_missing_realdata_is_a_coded_error(tmp_path):
    res = CliRunner().invoke(app, ["bench", "fidelity", "--quick", "--part", "landmarks", "--realdata",
                                   str(tmp_path / "nope"), "-o", str(tmp_path / "f.json")])
    assert res.exit_code == 2 and "file_missing" in res.output
    assert not (tmp_path / "f.json").exists()


def test_reference_rig_rows_pair_mirror_units():
    """The reference-rig rows write a Left/Right pair of near-equal size once, without its side, and keep
    pairs that differ apart; units the filter drops are not listed."""
    from backend.fidelity.report import _paired

    scales = {"mouthSmileLeft": 1.975, "mouthSmileRight": 1.974, "jawLeft": 1.6, "jawRight": 1.7, "jawOpen": 1.0,
              "mouthLeft": 1.52, "mouthRight": 1.53}
    assert _paired(scales, lambda s: s >= 1.5) == "mouthSmile 1.97, jawRight 1.70, jawLeft 1.60, mouthLeft/Right 1.52"
    assert _paired(scales, lambda s: s > 5) == "none"


def test_compare_weights_scores_each_moving_unit_against_the_truth():
    """A captured curve at half the true one reads ratio 0.5 and correlation 1; a flat one has no
    correlation; a unit whose truth barely moves is not scored alone; saturation is counted per frame."""
    from backend.fidelity.rendered_performance import MIN_RANGE, compare_weights

    t = np.linspace(0.0, 1.0, 50)
    truth = np.stack([0.8 * t, 0.8 * t, 0.5 * np.sin(6 * t) ** 2, np.full(50, 0.05)], 1)
    ours = np.stack([0.4 * t, np.zeros(50), truth[:, 2], np.zeros(50)], 1)
    ours[-5:, 2] = 1.0
    out = compare_weights(ours, truth, ["a", "b", "c", "d"])
    assert set(out["units"]) == {"a", "b", "c"} and np.ptp(truth[:, 3]) < MIN_RANGE
    a, b, c = out["units"]["a"], out["units"]["b"], out["units"]["c"]
    assert a["ratio"] == pytest.approx(0.5) and a["corr"] == pytest.approx(1.0) and a["ours_max"] == pytest.approx(0.4)
    assert b["corr"] is None and b["ratio"] == 0.0 and b["mae"] == pytest.approx(np.abs(truth[:, 1]).mean(), abs=1e-4)
    assert 0.0 < c["corr"] < 1.0 and c["ratio"] > 1.0
    assert out["saturated"] == {"ours": 0.1, "truth": 0.0} and out["frames"] == 50
    with pytest.raises(ValueError):
        compare_weights(ours[:, :3], truth, ["a", "b", "c", "d"])


def test_rendered_performance_rows_list_over_and_under_read_units():
    """The table names the followed units read too high or too low (a pair once), and the units not followed."""
    unit = lambda corr, ratio: {"corr": corr, "ratio": ratio, "mae": 0.1, "truth_max": 0.8, "ours_max": 0.8}
    turn = {"turn_deg": [45.0, 12.0, 8.0], "tracked": [80, 82], "weights_mae": 0.177,
            "rotation": {"median_deg": 4.11, "p90_deg": 8.29, "by_yaw": {"0-15": [2.45, 18], "15-30": [None, 0], "30-45": [5.07, 44]},
                         "per_axis": {"yaw": 0.909, "pitch": None, "roll": 1.288}}}
    perf = {"frames": 82, "mae": 0.126, "saturated": {"ours": 0.35, "truth": 0.0}, "tracked": [82, 82], "head_turn": turn,
            "units": {"jawOpen": unit(0.98, 0.84), "mouthLowerDownLeft": unit(0.9, 1.9),
                      "mouthLowerDownRight": unit(0.88, 1.92), "mouthSmileLeft": unit(0.8, 0.43),
                      "mouthPucker": unit(0.05, 1.0), "mouthDimpleLeft": unit(None, 0.0)}}
    console = Console(record=True, width=200)
    console.print(fidelity_table({"size": "quick", "seed": 0, "seconds": {},
                                  "real": {"checks": [], "rendered_performance": perf}}))
    text = console.export_text()
    assert "mouthLowerDown 1.91" in text and "mouthSmileLeft 0.43" in text
    assert "mouthDimpleLeft, mouthPucker" in text and "35% / 0%" in text
    assert "80/82 frames" in text and "4.11 (8.29)" in text and "2.45 (18) / - (0) / 5.07 (44)" in text and "0.91 / - / 1.29" in text


def test_rendered_table_lists_every_scored_unit_and_the_recording_own_turn():
    """`facekey bench rendered`'s table: the summary rows, then each scored unit (worst followed first);
    a turn from the recording itself is named so, not as the added sweep."""
    from backend.fidelity.report import rendered_table
    unit = lambda corr, ratio: {"corr": corr, "ratio": ratio, "mae": 0.1, "truth_max": 0.8, "ours_max": 0.7}
    rotation = {"median_deg": 2.5, "p90_deg": 5.0, "by_yaw": {"0-15": [1.0, 10], "15-30": [None, 0], "30-45": [None, 0]},
                "per_axis": {"yaw": 0.95, "pitch": 0.8, "roll": None}}
    perf = {"frames": 20, "mae": 0.05, "saturated": {"ours": 0.0, "truth": 0.0}, "tracked": [20, 20],
            "object": "Face", "keyed_units": 2, "row_step": 2, "image_side": 320,
            "units": {"jawOpen": unit(0.97, 0.9), "mouthSmileLeft": unit(0.4, 0.5)},
            "head_turn": {"turn_deg": None, "tracked": [20, 20], "weights_mae": 0.06, "rotation": rotation}}
    console = Console(record=True, width=200)
    console.print(rendered_table(perf, "take.csv"))
    text = console.export_text()
    assert "take.csv rendered on Face (2 keyed units, row step 2, 320 px)" in text
    assert "the recording's own head turn, 20/20 frames" in text and "2.50 (5.00)" in text
    units = text.split("units whose true curve spans >= 0.2", 1)[1]
    assert units.index("mouthSmileLeft") < units.index("jawOpen") and "0.97" in units and "0.40" in units


def test_rows_the_performance_marks_invalid_are_not_scored():
    """A performance row marked invalid is not baked (what renders there is its neighbours' blend), so it is
    left out of the scores even where the capture found a face; ``tracked`` counts the valid rows."""
    from backend.fidelity.rendered_performance import _scored, _tracked
    from backend.protocol.arkit import INDEX
    from backend.protocol.take import Take
    truth, ours = Take.empty(16, 30.0), Take.empty(8, 30.0)
    truth.weights[:, INDEX["jawOpen"]] = np.linspace(0.0, 0.9, 16)
    truth.valid[6:10] = False
    truth.weights[6:10] = 0.0
    rows = np.arange(0, 16, 2)
    ours.weights[:, INDEX["jawOpen"]] = truth.weights[rows, INDEX["jawOpen"]]
    ours.weights[3:5, INDEX["jawOpen"]] = 0.4      # rows 6 and 8: the blend the render shows there
    found, scores = _scored(ours, truth, rows, ["jawOpen"])
    assert found.tolist() == [True] * 3 + [False] * 2 + [True] * 3
    assert scores["units"]["jawOpen"]["corr"] == pytest.approx(1.0) and scores["mae"] == pytest.approx(0.0)
    assert _tracked(found, truth, rows) == [6, 6]


def test_a_performance_that_holds_its_head_still_gets_the_sweep():
    """The turned pass shows the recording's own head rotation, unless it stays within a degree (a Live Link
    Face recording without head columns), where the standard sweep is shown instead."""
    import dataclasses

    from backend.fidelity.rendered_performance import _head_is_still, head_turn
    from backend.protocol.rotations import ypr_to_quat
    from backend.protocol.take import Take
    take = Take.empty(30, 30.0)
    assert _head_is_still(take)
    wobble = ypr_to_quat(np.radians(0.4 * np.sin(np.arange(30.0))), np.zeros(30), np.zeros(30)).astype(np.float32)
    assert _head_is_still(dataclasses.replace(take, head_rotation=wobble))
    assert not _head_is_still(dataclasses.replace(take, head_rotation=head_turn(30)))


def test_compare_rotations_takes_out_the_rest_offset_and_reads_the_turn_size():
    """A capture that reads the turn at its full size behind a constant rest offset scores ~0 degrees and
    factors 1; one that reads the yaw at 80 % scores the yaw factor 0.8 and grows with |yaw|."""
    from backend.fidelity.rendered_performance import compare_rotations, head_turn
    from backend.protocol.rotations import quat_to_ypr, ypr_to_quat

    truth = head_turn(120)
    offset = ypr_to_quat(np.array([0.0]), np.array([-0.1]), np.array([0.0]))[0]
    w0, v0 = offset[0], offset[1:]
    w, v = truth[:, :1], truth[:, 1:]
    shifted = np.concatenate([w * w0 - v @ v0[:, None], w * v0 + w0 * v + np.cross(v, v0)], 1)   # truth * offset
    same = compare_rotations(shifted, truth)
    assert same["median_deg"] < 0.05 and all(abs(f - 1.0) < 0.01 for f in same["per_axis"].values())
    ypr = quat_to_ypr(truth.astype(np.float64))
    short = compare_rotations(ypr_to_quat(0.8 * ypr[:, 0], ypr[:, 1], ypr[:, 2]), truth)
    assert short["per_axis"]["yaw"] == pytest.approx(0.8, abs=0.02) and short["per_axis"]["pitch"] == pytest.approx(1.0, abs=0.05)
    bands = [short["by_yaw"][k] for k in ("0-15", "15-30", "30-45")]
    assert bands[0][0] < bands[1][0] < bands[2][0] <= 9.5 and sum(n for _, n in bands) == 120
    still = compare_rotations(ypr_to_quat(ypr[:, 0], 0 * ypr[:, 1], 0 * ypr[:, 2]), ypr_to_quat(ypr[:, 0], 0 * ypr[:, 1], 0 * ypr[:, 2]))
    assert still["per_axis"]["pitch"] is None and still["per_axis"]["yaw"] == pytest.approx(1.0)
