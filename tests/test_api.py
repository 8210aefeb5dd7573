"""The package root's public API: lazy (no torch on ``import photostyle_lib``), and the README's example runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

import photostyle_lib
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import ORIGINAL_VGG19_BANNER, RANDOM_WEIGHTS_BANNER, WEIGHTS_TEXT_KEY, weights_text


def test_import_loads_no_torch():
    """``import photostyle_lib`` stays light: torch and numpy load only when a name that needs them is used."""
    code = ("import sys, photostyle_lib\n"
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'imported at import'\n"
            "photostyle_lib.PhotostyleError, photostyle_lib.__version__\n"
            "assert 'torch' not in sys.modules\n"
            "photostyle_lib.stylize\n"
            "assert 'torch' in sys.modules\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_public_names_resolve_and_are_listed():
    expected = {"data_dir", "load_image", "save_image", "load_gold_masks", "get_preset", "stylize", "save_result",
                "TransferConfig", "PhotostyleError"}
    assert expected <= set(photostyle_lib.__all__) <= set(dir(photostyle_lib))
    for name in photostyle_lib.__all__:
        assert getattr(photostyle_lib, name) is not None, name
    from photostyle_lib.engine.transfer import stylize
    assert photostyle_lib.stylize is stylize
    with pytest.raises(AttributeError, match="no attribute 'styl1ze'"):
        photostyle_lib.styl1ze  # noqa: B018


def test_readme_example_runs_and_labels_its_result(data_dir, tmp_path, monkeypatch):
    """The README's example, at 48 px and 2 iterations: the PNG names its network, the JSON is its metadata."""
    monkeypatch.setenv("PHOTOSTYLE_DATA", str(data_dir))
    monkeypatch.chdir(tmp_path)
    size, iterations = 48, 2
    from photostyle_lib import data_dir, get_preset, load_gold_masks, load_image, save_result, stylize
    data = data_dir()
    content = load_image(data / "input" / "in1.png", size)
    style = load_image(data / "style" / "tar1.png", size)
    masks = load_gold_masks(data / "segmentation" / "in1.png", data / "segmentation" / "tar1.png")
    config = get_preset("full", weights="imagenet-vgg19-caffe", iterations=iterations)
    result = stylize(content, style, config, masks=masks)
    written = save_result(result, "pair1_full.png", overwrite=True)

    assert written.resolve() == tmp_path / "pair1_full.png"
    with Image.open(written) as im:
        assert max(im.size) == size
        assert im.text.get(WEIGHTS_TEXT_KEY) == weights_text(ORIGINAL_VGG19_BANNER)[WEIGHTS_TEXT_KEY]
    md = json.loads((tmp_path / "pair1_full.png.json").read_text())
    assert md["config"]["weights"] == "imagenet-vgg19-caffe" and md["evaluations"] == iterations
    assert md["weights_warning"] == ORIGINAL_VGG19_BANNER and len(md["image_sha256"]) == 64
    assert md["labels"] == list(result.labels) and md["output"] == "pair1_full.png"


def test_save_result_never_replaces_a_file_unless_asked_nor_an_input(tmp_path):
    import torch

    from photostyle_lib import get_preset, save_result, stylize

    content = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    result = stylize(content, content.flip(-1), get_preset("gatys", weights="random", iterations=2, device="cpu"),
                     progress=False)
    out = tmp_path / "r.png"
    out.write_bytes(b"the user's file")
    with pytest.raises(PhotostyleError, match="already exists"):
        save_result(result, out)
    assert out.read_bytes() == b"the user's file"
    save_result(result, out, overwrite=True)
    with Image.open(out) as im:
        assert im.text.get(WEIGHTS_TEXT_KEY) == weights_text(RANDOM_WEIGHTS_BANNER)[WEIGHTS_TEXT_KEY]   # random weights say so in the file
    photo = tmp_path / "photo.png"
    photo.write_bytes(out.read_bytes())
    with pytest.raises(PhotostyleError, match="input"):
        save_result(result, photo, overwrite=True, inputs={"content": photo})
    with pytest.raises(PhotostyleError, match="image suffix"):
        save_result(result, tmp_path / "r.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "r.png", "r.png.json"]
