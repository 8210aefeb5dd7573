#!/usr/bin/env python3
"""Seconds for the photorealism machinery: matting Laplacian, its loss gradient, the recursive filter.

For each long side (default 256, 512, 700 px at the dataset's 700x437 aspect,
i.e. 437 rows x 700 columns at 700) it times, on the CPU:

* ``laplacian``: ``matting.matting_laplacian`` (eps 1e-7, 3x3 windows), next to
  pymatting's ``cf_laplacian`` (numba), the best open-source implementation,
  measured in the same run when pymatting is importable (``pip install pymatting``;
  it is not a dependency of the package) -- its JIT compilation is excluded;
* ``loss_grad``: one forward + backward of ``matting.photorealism_loss`` (float32,
  torch sparse CSR), what one optimisation step adds;
* ``rf``: ``postprocess.recursive_filter`` (sigma_s 60, sigma_r 100/255, 3 iterations,
  3 channels), next to OpenCV's ``ximgproc.dtFilter(..., DTF_RF)`` (float32, one
  thread) when OpenCV's contrib modules are importable (``pip install
  opencv-contrib-python-headless``; not a dependency), with the largest difference
  between the two; and ``refine``, the paper's eq. (9) (two filters, run as one on
  6 channels).

The image is the dataset's in1.png ($PHOTOSTYLE_DATA, ./data/luan2017 or
../shared/data/luan2017) resized to each size, or a seeded smooth image with noise
when it is absent. Each time is the best (minimum) of ``--repeat`` runs after one
warm-up (numba compilation excluded): on a shared machine the minimum is the least
disturbed by other load. Ours (numpy, scipy, numba kernels), pymatting and OpenCV
run on one core; torch's sparse product uses ``--threads`` threads. A peer that is
not installed is reported as such and its columns are left empty.

    python benchmarks/bench_photorealism.py [--sizes 256 512 700] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from photostyle_lib.io.images import read_rgb_array
from photostyle_lib.photoreal.matting import laplacian_to_torch, matting_laplacian, photorealism_loss
from photostyle_lib.photoreal.postprocess import recursive_filter, refine
from _timing import best_time  # noqa: E402  (benchmarks/_timing.py, beside this script)

ASPECT = 437 / 700
ROOT = Path(__file__).resolve().parent.parent


def find_content_image() -> Path | None:
    candidates = []
    if os.environ.get("PHOTOSTYLE_DATA"):
        candidates.append(Path(os.environ["PHOTOSTYLE_DATA"]) / "input" / "in1.png")
    candidates += [ROOT / "data" / "luan2017" / "input" / "in1.png",
                   ROOT.parent / "shared" / "data" / "luan2017" / "input" / "in1.png"]
    return next((p for p in candidates if p.is_file()), None)


def test_image(size: int, source: np.ndarray | None) -> np.ndarray:
    """(round(size * 437/700), size, 3) float64 in [0, 1]."""
    h, w = round(size * ASPECT), size
    if source is not None:
        u8 = Image.fromarray(np.round(source * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        return np.asarray(u8, dtype=np.float64) / 255.0
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    smooth = np.stack([0.5 + 0.3 * np.sin(6 * x), 0.5 + 0.3 * np.cos(5 * y), 0.5 + 0.2 * np.sin(4 * (x + y))], -1)
    return np.clip(smooth + 0.03 * rng.standard_normal(smooth.shape), 0, 1)



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 700], help="long sides in pixels")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per entry (minimum reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    try:
        from pymatting import cf_laplacian
        cf_laplacian(np.random.default_rng(0).random((16, 16, 3)))  # JIT-compile outside the timings
    except ImportError:
        cf_laplacian = None

    try:
        import cv2
        dt_filter = cv2.ximgproc.dtFilter
        cv2.setNumThreads(1)
    except (ImportError, AttributeError):
        dt_filter = None

    def opencv_rf(img: np.ndarray) -> np.ndarray:
        f32 = img.astype(np.float32)
        return dt_filter(f32, f32, 60.0, 100 / 255, mode=cv2.ximgproc.DTF_RF, numIters=3)

    path = find_content_image()
    source = read_rgb_array(path).astype(np.float64) if path is not None else None
    print(f"image: {path if path is not None else 'synthetic (in1.png not found)'}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, numpy {np.__version__}")

    rows = []
    for size in args.sizes:
        img = test_image(size, source)
        h, w, _ = img.shape
        lap = matting_laplacian(img)
        lap_t = laplacian_to_torch(lap, "cpu", torch.float32)
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).requires_grad_(True)

        def loss_step():
            x.grad = None
            photorealism_loss(x, lap_t).backward()

        stylised = np.clip(img[:, ::-1] * 0.8 + 0.1, 0, 1)
        row = {
            "size (HxW)": f"{h}x{w}",
            "loss fwd+bwd [s]": best_time(loss_step, args.repeat),
            "rf ours [s]": best_time(lambda: recursive_filter(img, 60.0, 100 / 255, 3, joint=img), args.repeat),
            "rf opencv [s]": best_time(lambda: opencv_rf(img), args.repeat) if dt_filter else float("nan"),
            "rf max |ours - opencv|": (float(np.abs(recursive_filter(img, 60.0, 100 / 255, 3) - opencv_rf(img)).max())
                                       if dt_filter else float("nan")),
            "refine eq. (9) [s]": best_time(lambda: refine(stylised, img), args.repeat),
            "laplacian ours [s]": best_time(lambda: matting_laplacian(img), args.repeat),
            "laplacian pymatting [s]": (best_time(lambda: cf_laplacian(img, epsilon=1e-7, radius=1), args.repeat)
                                        if cf_laplacian is not None else float("nan")),
        }
        row["laplacian ours / pymatting"] = row["laplacian ours [s]"] / row["laplacian pymatting [s]"]
        row["rf ours / opencv"] = row["rf ours [s]"] / row["rf opencv [s]"]
        rows.append(row)
    table = pd.DataFrame(rows).set_index("size (HxW)")
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 250):
        print(table.T.to_string())
    if cf_laplacian is None:
        print("pymatting: not installed, so its rows are empty (pip install pymatting to compare)")
    if dt_filter is None:
        print("OpenCV ximgproc: not installed, so its rows are empty (pip install opencv-contrib-python-headless)")


if __name__ == "__main__":
    main()
