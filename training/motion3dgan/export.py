"""Ship trained generators: ``python -m training.motion3dgan.export GAN_DIR S2D_DIR OUT_DIR``.

Writes ``OUT_DIR/motion3dgan`` (the generator and its statistics: the
critic only trains) and ``OUT_DIR/s2d``, both float16 (half the size; it
moves a clip by far less than a millimetre), each with a ``config.json``
that keeps the training configuration and evaluation and says how it is
stored.  ``backend/assets/generators`` (the product's bundled generators,
:data:`backend.generation.generate.BUNDLED_GENERATORS`) is made this way from
the base configurations:

    python -m training.motion3dgan.train --config base --out gen/motion3dgan --threads 1
    python -m training.s2d.train --config base --out gen/s2d --threads 1
    python -m training.motion3dgan.export gen/motion3dgan gen/s2d backend/assets/generators
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from backend.generation.motion3dgan import WEIGHTS_NAME as GAN_WEIGHTS, load_motion3dgan
from backend.generation.s2d import WEIGHTS_NAME as S2D_WEIGHTS, load_s2d
from backend.protocol.errors import FaceKeyError
from backend.weightsfile import CONFIG_NAME, save_net
from training.cli import user_errors

__all__ = ["export_generators", "main"]


def _config(folder: Path, **extra) -> dict:
    cfg = json.loads((folder / CONFIG_NAME).read_text())
    cfg.pop("history", None)                                   # the loss curve stays with the run
    return {**cfg, **extra}


def export_generators(gan_dir: str | Path, s2d_dir: str | Path, out: str | Path) -> dict[str, str]:
    """Copy trained Motion3DGAN (generator only) and S2D-Dec weights into ``out`` as float16; returns
    ``{"motion3dgan": weights path, "s2d": weights path}``."""
    gan_dir, s2d_dir, out = Path(gan_dir), Path(s2d_dir), Path(out)
    for run, dest in ((gan_dir, out / "motion3dgan"), (s2d_dir, out / "s2d")):
        if dest.resolve() == run.resolve():
            raise FaceKeyError("bad_argument", f"Exporting into {dest} would replace the training run it reads "
                               "(its float32 weights, critic and loss history) with the float16 copy.",
                               "Export into another folder, e.g. backend/assets/generators or shipped/.")
    gan_net, s2d_net = load_motion3dgan(gan_dir), load_s2d(s2d_dir)      # both read before either is written
    gan_cfg = _config(gan_dir, stored="generator only (no critic), float16")
    s2d_cfg = _config(s2d_dir, stored="float16")
    gan = save_net(gan_net, out / "motion3dgan", GAN_WEIGHTS, gan_cfg, leave_out=("critic.",), half=True)
    s2d = save_net(s2d_net, out / "s2d", S2D_WEIGHTS, s2d_cfg, half=True)
    return {"motion3dgan": gan[0], "s2d": s2d[0]}


@user_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.motion3dgan.export")
    p.add_argument("gan", help="trained Motion3DGAN folder")
    p.add_argument("s2d", help="trained S2D-Dec folder")
    p.add_argument("out", help="output folder (motion3dgan/ and s2d/ inside)")
    a = p.parse_args(argv)
    for name, path in export_generators(a.gan, a.s2d, a.out).items():
        print(f"{name}: {path} ({Path(path).stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
