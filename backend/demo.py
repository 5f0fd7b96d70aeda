"""`facekey demo`: capture the bundled sample clip, bake it onto a head built from
the built-in face model (52 ARKit shape keys), and write what a person checks:

* ``demo_take.npz``     the Take,
* ``demo_head.npz``     the actor-shaped head with its 52 unit deltas,
* ``demo.blend``        the head with a new Action of shape-key F-curves,
* ``demo_head.png``     a render of the baked head at the take's most expressive frame,
* ``demo_preview.mp4``  landmarks and the rebuilt face over the footage,
* ``demo_curves.png``   the main curves and head rotation against time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .bench import DEMO_CLIP
from .protocol.arkit import ARKIT_NAMES
from .protocol.messages import Progress
from .protocol.take import write_take

__all__ = ["run_demo", "DEMO_CLIP"]


def run_demo(out_dir: str | Path = "demo_out", *, footage: Optional[str | Path] = None, blender: Optional[str] = None,
             progress: Optional[Callable[[Progress], None]] = None) -> dict[str, Path]:
    """Run the whole demo into ``out_dir``; return the output paths by name.  ``blender``: the Blender
    executable that writes ``demo.blend`` (default: ``blender_runner``'s choice, the bpy module when installed)."""
    from .blender_runner import build_head_blend
    from .capture import CaptureSettings, capture
    from .facemodel import load_face_model, transfer_units
    from .preview import plot_curves, render_preview
    from .reconstruct import actor_neutral, face_edges, project_take

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clip = Path(footage) if footage else DEMO_CLIP
    settings = CaptureSettings()
    take = capture(clip, settings, progress=progress)
    paths = {"take": Path(write_take(out / "demo_take.npz", take))}

    model = load_face_model()
    neutral = actor_neutral(take, model)
    deltas = transfer_units(neutral, model)
    paths["head"] = out / "demo_head.npz"
    np.savez_compressed(paths["head"], vertices=neutral.astype(np.float32), triangles=model.triangles,
                        unit_deltas=deltas.astype(np.float32), names=np.array(ARKIT_NAMES))
    _step(progress, "baking into Blender")
    paths["blend"] = out / "demo.blend"
    paths["head_render"] = out / "demo_head.png"
    build_head_blend(paths["head"], paths["take"], paths["blend"], preview_png=paths["head_render"], blender=blender)

    _step(progress, "rendering the preview")
    paths["preview"] = render_preview(clip, take, out / "demo_preview.mp4", rebuilt_2d=project_take(take, model),
                                      edges=face_edges(model), max_side=settings.max_side)
    paths["curves"] = plot_curves(take, out / "demo_curves.png")
    return paths


def _step(progress, message: str) -> None:
    if progress is not None:
        progress(Progress(0, 0, message))
