"""S2D-Dec: interpolation baseline, loss weights, decode shapes, weights check, tiny training end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backend.facemodel import load_face_model
from backend.generation.s2d import (S2DDecoder, decode_dense, interpolation_weights, load_s2d, vertex_weights)
from backend.protocol.errors import FaceKeyError
from backend.tracking.ibug68 import MEDIAPIPE_TO_IBUG68
from training.s2d.train import CONFIGS, evaluate, train

LM = list(MEDIAPIPE_TO_IBUG68)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("s2d")
    res = train(CONFIGS["tiny"], out)
    return out, res


def _sparse(shape, seed=0) -> np.ndarray:
    """Random landmark displacements, metres (a few millimetres)."""
    return (np.random.default_rng(seed).normal(size=shape + (68, 3)) * 0.003).astype(np.float32)


def test_interpolation_rows_are_local_convex_blends():
    w = interpolation_weights(4, 2.0)
    assert w.shape == (478, 68)
    assert (w >= 0).all() and np.allclose(w.sum(1), 1.0, atol=1e-6)
    assert ((w > 0).sum(1) <= 4).all()
    np.testing.assert_array_equal(w[LM], np.eye(68, dtype=np.float32))
    # a non-landmark vertex leans most on its nearest landmark
    v = load_face_model().neutral
    others = np.setdiff1d(np.arange(478), LM)
    nearest = np.linalg.norm(v[others, None] - v[LM][None], axis=-1).argmin(1)
    assert np.array_equal(w[others].argmax(1), nearest)


def test_untrained_decoder_is_the_interpolation_and_keeps_landmarks():
    torch.manual_seed(0)
    net = S2DDecoder(CONFIGS["tiny"].net).eval()
    sparse = _sparse((5,))
    dense = decode_dense(net, sparse)
    want = np.einsum("vl,blc->bvc", interpolation_weights(net.cfg.neighbours, net.cfg.power), sparse)
    np.testing.assert_allclose(dense, want, atol=1e-9)
    with torch.no_grad():
        x = torch.from_numpy(sparse) / 0.01
        assert torch.equal(net(x), net.baseline(x))       # the zero last layer adds exactly nothing
    np.testing.assert_allclose(dense[:, LM], sparse, rtol=1e-6, atol=1e-9)


def test_decode_shapes_and_neutral_input(tiny_run):
    net = load_s2d(tiny_run[0])
    assert decode_dense(net, _sparse(())).shape == (478, 3)
    batched = _sparse((2, 3), seed=1)
    out = decode_dense(net, batched)
    assert out.shape == (2, 3, 478, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[1, 2], decode_dense(net, batched[1, 2]), atol=1e-7)   # batching changes nothing
    assert decode_dense(net, np.zeros((0, 68, 3))).shape == (0, 478, 3)
    # a trained decoder still maps the neutral (no landmark motion) to exactly no motion
    assert np.abs(decode_dense(net, np.zeros((2, 68, 3)))).max() == 0.0
    with pytest.raises(FaceKeyError) as e:
        decode_dense(net, np.zeros((4, 67, 3)))
    assert e.value.code == "bad_argument"


def test_vertex_weights_one_at_landmarks_and_fall_with_distance():
    w = vertex_weights()
    assert w.shape == (478,)
    assert np.all(w[LM] == 1.0)
    others = np.setdiff1d(np.arange(478), LM)
    assert np.all((w[others] > 0) & (w[others] <= 1.0))
    assert w[others].max() == 1.0 and w[others].min() < 0.1
    v = load_face_model().neutral
    d = np.linalg.norm(v[others, None] - v[LM][None], axis=-1).min(1)
    order = np.argsort(d)
    assert np.all(np.diff(w[others][order]) <= 1e-7)                  # farther from every landmark: lower weight
    np.testing.assert_allclose(w[others] * d, (w[others] * d)[0], rtol=1e-4)   # proportional to 1 / distance


def test_tiny_training_beats_the_interpolation_on_held_out_actors(tiny_run):
    out, res = tiny_run
    h = res["history"]
    assert np.mean(h[-3:]) < 0.8 * h[0]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["net"]["channels"] == list(CONFIGS["tiny"].net.channels) and cfg["history"] == h
    ev = cfg["evaluation"]
    assert ev == res["evaluation"]
    for key in ("all", "non_landmark", "apex_all", "apex_non_landmark"):
        assert ev["decoder"][key] < 0.85 * ev["baseline"][key] < 0.85 * ev["zero"][key], key
    assert 0.3 < ev["zero"]["all"] < 3.0         # millimetres: real expressions, not micrometres
    # the saved weights are the trained network: the product-side loader scores the same
    again = evaluate(load_s2d(out), count=ev["count"])
    assert again["decoder"]["all"] == pytest.approx(ev["decoder"]["all"], abs=1e-5)


def test_missing_and_wrong_shape_weights_raise(tiny_run, tmp_path):
    out, _ = tiny_run
    with pytest.raises(FaceKeyError) as e:
        load_s2d(tmp_path / "nothing")
    assert e.value.code == "weights_missing" and "training.s2d.train" in e.value.hint
    assert isinstance(load_s2d(out / "s2d.safetensors"), S2DDecoder)          # the file path works too
    from safetensors.torch import load_file, save_file
    state = load_file(str(out / "s2d.safetensors"))
    state["lift.weight"] = torch.zeros(3, 3)
    save_file(state, str(tmp_path / "s2d.safetensors"))
    (tmp_path / "config.json").write_text((out / "config.json").read_text())
    with pytest.raises(FaceKeyError) as e:
        load_s2d(tmp_path)
    assert e.value.code == "weights_invalid" and "lift.weight" in str(e.value)
    del state["lift.weight"]
    save_file(state, str(tmp_path / "s2d.safetensors"))
    with pytest.raises(FaceKeyError) as e:
        load_s2d(tmp_path)
    assert e.value.code == "weights_invalid" and "missing" in str(e.value) and "lift.weight" in str(e.value)
