"""Image reading in every common mode, writing, and clear errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import load_image, save_image, scaled_size, tensor_to_array


def _rgb(h=6, w=8):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_roundtrip(tmp_path):
    arr = _rgb()
    Image.fromarray(arr).save(tmp_path / "a.png")
    t = load_image(tmp_path / "a.png")
    assert t.shape == (1, 3, 6, 8) and t.dtype == torch.float32
    assert np.allclose(tensor_to_array(t) * 255, arr, atol=1e-3)
    save_image(t, tmp_path / "b.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), arr)


def test_grey_palette_rgba_16bit(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    t = load_image(tmp_path / "g.png")
    assert t.shape == (1, 3, 6, 8) and torch.allclose(t[0, 0], t[0, 2])
    assert t[0, 1, 0, 1].item() == pytest.approx(5 / 255)

    Image.fromarray(_rgb()).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (1, 3, 6, 8)

    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 0  # fully transparent red -> white after compositing
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert torch.allclose(load_image(tmp_path / "a.png"), torch.ones(1, 3, 6, 8))

    sixteen = (np.arange(48).reshape(6, 8) * 1000).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "s.png")
    t = load_image(tmp_path / "s.png")
    assert t.max().item() == pytest.approx(47000 / 65535, rel=1e-5)


def test_max_size_keeps_aspect_and_never_upscales(tmp_path):
    Image.fromarray(_rgb(40, 100)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png", max_size=50).shape == (1, 3, 20, 50)
    assert load_image(tmp_path / "a.png", max_size=500).shape == (1, 3, 40, 100)
    assert scaled_size(437, 700, 256) == (160, 256)


def test_bad_files(tmp_path):
    with pytest.raises(PhotostyleError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("this is not an image")
    with pytest.raises(PhotostyleError, match="cannot read"):
        load_image(tmp_path / "notes.png")
    with pytest.raises(PhotostyleError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(PhotostyleError, match="max_size"):
        scaled_size(10, 10, -3)


def test_save_refuses_to_overwrite(tmp_path):
    t = torch.rand(1, 3, 4, 4)
    save_image(t, tmp_path / "o.png")
    with pytest.raises(PhotostyleError, match="already exists"):
        save_image(t, tmp_path / "o.png")
    save_image(torch.zeros(1, 3, 4, 4), tmp_path / "o.png", overwrite=True)
    assert np.asarray(Image.open(tmp_path / "o.png")).max() == 0


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(_rgb(6, 8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the photo is 8 high and 6 wide as viewed
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (1, 3, 8, 6)


def test_save_image_is_atomic_under_sigkill(tmp_path):
    """Fault injection: a process killed (SIGKILL) half-way through writing a PNG over an old one
    leaves the old file intact and readable (the new bytes went to a temp file, never renamed)."""
    import subprocess
    import sys
    import textwrap

    old = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    save_image(old, tmp_path / "o.png")
    before = (tmp_path / "o.png").read_bytes()
    script = textwrap.dedent(f"""
        import os, signal, torch
        from PIL import Image
        from photostyle_lib.io.images import save_image
        real = Image.Image.save
        def half_then_die(self, fp, *a, **k):
            fp.write(b"\\x89PNG partial")
            fp.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        Image.Image.save = half_then_die
        save_image(torch.zeros(1, 3, 8, 8), {str(tmp_path / "o.png")!r}, overwrite=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert (tmp_path / "o.png").read_bytes() == before
    assert torch.allclose(load_image(tmp_path / "o.png"), old, atol=0.5 / 255 + 1e-6)


def test_full_disk_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    import errno

    save_image(torch.ones(1, 3, 4, 4), tmp_path / "o.png")
    before = (tmp_path / "o.png").read_bytes()

    def full(self, fp, *a, **k):
        fp.write(b"\x89PNG")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(PhotostyleError, match="No space left.*unchanged"):
        save_image(torch.zeros(1, 3, 4, 4), tmp_path / "o.png", overwrite=True)
    assert (tmp_path / "o.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]


def test_image_and_metadata_written_together_with_one_mode(tmp_path, monkeypatch):
    """save_run (io.results.write_result_files): PNG and JSON replace the old pair together (a failure while staging the JSON
    leaves the old pair), both with images.FILE_MODE (0o666 less the umask), and the JSON records
    the PNG's sha256."""
    import json
    import os
    import stat

    from photostyle_lib.io import images, metadata
    from photostyle_lib.experiments import pipeline
    from photostyle_lib.engine.presets import get_preset
    from photostyle_lib.engine.transfer import stylize

    content = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    result = stylize(content, content.flip(-1), get_preset("gatys", weights="random", iterations=2, device="cpu"),
                     progress=False)
    run = pipeline.Run(result=result, content=content, style=content, masks=None, preset="gatys")
    out, meta = pipeline.save_run(run, tmp_path / "r.png")
    assert json.loads(meta.read_text())["image_sha256"] == metadata.file_digest(out)
    mask = os.umask(0o022)
    os.umask(mask)
    assert images.FILE_MODE == 0o666 & ~mask
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(meta.stat().st_mode) == images.FILE_MODE
    pair = (out.read_bytes(), meta.read_bytes())

    def fail(*a, **k):
        raise KeyboardInterrupt
    from photostyle_lib.io import results
    monkeypatch.setattr(results, "stage_json", fail)
    run2 = pipeline.Run(result=stylize(content, content, get_preset("gatys", weights="random", iterations=3,
                                                                     device="cpu"), progress=False),
                        content=content, style=content, masks=None, preset="gatys")
    with pytest.raises(KeyboardInterrupt):
        pipeline.save_run(run2, out, overwrite=True)
    assert (out.read_bytes(), meta.read_bytes()) == pair
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png", "r.png.json"]


def test_one_image_check_for_arrays_and_tensors():
    """as_image_tensor and as_image_array agree: same values both ways, the same errors."""
    from photostyle_lib.io.images import as_image_array, as_image_tensor

    rng = np.random.default_rng(0)
    arr = rng.random((20, 24, 3))
    t = as_image_tensor("x", arr)
    assert t.shape == (1, 3, 20, 24) and t.dtype == torch.float32
    assert np.allclose(as_image_array("x", t), arr, atol=1e-7)            # round trip (float32 precision)
    assert torch.equal(as_image_tensor("x", t[0]), t)                      # (3, H, W) accepted
    bad = {
        "values must lie in [0, 1]": arr * 255,
        "NaN or infinite": np.where(arr > 0.5, np.nan, arr),
        "shape": arr[..., :2],
        "empty": np.zeros((0, 4, 3)),
    }
    for what, a in bad.items():
        for fn in (as_image_array, as_image_tensor):
            for x in (a, torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]):
                with pytest.raises(PhotostyleError, match="content") as info:
                    fn("content", x)
                assert what in str(info.value) or "shape" in str(info.value), (fn.__name__, what, info.value)
    for fn in (as_image_array, as_image_tensor):
        for x in (np.zeros((8, 8, 3), np.uint8), torch.zeros(1, 3, 8, 8, dtype=torch.uint8)):
            with pytest.raises(PhotostyleError, match="divide 8-bit images by 255"):
                fn("content", x)
    with pytest.raises(PhotostyleError, match="batch of 2"):
        as_image_tensor("content", torch.zeros(2, 3, 8, 8))
    with pytest.raises(PhotostyleError, match="at least 16x16"):
        as_image_tensor("content", torch.zeros(1, 3, 8, 20), min_side=16)


@pytest.mark.parametrize("side", [100_000, 12_000])
def test_decompression_bomb_is_one_line(tmp_path, side, recwarn):
    """Issue 37, case 7: a PNG declaring 100000 x 100000 px (Pillow's DecompressionBombError) or 144 MP
    (its two-line warning, then a failure): one PhotostyleError naming the file, no warning printed."""
    import struct
    import zlib

    from photostyle_lib.io.images import read_rgb_array

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))
    with pytest.raises(PhotostyleError, match="bomb.png declares more than .* pixels"):
        read_rgb_array(path)
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_images_re_exports_the_atomic_writes_and_the_banners():
    """Callers keep importing writes and banners from ``io.images``."""
    from photostyle_lib.io import atomic, images, provenance

    for module in (atomic, provenance):
        public = [n for n, v in vars(module).items() if not n.startswith("_") and n not in ("PathLike", "IO")
                  and (n.isupper() or getattr(v, "__module__", None) == module.__name__)]
        assert public and [n for n in public if getattr(images, n, None) is not getattr(module, n)] == []
