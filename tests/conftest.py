"""Shared fixtures: tiny seeded synthetic images and the dataset location."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "luan2017"


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
    from photostyle_lib.masks import SemanticMasks

    c = torch.zeros(2, 40, 64)
    c[0, :20], c[1, 20:] = 1, 1
    s = torch.zeros(2, 48, 48)
    s[0, :, :24], s[1, :, 24:] = 1, 1
    return SemanticMasks(c, s, ("sky", "ground"), kind="gold")
