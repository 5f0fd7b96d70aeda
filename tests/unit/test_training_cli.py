"""The training commands' shared options: every problem a run would only meet when it saves is found
before any work, and a trained model is never destroyed without being asked."""
from __future__ import annotations

import json

import pytest

from backend.protocol.errors import FaceKeyError
from backend.weightsfile import load_net
from training.s2d.train import main as s2d_main


def _run(capsys, *argv):
    rc = s2d_main(["--config", "tiny", *argv])
    return rc, capsys.readouterr().err


def test_a_bad_out_or_device_stops_the_run_before_it_trains(tmp_path, capsys):
    """An --out that is a file, or a CUDA device that is not there, failed after the whole run."""
    a_file = tmp_path / "afile"
    a_file.write_text("")
    rc, err = _run(capsys, "--out", str(a_file))
    assert rc == 2 and "error[bad_argument]" in err and "is a file" in err and "hint:" in err
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    rc, err = _run(capsys, "--out", str(tool / "run"))
    assert rc == 2 and "is a file, not a folder" in err
    rc, err = _run(capsys, "--out", str(tmp_path / "run"), "--device", "cuda:7")
    assert rc == 2 and "no such CUDA device" in err and not (tmp_path / "run").exists()
    rc, err = _run(capsys, "--out", str(tmp_path / "run"), "--device", "gpu")
    assert rc == 2 and "not a torch device" in err
    for bad in (["--steps", "0"], ["--steps", "-3"], ["--threads", "0"]):
        with pytest.raises(SystemExit) as e:                       # argparse: a usage error, exit 2
            s2d_main(["--config", "tiny", "--out", str(tmp_path / "run"), *bad])
        assert e.value.code == 2
        assert "below 1" in capsys.readouterr().err


def test_a_folder_holds_one_model_and_a_trained_one_is_replaced_only_when_asked(tmp_path, capsys):
    """Training S2D into the Motion3DGAN folder replaced its config.json and broke it; re-running into a
    trained folder replaced the weights silently."""
    gan = tmp_path / "gen"
    gan.mkdir()
    (gan / "motion3dgan.safetensors").write_bytes(b"weights")
    (gan / "config.json").write_text(json.dumps({"net": {"frames": 30}}))
    rc, err = _run(capsys, "--out", str(gan))
    assert rc == 2 and "another model" in err and "motion3dgan.safetensors" in err
    assert json.loads((gan / "config.json").read_text()) == {"net": {"frames": 30}}

    run = tmp_path / "s2d"
    assert _run(capsys, "--out", str(run), "--steps", "2")[0] == 0
    before = (run / "s2d.safetensors").read_bytes()
    rc, err = _run(capsys, "--out", str(run), "--steps", "2")
    assert rc == 2 and "--overwrite" in err and (run / "s2d.safetensors").read_bytes() == before
    assert _run(capsys, "--out", str(run), "--steps", "3", "--overwrite")[0] == 0
    assert json.loads((run / "config.json").read_text())["steps"] == 3
    assert not [p for p in run.iterdir() if p.name.startswith(".fk-")]      # no temp files left


def test_a_config_of_another_model_is_named_as_such(tmp_path):
    """Weights beside another model's config.json said only 'channels'."""
    (tmp_path / "s2d.safetensors").write_bytes(b"x")
    (tmp_path / "config.json").write_text(json.dumps({"net": {"frames": 30, "noise_dim": 16}}))

    def build(c):
        return c["channels"]
    with pytest.raises(FaceKeyError) as e:
        load_net(tmp_path, "s2d.safetensors", "S2D-Dec", "train it", build)
    assert e.value.code == "weights_invalid" and "not a S2D-Dec config" in e.value.message
    assert "noise_dim" in e.value.message and "another model" in e.value.message


def test_export_refuses_to_write_over_the_runs_it_reads(tmp_path, capsys):
    from training.motion3dgan.export import main as export_main
    gen = tmp_path / "gen"
    for name in ("motion3dgan", "s2d"):
        (gen / name).mkdir(parents=True)
    assert export_main([str(gen / "motion3dgan"), str(gen / "s2d"), str(gen)]) == 2
    assert "would replace the training run" in capsys.readouterr().err
    from backend.generation.generate import BUNDLED_GENERATORS
    out = tmp_path / "shipped"
    assert export_main([str(BUNDLED_GENERATORS / "motion3dgan"), str(tmp_path / "no_s2d_run"), str(out)]) == 2
    assert "weights_missing" in capsys.readouterr().err and not out.exists()    # the GAN half was written
