"""Expression generation: Motion3DGAN, S2D-Dec and the whole label -> Take chain, on held-out actors.

    python benchmarks/bench_generation.py [--gan DIR --s2d DIR] [--clips 8] [--json out.json]

(without ``--gan`` / ``--s2d``: the bundled generators, ``backend/assets/generators``).

Three parts, each measured side by side with its reference in one run:

* Motion3DGAN (``training.motion3dgan.train.evaluate``): label accuracy of
  generated apex frames by nearest held-out label mean (chance 1/12),
  diversity and motion size relative to held-out real motions;
* S2D-Dec (``training.s2d.train.evaluate``): mean per-vertex error (mm) of the
  decoder, of its interpolation baseline and of zero motion on held-out actors;
* the chain (``backend.generation.generate.generate_clips``): ``--clips``
  clips per label read back as ARKit weights; a clip counts as right when its
  apex weights are closer (cosine) to its own label's recipe
  (``training.motion3dgan.data.RECIPES``, or its mirror image) than to any other, and the mean RMS
  distance the weights leave of the dense motion is reported.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.generation.generate import BUNDLED_GENERATORS, generate_clips  # noqa: E402
from backend.protocol.labels import LABELS  # noqa: E402
from backend.generation.motion3dgan import load_motion3dgan  # noqa: E402
from backend.generation.s2d import load_s2d  # noqa: E402
from backend.protocol.arkit import INDEX, MIRROR  # noqa: E402
from training.motion3dgan.data import RECIPES  # noqa: E402


def recipe_matrix() -> np.ndarray:
    """(12, 52) unit-norm apex weight vectors of the labels' recipes."""
    r = np.zeros((len(LABELS), 52))
    for i, label in enumerate(LABELS):
        for name, w in RECIPES[label].items():
            r[i, INDEX[name]] = w
    return r / np.linalg.norm(r, axis=1, keepdims=True)


def recipe_cosines(apex: np.ndarray) -> np.ndarray:
    """(C, 12) cosine of apex weights (C, 52) with each recipe, or with its left/right mirror image
    where that is closer (the data makes one-sided labels, ``mouth_side``, to either side)."""
    recipes = recipe_matrix()
    unit = apex / np.maximum(np.linalg.norm(apex, axis=1, keepdims=True), 1e-9)
    return np.maximum(unit @ recipes.T, unit @ recipes[:, list(MIRROR)].T)


def chain(gan: str, s2d: str, clips: int, seed: int = 1000) -> dict:
    """Per label: fraction of clips whose apex weights match their own recipe best, and residual (mm)."""
    out = {}
    for i, label in enumerate(LABELS):
        takes = generate_clips(label, clips, gan, s2d, seed=seed)
        cos = recipe_cosines(np.stack([t.weights[-1] for t in takes]).astype(np.float64))
        out[label] = {"recipe_accuracy": float(np.mean(cos.argmax(axis=1) == i)),
                      "own_recipe_cosine": float(cos[:, i].mean()),
                      "residual_mm": float(np.mean([t.header["weights_residual_mm"] for t in takes]))}
    return out


def main(argv: list[str] | None = None) -> int:
    from training.motion3dgan.train import evaluate as evaluate_gan
    from training.s2d.train import evaluate as evaluate_s2d

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gan", default=str(BUNDLED_GENERATORS / "motion3dgan"))
    ap.add_argument("--s2d", default=str(BUNDLED_GENERATORS / "s2d"))
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    report = {"motion3dgan": evaluate_gan(load_motion3dgan(a.gan)), "s2d": evaluate_s2d(load_s2d(a.s2d)),
              "chain": chain(a.gan, a.s2d, a.clips)}
    print(json.dumps({k: v for k, v in report.items() if k != "chain"}, indent=1))
    print(f"{'label':<14} {'recipe acc':>10} {'cos own':>8} {'resid mm':>9}")
    for label, r in report["chain"].items():
        print(f"{label:<14} {r['recipe_accuracy']:>10.2f} {r['own_recipe_cosine']:>8.2f} {r['residual_mm']:>9.2f}")
    acc = np.mean([r["recipe_accuracy"] for r in report["chain"].values()])
    print(f"chain recipe accuracy over {len(LABELS)} labels: {acc:.2f} (chance {1 / len(LABELS):.2f})")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
