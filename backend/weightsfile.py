"""Trained network files: ``<name>.safetensors`` (the state dict) + ``config.json`` (its ``net`` config), one folder.

Every learned model the product uses (SEREP, Motion3DGAN, S2D-Dec) is saved
by its training script with :func:`save_net` and loaded by the product with
:func:`load_net`, which checks every tensor name and shape against a network
built from the config before loading, so a file from another configuration or
version is a clear ``weights_invalid`` error, never a silent mismatch.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from torch import nn

from backend.protocol.errors import FaceKeyError

__all__ = ["CONFIG_NAME", "save_net", "load_net", "weights_path"]

CONFIG_NAME = "config.json"


def save_net(net: nn.Module, out: str | Path, weights_name: str, config: dict, *, leave_out: tuple[str, ...] = (),
             half: bool = False) -> tuple[str, str]:
    """Write ``net``'s state dict to ``out/weights_name`` and ``config`` (JSON, with a ``net`` entry) to
    ``out/config.json``; return both paths.

    ``leave_out``: name prefixes of tensors not written (a part inference never runs, e.g. a GAN's
    critic; :func:`load_net` must be told they may be absent); ``half``: floating-point tensors
    stored as float16 (half the size; loaded back as the network's float32)."""
    from safetensors.torch import save

    from backend.protocol.npzfile import atomic_write
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items() if not k.startswith(leave_out)}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    # each file whole or not at all (a kill between the two leaves new weights beside the old config,
    # which load_net's name and shape check refuses)
    atomic_write(out / weights_name, lambda f: f.write(save(state)), ".safetensors")
    atomic_write(out / CONFIG_NAME, lambda f: f.write(json.dumps(config, indent=1).encode()), ".json")
    return str(out / weights_name), str(out / CONFIG_NAME)


def weights_path(path: str | Path, weights_name: str) -> Path:
    """The weights file ``path`` names: ``path/weights_name`` for a folder, else ``path`` itself."""
    p = Path(path)
    return p / weights_name if p.is_dir() else p


def load_net(path: str | Path, weights_name: str, what: str, hint: str, build: Callable[[dict], nn.Module], *,
             may_lack: tuple[str, ...] = ()) -> nn.Module:
    """Load a trained network (eval mode, CPU) with a name and shape check.

    Args:
        path: a folder holding ``weights_name`` + ``config.json``, or the ``.safetensors`` file
            itself (its ``config.json`` beside it).
        what: the model's name in messages ("SEREP").
        hint: how to train it.
        build: ``config.json``'s ``net`` dict -> an untrained network of that configuration
            (KeyError / TypeError / ValueError for a malformed config).
        may_lack: name prefixes of tensors the file may leave out (``save_net``'s ``leave_out``):
            those keep their untrained values.

    Raises:
        FaceKeyError ``weights_missing`` (no file) or ``weights_invalid`` (unreadable,
        missing/extra tensors or wrong shapes, each named).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    weights = weights_path(path, weights_name)
    cfg_path = weights.parent / CONFIG_NAME
    if not weights.is_file() or not cfg_path.is_file():
        raise FaceKeyError("weights_missing", f"{what} weights not found: {weights} (with {CONFIG_NAME} beside it)",
                           hint)
    try:
        net_cfg = json.loads(cfg_path.read_text())["net"]
    except (KeyError, TypeError, ValueError) as e:
        raise FaceKeyError("weights_invalid", f"{cfg_path} is not a config of trained weights ({e!r}).", hint) from e
    try:
        net = build(net_cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise FaceKeyError("weights_invalid", f"{cfg_path} beside {weights.name} is not a {what} config (its net "
                           f"has {sorted(net_cfg) if isinstance(net_cfg, dict) else net_cfg!r}; {e!r}): it belongs to "
                           "another model trained into the same folder.", hint) from e
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise FaceKeyError("weights_invalid", f"Cannot read {what} weights {weights}: {e}", hint) from e
    expected = {k: tuple(t.shape) for k, t in net.state_dict().items()}
    got = {k: tuple(t.shape) for k, t in state.items()}
    missing = sorted(k for k in set(expected) - set(got) if not k.startswith(may_lack))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or extra or wrong:
        detail = "; ".join(s for s in (f"missing {missing[:5]}" if missing else "",
                                       f"unexpected {extra[:5]}" if extra else "",
                                       ", ".join(f"{k} {got[k]} != {expected[k]}" for k in wrong[:5])) if s)
        raise FaceKeyError("weights_invalid", f"{what} weights {weights} do not match config.json: {detail}", hint)
    net.load_state_dict(state, strict=False)           # names checked above; float16 files widen here
    return net.eval()
