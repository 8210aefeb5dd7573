"""The CLI door end to end: a run writes image + metadata; bad input is one line, exit 2."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from photostyle_lib.doors import arguments, cli, transfer


@pytest.fixture
def small_pair(tmp_path):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:60]
    content = np.stack([y * 6, x * 4, (x + y) * 2], -1).clip(0, 255).astype(np.uint8)
    style = rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)
    Image.fromarray(content).save(tmp_path / "c.png")
    Image.fromarray(style).save(tmp_path / "s.png")
    cm = np.zeros((40, 60, 3), np.uint8)
    cm[:20] = (0, 0, 255)
    sm = np.zeros((50, 50, 3), np.uint8)
    sm[:, :25] = (0, 0, 255)
    Image.fromarray(cm).save(tmp_path / "cm.png")
    Image.fromarray(sm).save(tmp_path / "sm.png")
    return tmp_path


def _args(d, *extra):
    return ["transfer", str(d / "c.png"), str(d / "s.png"), "-o", str(d / "out.png"),
            "--content-mask", str(d / "cm.png"), "--style-mask", str(d / "sm.png"),
            "--weights", "random", "--size", "48", "--iterations", "3", "--device", "cpu", "--no-progress", *extra]


def test_cli_end_to_end(small_pair, capsys):
    assert cli.main(_args(small_pair)) == 0
    out = Image.open(small_pair / "out.png")
    assert out.size == (48, 32)
    md = json.loads((small_pair / "out.png.json").read_text())
    assert md["random_weights"] is True and md["weights"].startswith("random")
    assert md["preset"] == "full" and md["config"]["iterations"] == 3 and md["evaluations"] == 3
    assert md["config"]["segmentation"] == "gold"  # mask files given: the config says gold, not soft
    assert md["inputs"]["mask_kind"] == "gold" and md["labels"] == ["blue", "black"]
    assert {"setup", "optimise", "postprocess", "total"} <= set(md["timings"])
    assert "versions" in md and md["git_revision"]
    assert "RANDOM WEIGHTS" in capsys.readouterr().out


def test_cli_enhanced_preset_runs_its_chain(small_pair):
    """--preset enhanced (what `make demo PRESET=enhanced` runs) runs end to end and records its chain."""
    assert cli.main(_args(small_pair, "--preset", "enhanced")) == 0
    md = json.loads((small_pair / "out.png.json").read_text())
    assert md["preset"] == "enhanced"
    assert md["config"]["postprocess"] == "recursive_filter+colour_match+matting_smooth"
    assert md["config"]["smooth_lambda"] == 3.0


def test_cli_refuses_to_overwrite(small_pair, capsys):
    assert cli.main(_args(small_pair)) == 0
    before = (small_pair / "out.png").read_bytes()
    assert cli.main(_args(small_pair, "--alpha", "2")) == 2
    assert "already exists" in capsys.readouterr().err
    assert (small_pair / "out.png").read_bytes() == before
    assert cli.main(_args(small_pair, "--overwrite")) == 0


def _err(capsys, argv):
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_cli_bad_inputs(small_pair, capsys):
    d = small_pair
    assert "not found" in _err(capsys, _args(d)[:1] + [str(d / "nope.png")] + _args(d)[2:])
    (d / "text.png").write_text("hello")
    assert "cannot read" in _err(capsys, _args(d)[:1] + [str(d / "text.png")] + _args(d)[2:])
    bad = np.zeros((40, 60, 3), np.uint8)
    bad[:, :30] = (255, 128, 0)
    Image.fromarray(bad).save(d / "orange.png")
    argv = _args(d)
    argv[argv.index(str(d / "cm.png"))] = str(d / "orange.png")
    assert "outside the palette" in _err(capsys, argv)
    assert "theta_s" in _err(capsys, _args(d, "--theta-s", "2"))
    assert "style_weight" in _err(capsys, _args(d, "--beta", "-5"))
    assert "expected a number" in _err(capsys, _args(d, "--beta", "lots"))
    assert ">= 1" in _err(capsys, _args(d, "--iterations", "0"))
    assert "both --content-mask" in _err(capsys, _args(d)[:7] + _args(d)[9:])
    red = np.zeros((40, 60, 3), np.uint8)
    red[:20] = (255, 0, 0)
    Image.fromarray(red).save(d / "red.png")
    argv = _args(d)
    argv[argv.index(str(d / "cm.png"))] = str(d / "red.png")
    assert "--unmatched drop" in _err(capsys, argv)


def test_cli_missing_weights_is_one_line(small_pair, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PHOTOSTYLE_VGG_WEIGHTS", str(tmp_path / "absent.pth"))
    argv = _args(small_pair)
    argv[argv.index("random")] = "imagenet"
    assert "weights file not found" in _err(capsys, argv)


def test_console_script_runs(small_pair):
    exe = os.path.join(os.path.dirname(sys.executable), "photostyle")
    if not os.path.exists(exe):
        pytest.skip("console script not installed (pip install -e .)")
    with open(exe, encoding="utf-8", errors="replace") as f:
        if "photostyle_lib.doors.cli" not in f.read():
            pytest.skip("console script installed from an older tree (reinstall: pip install -e .)")
    proc = subprocess.run([exe, *_args(small_pair, "--preset", "gatys")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (small_pair / "out.png").exists()
    proc = subprocess.run([exe, "transfer", "missing.png", "x.png", "-o", str(small_pair / "z.png")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "not found" in proc.stderr


def test_cli_soft_segmentation_without_masks(small_pair):
    """Preset full without mask files runs the ADE20K segmenter (random tiny model here)."""
    d = small_pair
    argv = ["transfer", str(d / "c.png"), str(d / "s.png"), "-o", str(d / "seg.png"), "--weights", "random",
            "--segmenter", "random-tiny", "--size", "48", "--iterations", "2", "--device", "cpu", "--no-progress"]
    assert cli.main(argv) == 0
    md = json.loads((d / "seg.png.json").read_text())
    assert md["inputs"]["mask_kind"] == "soft" and md["labels"]
    assert md["inputs"]["segmenter_random_weights"] is True and md["inputs"]["segmenter"]["identity"]


def test_cli_random_segmenter_alone_marks_the_result(small_pair, capsys, monkeypatch, tmp_path):
    """ImageNet VGG (a stand-in file here) with a random segmenter: still a smoke test, and it says so."""
    import torch
    import torchvision

    torch.save(torchvision.models.vgg19(weights=None).state_dict(), tmp_path / "vgg.pth")
    monkeypatch.setenv("PHOTOSTYLE_VGG_WEIGHTS", str(tmp_path / "vgg.pth"))
    d = small_pair
    argv = ["transfer", str(d / "c.png"), str(d / "s.png"), "-o", str(d / "seg2.png"), "--weights", "imagenet",
            "--segmenter", "random-tiny", "--size", "48", "--iterations", "2", "--device", "cpu", "--no-progress"]
    assert cli.main(argv) == 0
    md = json.loads((d / "seg2.png.json").read_text())
    assert md["weights"].startswith("imagenet") and md["random_weights"] is True
    assert "RANDOM WEIGHTS" in capsys.readouterr().out


def test_cli_unwritable_output_fails_before_the_run(small_pair, capsys, monkeypatch):
    import photostyle_lib.experiments.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run_files", lambda *a, **k: pytest.fail("ran before checking the output"))
    (small_pair / "afile").write_text("x")
    argv = _args(small_pair)
    argv[argv.index("-o") + 1] = str(small_pair / "afile" / "out.png")
    assert "is a file, not a folder" in _err(capsys, argv)
    (small_pair / "adir.png").mkdir()
    argv[argv.index("-o") + 1] = str(small_pair / "adir.png")
    for extra in ([], ["--overwrite"]):  # a folder is not "already exists; pass --overwrite"
        err = _err(capsys, argv + extra)
        assert "is a folder; give a file path" in err and "already exists" not in err
    assert "not available" in _err(capsys, _args(small_pair, "--device", "mps")) or torch_has_mps()


def torch_has_mps():
    import torch

    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def test_random_weight_images_say_so_in_the_file(small_pair):
    assert cli.main(_args(small_pair)) == 0
    assert "RANDOM WEIGHTS" in Image.open(small_pair / "out.png").text.get("photostyle:weights", "")


def test_cli_never_writes_over_an_input(small_pair, capsys, monkeypatch):
    """Output = content, a mask, the weights file, through a symlink or ``..``: refused, even with
    --overwrite, before any run; the input's bytes are untouched."""
    import photostyle_lib.experiments.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run_files", lambda *a, **k: pytest.fail("ran before checking the output"))
    d = small_pair
    (d / "sub").mkdir()
    (d / "link.png").symlink_to(d / "cm.png")
    (d / "w.pth").write_bytes(b"weights")
    before = {n: (d / n).read_bytes() for n in ("c.png", "s.png", "cm.png", "sm.png", "w.pth")}
    for target, role in ((d / "c.png", "content"), (d / "sub" / ".." / "s.png", "style"),
                         (d / "link.png", "content mask"), (d / "sm.png", "style mask")):
        argv = _args(d, "--overwrite")
        argv[argv.index("-o") + 1] = str(target)
        assert f"is the {role} file" in _err(capsys, argv)
    argv = _args(d, "--overwrite")
    argv[argv.index("random")] = str(d / "w.pth")
    argv[argv.index("-o") + 1] = str(d / "w.png")
    (d / "w.png.json").symlink_to(d / "w.pth")  # the metadata path is an output too
    assert "is the weights file" in _err(capsys, argv)
    assert {n: (d / n).read_bytes() for n in before} == before


def test_cli_help_names_the_metadata_file(capsys):
    with pytest.raises(SystemExit):
        cli.main(["transfer", "--help"])
    assert "OUT.png.json" in capsys.readouterr().out


def _interrupt_from_call(n):
    """A layer_losses that raises KeyboardInterrupt (as Ctrl-C would) at its n-th call (1-based)."""
    from photostyle_lib.engine import objective

    real, calls = objective.layer_losses, {"n": 0}

    def wrapped(*a, **k):
        calls["n"] += 1
        if calls["n"] >= n:
            raise KeyboardInterrupt
        return real(*a, **k)
    return wrapped


@pytest.mark.parametrize("at_call", [1, 3])
def test_cli_ctrl_c_is_one_line_exit_130_and_writes_nothing(small_pair, capsys, monkeypatch, at_call):
    """Fault injection: Ctrl-C in the first loss evaluation (never 'the first loss evaluation was
    not finite') or mid-run: 'photostyle: interrupted', exit 130, and a previous result under the
    output name (with --overwrite) is left as it was -- no partial result replaces it."""
    from photostyle_lib.engine import objective

    assert cli.main(_args(small_pair)) == 0
    before = ((small_pair / "out.png").read_bytes(), (small_pair / "out.png.json").read_bytes())
    capsys.readouterr()
    monkeypatch.setattr(objective, "layer_losses", _interrupt_from_call(at_call))
    assert cli.main(_args(small_pair, "--overwrite")) == cli.EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "photostyle: interrupted\n"
    assert ((small_pair / "out.png").read_bytes(), (small_pair / "out.png.json").read_bytes()) == before


def test_cli_ctrl_c_during_import_is_one_line(small_pair):
    """Fault injection: KeyboardInterrupt raised by the import of torch (Ctrl-C in the first
    seconds): one line and exit 130, no traceback -- the CLI module imports the engine inside main."""
    script = ("import sys\n"
              "class CtrlC:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name == 'torch':\n"
              "            raise KeyboardInterrupt\n"
              "sys.meta_path.insert(0, CtrlC())\n"
              "from photostyle_lib.doors.cli import main\n"
              f"sys.exit(main({_args(small_pair)!r}))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130 and proc.stderr == "photostyle: interrupted\n", proc.stderr


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n" + bytes(40), bytes(range(256)) * 4])
def test_cli_weights_not_a_torch_file(small_pair, capsys, content):
    (small_pair / "w.bin").write_bytes(content)
    argv = _args(small_pair)
    argv[argv.index("random")] = str(small_pair / "w.bin")
    err = _err(capsys, argv)
    assert str(small_pair / "w.bin") in err and "not a PyTorch weights file" in err and "torch.save" in err


def test_cli_mask_of_another_size_is_noted(small_pair):
    d = small_pair
    Image.open(d / "cm.png").resize((30, 20), Image.NEAREST).save(d / "cm_small.png")
    argv = _args(d)
    argv[argv.index(str(d / "cm.png"))] = str(d / "cm_small.png")
    assert cli.main(argv) == 0
    notes = json.loads((d / "out.png.json").read_text())["notes"]
    assert any("content mask" in n and "20x30" in n and "40x60" in n and "resized" in n for n in notes)
    assert not any("style mask" in n for n in notes)  # the style mask has its photo's size


def test_cli_offline_without_masks_fails_fast(small_pair, capsys, monkeypatch, tmp_path):
    """Default preset, no mask files, the segmenter not cached and the hub unreachable: one line at
    once naming the CLI's options, not tens of seconds of hub retries (no connection is even tried:
    a check that holds on a loaded machine, where a wall-clock limit would not)."""
    import socket

    import huggingface_hub.constants
    import photostyle_lib.experiments.pipeline as pipeline

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setattr(transfer, "_hub_reachable", lambda timeout=2.0: False)
    monkeypatch.delenv("PHOTOSTYLE_SEGMENTER", raising=False)
    monkeypatch.setattr(pipeline, "run_files", lambda *a, **k: pytest.fail("started the run"))
    d = small_pair
    argv = ["transfer", str(d / "c.png"), str(d / "s.png"), "-o", str(d / "o.png"), "--weights", "random",
            "--device", "cpu", "--no-progress"]
    tried = []

    def no_network(self, address, *a, **k):
        tried.append(address)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    err = _err(capsys, argv)
    assert tried == []
    assert "--segmenter random-tiny" in err and "--content-mask" in err and "checkpoint='random'" not in err


# ----------------------------------------------------------------------------- the stand-in network and auto

from conftest import HED_INSTALL, needs_hed  # noqa: E402


def _stand_in_args(d, weights, out="hed.png"):
    argv = _args(d, "--overwrite")
    argv[argv.index("random")] = weights
    argv[argv.index("-o") + 1] = str(d / out)
    return argv


@needs_hed
def test_cli_stand_in_weights_say_so_in_the_file_the_metadata_and_the_final_line(small_pair, capsys):
    from photostyle_lib.io import images
    from photostyle_lib.features import vgg
    from photostyle_lib.io.metadata import file_digest

    assert cli.main(_stand_in_args(small_pair, "hed-vgg16")) == 0
    out = capsys.readouterr().out
    assert "[VGG-16 stand-in (HED, BSDS500): not the paper's ImageNet VGG-19]" in out
    assert Image.open(small_pair / "hed.png").text == images.STAND_IN_TEXT
    md = json.loads((small_pair / "hed.png.json").read_text())
    assert md["stand_in_weights"] is True and md["random_weights"] is False
    assert md["weights_warning"] == images.STAND_IN_BANNER and md["weights"].startswith(vgg.STAND_IN_LABEL)
    net = md["network"]
    assert (net["network"], net["kind"], net["convention"]) == ("VGG-16", "stand-in", "caffe")
    assert net["sha256"] == file_digest(vgg.hed_weights_path()) and net["weights_choice"] is None
    assert md["evaluations"] == 3 and np.isfinite(md["best_loss"]["total"])


def test_weights_names_and_install_line_agree_with_the_library():
    from photostyle_lib.features import vgg

    assert set(transfer.WEIGHTS_NAMES) == set(vgg.NAMED_WEIGHTS) and HED_INSTALL == vgg.HED_INSTALL


def test_cli_auto_offline_takes_the_original_vgg19_and_says_why(small_pair, capsys, monkeypatch, tmp_path):
    from photostyle_lib.io import images
    from photostyle_lib.engine import extractor
    from photostyle_lib.features import original_vgg19, vgg
    from photostyle_lib.features import weights as vgg_weights  # where resolve_weights looks the probe up
    from photostyle_lib.io.metadata import file_digest

    monkeypatch.delenv(vgg.WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    monkeypatch.setattr(vgg_weights, "imagenet_available", lambda *a, **k: (False, "offline (test probe)"))
    extractor._cached_extractor.cache_clear()  # as in a fresh process: earlier tests built "auto" extractors
    assert cli.main(_stand_in_args(small_pair, "auto", "auto.png")) == 0
    captured = capsys.readouterr()
    assert "weights auto -> imagenet-vgg19-caffe" in captured.err and "offline (test probe)" in captured.err
    assert "original VGG-19 (Caffe release, 8-bit quantised)" in captured.out and "stand-in" not in captured.out
    md = json.loads((small_pair / "auto.png.json").read_text())
    assert md["weights_choice"]["requested"] == "auto" and md["weights_choice"]["weights"] == "imagenet-vgg19-caffe"
    assert "offline (test probe)" in md["weights_choice"]["reason"]
    net = md["network"]
    assert (net["network"], net["kind"], net["convention"]) == ("VGG-19", "original", "caffe")
    assert net["sha256"] == file_digest(original_vgg19.weights_path())
    assert md["stand_in_weights"] is False and md["random_weights"] is False
    assert md["weights_warning"] == images.ORIGINAL_VGG19_BANNER
    assert Image.open(small_pair / "auto.png").text == images.weights_text(images.ORIGINAL_VGG19_BANNER)


def test_cli_auto_takes_cached_imagenet_without_a_banner(small_pair, capsys, monkeypatch, tmp_path):
    import torch
    import torchvision

    from photostyle_lib.features import vgg
    from photostyle_lib.features import weights as vgg_weights  # where resolve_weights looks the probe up

    monkeypatch.delenv(vgg.WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub-home"))
    cached = vgg.imagenet_weights_path("vgg19")
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), cached)  # a stand-in for the real file

    def no_network(*a, download=True, **k):  # a cached file must be found without a probe of the network
        assert not download or cached.is_file()
        return True, f"{cached} is present"

    monkeypatch.setattr(vgg_weights, "imagenet_available", no_network)
    assert cli.main(_stand_in_args(small_pair, "auto", "auto19.png")) == 0
    captured = capsys.readouterr()
    assert "auto -> " not in captured.err and "[" not in captured.out.split("on cpu")[-1]
    md = json.loads((small_pair / "auto19.png.json").read_text())
    assert md["weights_choice"]["weights"] == "imagenet" and md["network"]["network"] == "VGG-19"
    assert md["weights_warning"] is None and "photostyle:weights" not in Image.open(small_pair / "auto19.png").text


def test_cli_weights_convention_reaches_the_network(small_pair, tmp_path):
    """A plain VGG-19 file run as Caffe weights: the metadata's network says caffe, scale 255 * mean std."""
    import torch
    import torchvision

    torch.save(torchvision.models.vgg19(weights=None).state_dict(), tmp_path / "v.pth")
    argv = _stand_in_args(small_pair, str(tmp_path / "v.pth"), "conv.png") + ["--weights-convention", "caffe"]
    assert cli.main(argv) == 0
    net = json.loads((small_pair / "conv.png.json").read_text())["network"]
    assert net["convention"] == "caffe" and net["feature_scale"] == pytest.approx(255 * np.mean([0.229, 0.224, 0.225]))


def test_cli_weights_convention_bad_choice_is_one_line(small_pair, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(_args(small_pair, "--weights-convention", "bgr"))
    assert exc.value.code == 2 and "invalid choice: 'bgr'" in capsys.readouterr().err


def test_cli_version_and_help_examples(capsys):
    from photostyle_lib import __version__

    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"photostyle {__version__}"
    with pytest.raises(SystemExit):
        cli.main(["transfer", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--config out.png.json" in out and "--save-every" in out
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "photostyle batch" in capsys.readouterr().out


def test_cli_config_toml_flags_win(small_pair):
    d = small_pair
    (d / "run.toml").write_text('content = "c.png"\nstyle = "s.png"\ncontent-mask = "cm.png"\n'
                                'style_mask = "sm.png"\nweights = "random"\nsize = 48\niterations = 5\n'
                                'device = "cpu"\nno-progress = true\ncontent_weight = 2.5\nrf_sigma_r = 0.3\n')
    argv = ["transfer", "-o", str(d / "t.png"), "--config", str(d / "run.toml"), "--iterations", "2"]
    assert cli.main(argv) == 0
    md = json.loads((d / "t.png.json").read_text())
    assert md["config"]["iterations"] == 2  # the flag, not the file's 5
    assert md["config"]["content_weight"] == 2.5 and md["config"]["rf_sigma_r"] == 0.3  # the file's
    assert md["inputs"]["content"] == str(d / "c.png")  # relative to the file's folder
    assert Image.open(d / "t.png").size == (48, 32)


def test_cli_bad_config_is_one_line(small_pair, capsys):
    d = small_pair
    (d / "bad.toml").write_text("iterations = 0\n")
    assert ">= 1" in _err(capsys, _args(d, "--config", str(d / "bad.toml")))
    (d / "typo.toml").write_text("iteratoins = 3\n")
    assert "unknown option 'iteratoins'" in _err(capsys, _args(d, "--config", str(d / "typo.toml")))
    (d / "broken.toml").write_text("iterations = = 3\n")
    assert "cannot be read" in _err(capsys, _args(d, "--config", str(d / "broken.toml")))
    (d / "other.json").write_text('{"a": 1}')
    assert "not a result's metadata" in _err(capsys, _args(d, "--config", str(d / "other.json")))


def test_cli_rerun_from_metadata(small_pair):
    """A result's metadata as --config reruns it: the same config, inputs and (up to rounding) image."""
    d = small_pair
    assert cli.main(_args(d, "--seed", "3", "--alpha", "2", "--theta-s", "0.3")) == 0
    assert cli.main(["transfer", "-o", str(d / "again.png"), "--config", str(d / "out.png.json"),
                     "--no-progress"]) == 0
    first = json.loads((d / "out.png.json").read_text())
    again = json.loads((d / "again.png.json").read_text())
    assert again["config"] == first["config"] and again["preset"] == first["preset"]
    assert {k: v for k, v in again["inputs"].items()} == first["inputs"]
    a = np.asarray(Image.open(d / "out.png"), np.float32)
    b = np.asarray(Image.open(d / "again.png"), np.float32)
    assert a.shape == b.shape and np.abs(a - b).mean() < 2.0
    # a flag still wins over the metadata
    assert cli.main(["transfer", "-o", str(d / "third.png"), "--config", str(d / "out.png.json"),
                     "--iterations", "2", "--no-progress"]) == 0
    third = json.loads((d / "third.png.json").read_text())
    assert third["config"]["iterations"] == 2 and third["config"]["content_weight"] == 2.0


def test_cli_rerun_of_older_metadata_uses_the_earlier_engine(small_pair):
    """Metadata written before a field existed (here curvature_cosine and line_search, stripped) reruns with
    the value that reproduces the earlier engine (runs.LATER_FIELDS), not today's default; present fields win."""
    from photostyle_lib.experiments.pipeline import LATER_FIELDS
    d = small_pair
    assert cli.main(_args(d, "--iterations", "2")) == 0
    md = json.loads((d / "out.png.json").read_text())
    assert md["config"]["curvature_cosine"] == 1e-2 and md["config"]["line_search"] == "adaptive"
    old = dict(md, config={k: v for k, v in md["config"].items() if k not in ("curvature_cosine", "line_search")})
    (d / "old.png.json").write_text(json.dumps(old))
    assert cli.main(["transfer", "-o", str(d / "again.png"), "--config", str(d / "old.png.json"),
                     "--no-progress"]) == 0
    again = json.loads((d / "again.png.json").read_text())["config"]
    assert again["curvature_cosine"] == LATER_FIELDS["curvature_cosine"] == 0.0
    assert again["line_search"] == LATER_FIELDS["line_search"] == "halve"
    assert {k: again[k] for k in old["config"]} == old["config"]


def test_cli_save_every_writes_labelled_iterates(small_pair, capsys):
    d = small_pair
    assert cli.main(_args(d, "--iterations", "5", "--save-every", "2")) == 0
    assert "2 intermediate images" in capsys.readouterr().out
    for it in (2, 4):
        im = Image.open(d / f"out.iter{it:04d}.png")
        assert im.size == (48, 32) and "RANDOM WEIGHTS" in im.text["photostyle:weights"]
    assert not (d / "out.iter0001.png").exists() and not (d / "out.iter0005.png").exists()
    a = np.asarray(Image.open(d / "out.iter0002.png"), np.float32)
    b = np.asarray(Image.open(d / "out.iter0004.png"), np.float32)
    assert np.abs(a - b).max() > 0  # the optimiser moved between the snapshots


def test_cli_segment_round_trip(small_pair):
    """Written palette masks, read back by load_gold_masks, give the segmenter's labels and label maps."""
    from photostyle_lib.experiments import pipeline
    from photostyle_lib.io.images import load_image
    from photostyle_lib.semantic.masks import label_map, load_gold_masks

    d = small_pair
    argv = ["segment", str(d / "c.png"), str(d / "s.png"), "-o", str(d / "m"), "--segmenter", "random-tiny",
            "--size", "48", "--device", "cpu"]
    assert cli.main(argv) == 0
    legend = json.loads((d / "m" / "legend.json").read_text())
    expected = pipeline.editable_masks(load_image(d / "c.png", max_size=48), load_image(d / "s.png", max_size=48),
                                       segmenter="random-tiny", device="cpu")
    assert legend["colours"] == dict(zip(expected.colours, expected.labels))
    assert legend["source"]["random_weights"] is True and len(expected.labels) >= 2
    back = load_gold_masks(d / "m" / "content_mask.png", d / "m" / "style_mask.png")
    names = tuple(legend["colours"][c] for c in back.labels)
    in_content = {expected.labels[k] for k in np.unique(expected.content)}
    assert set(names) == in_content  # the content's labels: the shared ones
    to_expected = np.array([expected.labels.index(n) for n in names])
    assert np.array_equal(to_expected[label_map(back.content).numpy()], expected.content)
    # the style file holds every style label (a style-only one is dropped by the alignment only)
    style_back = load_gold_masks(d / "m" / "style_mask.png", d / "m" / "style_mask.png")
    s_names = [expected.labels.index(legend["colours"][c]) for c in style_back.labels]
    assert np.array_equal(np.array(s_names)[label_map(style_back.content).numpy()], expected.style)
    assert cli.main(argv) == 2  # refuses to overwrite
    assert cli.main(argv + ["--overwrite"]) == 0


def test_weight_flags_and_config_keys_go_through_the_symbol_table(tmp_path):
    """--alpha/--beta/--gamma and the config file's content_weight/... land on engine.symbols' fields."""
    from photostyle_lib.engine.symbols import SYMBOL_OF, WEIGHT_FIELDS

    assert arguments.FIELD_FLAGS == SYMBOL_OF
    args = arguments.parse_args(["transfer", "a.png", "b.png", "-o", "o.png", "--alpha", "2", "--gamma", "0.5"])
    over = transfer.config_overrides(args)
    assert over["content_weight"] == 2.0 and over["similarity_weight"] == 0.5 and "style_weight" not in over
    cfg = tmp_path / "run.toml"
    cfg.write_text("style_weight = 3e6\n")
    args = arguments.parse_args(["transfer", "a.png", "b.png", "-o", "o.png", "--config", str(cfg)])
    assert args.beta == 3e6 and transfer.config_overrides(args)[WEIGHT_FIELDS["beta"]] == 3e6


def test_figures_usage_errors_are_one_line(capsys):
    for argv in (["figures"], ["figures", "run"], ["figures", "run", "--profile", "fast"],
                 ["figures", "run", "--profile", "ci", "--dpi", "0"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2, argv
        assert len(capsys.readouterr().err.strip().splitlines()) == 1, argv


def test_cli_save_every_never_writes_over_an_input_and_checks_snapshots_first(small_pair, capsys, monkeypatch):
    """Issue 37, case 2: a snapshot name that is the content file is refused even with --overwrite; an
    existing snapshot is refused before the run (not after it, naming overwrite=True)."""
    import shutil

    import photostyle_lib.experiments.pipeline as pipeline

    d = small_pair
    shutil.copy(d / "c.png", d / "snap.iter0002.png")
    before = (d / "snap.iter0002.png").read_bytes()
    argv = _args(d, "--iterations", "5", "--save-every", "2", "--overwrite")
    argv[1] = str(d / "snap.iter0002.png")
    argv[argv.index("-o") + 1] = str(d / "snap.png")
    monkeypatch.setattr(pipeline, "run_files", lambda *a, **k: pytest.fail("ran before checking snapshots"))
    err = _err(capsys, argv)
    assert "is the content file" in err and "never replaces an input" in err
    assert (d / "snap.iter0002.png").read_bytes() == before and not (d / "snap.png").exists()
    (d / "out.iter0004.png").write_bytes(b"mine")
    err = _err(capsys, _args(d, "--iterations", "5", "--save-every", "2"))
    assert "out.iter0004.png already exists" in err and "--overwrite" in err and "overwrite=True" not in err
    assert not (d / "out.png").exists() and (d / "out.iter0004.png").read_bytes() == b"mine"


def test_cli_one_line_for_numbers_out_of_range(small_pair, capsys):
    """Issue 37, case 7/8: a seed beyond 64 bits, content_layers = 5 in --config, --size 1: one line
    naming the option, exit 2, no traceback."""
    cfg = small_pair / "bad.toml"
    cfg.write_text("content_layers = 5\n")
    for extra, expected in ((["--seed", "99999999999999999999999"], "seed must be an integer in [0, "),
                            (["--config", str(cfg)], "content_layers must be a tuple of layer names, got 5"),
                            (["--size", "1"], "--size: expected a long side of at least 8 pixels")):
        err = _err(capsys, _args(small_pair, *extra))  # the last --size wins
        assert expected in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_cli_full_disk_while_the_metadata_is_written(small_pair, capsys, monkeypatch):
    """Issue 37, case 7: ENOSPC while the metadata's temp file is written: one line, exit 2, neither the
    image nor the metadata appears, no temp file is left."""
    import errno

    real = os.fsync

    def full(fd):
        if ".png.json." in os.readlink(f"/proc/self/fd/{fd}"):  # the metadata's temp file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    monkeypatch.setattr(os, "fsync", full)
    err = _err(capsys, _args(small_pair))
    assert "No space left on device" in err and "out.png.json" in err
    assert sorted(p.name for p in small_pair.iterdir()) == ["c.png", "cm.png", "s.png", "sm.png"]


def test_cli_sigterm_writes_nothing_and_leaves_no_temp(small_pair):
    """Issue 37, case 5: SIGTERM mid-run ends like Ctrl-C (exit 130, one line, nothing written); a temp
    file a killed process left beside the output is removed by the next run."""
    import signal
    import time

    from photostyle_lib.io.outputs import temp_prefix

    argv = _args(small_pair, "--iterations", "100000")
    proc = subprocess.Popen([sys.executable, "-c", f"import sys; from photostyle_lib.doors.cli import main; "
                             f"sys.exit(main({argv!r}))"], stderr=subprocess.PIPE, text=True)
    time.sleep(12)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "photostyle: interrupted", err
    assert sorted(p.name for p in small_pair.iterdir()) == ["c.png", "cm.png", "s.png", "sm.png"]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = small_pair / (temp_prefix("out.png").replace(f"~{os.getpid()}~", f"~{int(dead.stdout)}~") + "x.tmp")
    left.write_bytes(b"half an image")
    assert cli.main(_args(small_pair)) == 0
    assert not left.exists() and (small_pair / "out.png").exists()


def test_cli_segment_never_overwrites_its_input_and_fails_fast_offline(small_pair, capsys, monkeypatch, tmp_path):
    """Issue 37, cases 3 and 8: segment -o DIR --overwrite with DIR/content_mask.png as the content is
    refused before segmenting; offline without the checkpoint it fails at once in one line."""
    import time

    import huggingface_hub.constants

    d = small_pair
    (d / "m").mkdir()
    (d / "c.png").rename(d / "m" / "content_mask.png")
    before = (d / "m" / "content_mask.png").read_bytes()
    argv = ["segment", str(d / "m" / "content_mask.png"), str(d / "s.png"), "-o", str(d / "m"), "--segmenter",
            "random-tiny", "--size", "48", "--device", "cpu", "--overwrite"]
    err = _err(capsys, argv)
    assert "is the content file" in err and (d / "m" / "content_mask.png").read_bytes() == before
    assert sorted(p.name for p in (d / "m").iterdir()) == ["content_mask.png"]
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setattr(transfer, "_hub_reachable", lambda timeout=2.0: False)
    monkeypatch.delenv("PHOTOSTYLE_SEGMENTER", raising=False)
    t = time.perf_counter()
    err = _err(capsys, ["segment", str(d / "m" / "content_mask.png"), str(d / "s.png"), "-o", str(d / "n"),
                        "--device", "cpu"])
    assert time.perf_counter() - t < 5 and "photostyle segment" in err and "random-tiny" in err
    assert not (d / "n").exists()


def test_figures_bad_timeout_and_output_file_are_one_line(capsys, tmp_path, monkeypatch):
    """Issue 37, cases 7 and 8: --timeout nan / -5 / 0 refused by the parser; --output-dir FILE one line."""
    for value in ("nan", "-5", "0", "inf"):
        with pytest.raises(SystemExit) as info:
            cli.main(["figures", "run", "--profile", "ci", f"--timeout={value}"])
        assert info.value.code == 2 and "seconds > 0" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert cli.main(["figures", "run", "--profile", "ci", "--output-dir", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and err.count("\n") == 1
