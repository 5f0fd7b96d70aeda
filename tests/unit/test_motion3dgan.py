"""Motion3DGAN: tangent-space generator, weights check, tiny training end to end, sampling."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backend.generation.motion3dgan import (Motion3DGAN, Motion3DGANConfig, exp_map, l2_inner, load_motion3dgan,
                                            log_map, sample_landmark_motions)
from backend.generation.srvf import motion_to_srvf
from backend.protocol.errors import FaceKeyError
from training.motion3dgan.train import CONFIGS, train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("motion3dgan")
    res = train(CONFIGS["tiny"], out)
    return out, res


def _random_unit(shape, seed):
    q = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return q / torch.sqrt(l2_inner(q, q))[..., None, None, None]


def test_generator_output_is_tangent_and_exp_is_unit():
    torch.manual_seed(0)
    cfg = Motion3DGANConfig(noise_dim=8, hidden=(16, 16))
    net = Motion3DGAN(cfg)
    net.reference.copy_(_random_unit(cfg.srvf_shape, 1).float())
    v = net.tangent(torch.randn(5, 8), torch.arange(5))
    assert v.shape == (5, 29, 68, 3)
    assert torch.abs(l2_inner(v, net.reference)).max() < 1e-5
    assert torch.sqrt(l2_inner(v, v)).min() > 1e-3                  # not trivially zero
    q = net.generate(torch.randn(5, 8), torch.arange(5))
    np.testing.assert_allclose(l2_inner(q, q).detach().numpy(), 1.0, atol=1e-5)
    assert net.score(v, torch.arange(5)).shape == (5,)


def test_torch_log_inverts_exp():
    p, q = _random_unit((29, 68, 3), 2), _random_unit((4, 29, 68, 3), 3)
    v = log_map(p, q)
    assert torch.abs(l2_inner(v, p)).max() < 1e-9
    np.testing.assert_allclose(exp_map(p, v).numpy(), q.numpy(), atol=1e-6)


def test_missing_weights(tmp_path):
    with pytest.raises(FaceKeyError) as e:
        load_motion3dgan(tmp_path / "nowhere")
    assert e.value.code == "weights_missing"
    assert "training.motion3dgan.train" in e.value.hint


def test_wrong_shape_is_invalid(tiny_run, tmp_path):
    from safetensors.torch import load_file, save_file
    out, _ = tiny_run
    state = load_file(str(out / "motion3dgan.safetensors"))
    state["scale_mean"] = torch.zeros(7)
    save_file(state, str(tmp_path / "motion3dgan.safetensors"))
    (tmp_path / "config.json").write_text((out / "config.json").read_text())
    with pytest.raises(FaceKeyError) as e:
        load_motion3dgan(tmp_path / "motion3dgan.safetensors")
    assert e.value.code == "weights_invalid"
    assert "scale_mean" in e.value.message


def test_tiny_training_writes_loadable_weights_and_evaluation(tiny_run):
    out, res = tiny_run
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["net"]["hidden"] == list(CONFIGS["tiny"].net.hidden)
    assert len(res["history"]) == 3 and all(np.isfinite(h["critic"]) for h in res["history"])
    ev = cfg["evaluation"]
    assert ev == res["evaluation"]
    assert 0.0 <= ev["label_accuracy"] <= 1.0 and ev["chance"] == pytest.approx(1 / 12)
    assert ev["diversity"] > 0 and ev["size_ratio"] > 0
    net = load_motion3dgan(out)
    assert not net.training
    assert torch.all(net.scale_mean > 0) and torch.all(net.scale_std > 0)
    np.testing.assert_allclose(l2_inner(net.reference, net.reference).item(), 1.0, atol=1e-5)


def test_sampled_motions(tiny_run):
    from training.motion3dgan.data import HELDOUT_SEED, expression_motions
    net = load_motion3dgan(tiny_run[0])
    a = sample_landmark_motions(net, "mouth_open", 4, seed=1)
    assert a.shape == (4, 30, 68, 3) and a.dtype == np.float32
    assert np.isfinite(a).all()
    assert np.all(a[:, 0] == 0.0)
    np.testing.assert_array_equal(a, sample_landmark_motions(net, 9, 4, seed=1))    # index 9 = mouth_open
    assert np.abs(a - sample_landmark_motions(net, "mouth_open", 4, seed=2)).max() > 1e-4
    # a motion's size is its SRVF norm: the sample's scales come from the label's statistics
    _, scale = motion_to_srvf(a)
    mean = float(net.scale_mean[9])
    assert np.all(scale >= 0.25 * mean - 1e-6) and np.all(np.abs(scale - mean) < 5 * float(net.scale_std[9]) + 1e-6)
    real = expression_motions(2, seed=HELDOUT_SEED, labels=np.array([9, 9])).landmarks
    ratio = np.linalg.norm(a[:, -1].reshape(4, -1), axis=1).mean() / np.linalg.norm(real[:, -1].reshape(2, -1),
                                                                                   axis=1).mean()
    assert 0.3 < ratio < 3.0


def test_bad_label_and_count(tiny_run):
    net = load_motion3dgan(tiny_run[0])
    for bad in ("grin", 12, -1):
        with pytest.raises(FaceKeyError) as e:
            sample_landmark_motions(net, bad, 2)
        assert e.value.code == "bad_argument"
    with pytest.raises(FaceKeyError) as e:
        sample_landmark_motions(net, 0, -1)
    assert e.value.code == "bad_argument"
    assert sample_landmark_motions(net, 0, 0).shape == (0, 30, 68, 3)


def test_no_recipe_drives_both_units_of_a_contradictory_pair():
    """mouth_up rolled the lower lip in while shrugging it up, a pair the capture never reads together:
    every generated mouth_up clip carried the contradiction into its weights."""
    from backend.protocol.arkit import ARKIT_NAMES, EXCLUSIVE_PAIRS
    from training.motion3dgan.data import RECIPES
    for label, recipe in RECIPES.items():
        for a, b in EXCLUSIVE_PAIRS:
            assert not (ARKIT_NAMES[a] in recipe and ARKIT_NAMES[b] in recipe), (label, ARKIT_NAMES[a], ARKIT_NAMES[b])
