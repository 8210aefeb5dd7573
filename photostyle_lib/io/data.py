"""The Luan et al. (2017) example set: where it lives and how a pair is found.

The data directory is, in order: the ``data_dir`` argument, the environment
variable ``PHOTOSTYLE_DATA``, or ``data/luan2017`` inside the project (where
``python data/download_luan2017.py`` puts it). Its layout is the public
repository's ``examples/`` folder::

    input/in<N>.png          content photos
    style/tar<N>.png         style photos
    segmentation/in<N>.png   gold content masks (colour-coded)
    segmentation/tar<N>.png  gold style masks
    luan_results/best<N>_t_1000.png   Luan et al.'s published results
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from photostyle_lib.errors import PhotostyleError

ENV_VAR = "PHOTOSTYLE_DATA"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = PROJECT_ROOT / "data" / "luan2017"


@dataclass(frozen=True)
class Pair:
    """Paths of one example: content, style, their gold masks, Luan et al.'s result."""

    id: int
    content: Path
    style: Path
    content_mask: Path | None
    style_mask: Path | None
    luan_result: Path | None


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory (argument, then $PHOTOSTYLE_DATA, then data/luan2017)."""
    if path is not None and str(path) != "":
        p, origin = Path(path), "the given data directory"
    elif os.environ.get(ENV_VAR):
        p, origin = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        p, origin = DEFAULT_DATA_DIR, "the default data directory"
    p = p.expanduser()
    if not (p / "input").is_dir() or not (p / "style").is_dir():
        raise PhotostyleError(
            f"{origin} {p} does not hold the Luan et al. example set (no input/ and style/ folders); "
            f"run `python data/download_luan2017.py` or set {ENV_VAR} to the folder that has them")
    return p.resolve()


def list_pairs(path: str | os.PathLike | None = None) -> list[int]:
    """Sorted ids N of every pair with both input/in<N>.png and style/tar<N>.png."""
    root = data_dir(path)
    ids = []
    for f in (root / "input").iterdir():
        m = re.fullmatch(r"in(\d+)\.png", f.name)
        if m and (root / "style" / f"tar{m.group(1)}.png").exists():
            ids.append(int(m.group(1)))
    return sorted(ids)


def get_pair(pair_id: int, path: str | os.PathLike | None = None) -> Pair:
    """Paths of example ``pair_id`` (1-60 in the published set)."""
    root = data_dir(path)
    try:
        n = int(pair_id)
    except (TypeError, ValueError):
        raise PhotostyleError(f"pair id must be an integer, got {pair_id!r}") from None
    content, style = root / "input" / f"in{n}.png", root / "style" / f"tar{n}.png"
    if not content.exists() or not style.exists():
        avail = list_pairs(root)
        rng = f"{avail[0]}..{avail[-1]}" if avail else "none"
        raise PhotostyleError(f"pair {n} is not in {root} (available ids: {rng})")

    def opt(p: Path) -> Path | None:
        return p if p.exists() else None

    return Pair(id=n, content=content, style=style,
                content_mask=opt(root / "segmentation" / f"in{n}.png"),
                style_mask=opt(root / "segmentation" / f"tar{n}.png"),
                luan_result=opt(root / "luan_results" / f"best{n}_t_1000.png"))
