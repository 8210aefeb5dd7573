"""The Luan et al. (2017) example set: where it lives and how a pair is found.

The data directory is, in order: the ``data_dir`` argument, the environment
variable ``PHOTOSTYLE_DATA``, ``data/luan2017`` under the working directory,
or -- when the package runs from a source checkout (a clone, or an editable
install of one) -- the checkout's ``data/luan2017`` (where
``python data/download_luan2017.py`` puts it). An installed wheel has no
checkout: it finds the data through the first three. Its layout is the public
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
#: Where the dataset lives relative to the working directory and to a source checkout.
DATA_SUBDIR = Path("data") / "luan2017"


def _source_checkout() -> Path | None:
    """The project's source tree this package was imported from (its pyproject.toml names the project), or None.

    None inside site-packages: two levels above photostyle_lib/io/ is then site-packages itself.
    """
    root = Path(__file__).resolve().parents[2]
    try:
        pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if 'name = "photostyle"' in pyproject else None


#: The source checkout the package runs from (a clone or an editable install), else None (an installed wheel).
SOURCE_ROOT: Path | None = _source_checkout()
#: The checkout, where the notebooks and results/ live; outside one (a wheel), the working directory at import.
PROJECT_ROOT: Path = SOURCE_ROOT if SOURCE_ROOT is not None else Path.cwd()


@dataclass(frozen=True)
class Pair:
    """Paths of one example: content, style, their gold masks, Luan et al.'s result."""

    id: int
    content: Path
    style: Path
    content_mask: Path | None
    style_mask: Path | None
    luan_result: Path | None


def _holds_pairs(p: Path) -> bool:
    return (p / "input").is_dir() and (p / "style").is_dir()


def default_data_dirs() -> list[Path]:
    """The places searched without an argument or $PHOTOSTYLE_DATA, in order: ./data/luan2017 under the
    working directory (read now, not at import), then the source checkout's (when there is one)."""
    dirs = [Path.cwd() / DATA_SUBDIR]
    if SOURCE_ROOT is not None and SOURCE_ROOT / DATA_SUBDIR not in dirs:
        dirs.append(SOURCE_ROOT / DATA_SUBDIR)
    return dirs


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory: argument, then $PHOTOSTYLE_DATA, then :func:`default_data_dirs`.

    Raises
    ------
    PhotostyleError
        the chosen folder (or, with neither argument nor variable, every default
        place) lacks input/ and style/; the message names the folders and the fix.
    """
    fix = (f"run `python data/download_luan2017.py --dest DIR` (from the project's repository) and set "
           f"{ENV_VAR}=DIR, or set {ENV_VAR} to a folder that has them")
    if path is not None and str(path) != "":
        p, origin = Path(path).expanduser(), "the given data directory"
    elif os.environ.get(ENV_VAR):
        p, origin = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        tried = default_data_dirs()
        found = [d for d in tried if _holds_pairs(d)]
        if not found:
            raise PhotostyleError(
                f"${ENV_VAR} is not set and no default data directory ({', '.join(map(str, tried))}) holds "
                f"the Luan et al. example set (input/ and style/ folders); {fix}")
        return found[0].resolve()
    if not _holds_pairs(p):
        raise PhotostyleError(f"{origin} {p} does not hold the Luan et al. example set (no input/ and style/ "
                              f"folders); {fix}")
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
    """Paths of example ``pair_id`` (1-60 in the published set).

    Raises
    ------
    PhotostyleError
        If ``pair_id`` is not an integer or the pair is not in the folder (naming the ids there), or
        as :func:`data_dir`.
    """
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


#: The pairs every choice of this project was tuned on (presets, sweeps, studies): 1-20.
TUNING_PAIRS: tuple[int, ...] = tuple(range(1, 21))
#: The pairs held out for evaluation (``studies/quality.py``): 21-60; nothing is tuned on them.
HELD_OUT_PAIRS: tuple[int, ...] = tuple(range(21, 61))


def parse_pairs(text: str) -> list[int]:
    """Pair ids from text: ``"21-60"`` or ``"1,2,5-8"`` -> [1, 2, 5, 6, 7, 8] (order kept, repeats dropped).

    Parameters
    ----------
    text : str
        Comma-separated ids and inclusive ranges ``low-high``; spaces around parts are ignored.

    Returns
    -------
    list of int
        The ids, each >= 1, in the order given, without repeats.

    Raises
    ------
    PhotostyleError
        One line naming the part that is not an id or a range written low to high, or saying
        that no pair was given.
    """
    ids: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        if not lo.strip().isdigit() or (dash and not hi.strip().isdigit()):
            raise PhotostyleError(f"pairs {text!r}: {part!r} is not a pair id or a range like 5-8")
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a:
            raise PhotostyleError(f"pairs {text!r}: {part!r} is an empty range; write it low to high ({b}-{a})")
        if a < 1:
            raise PhotostyleError(f"pairs {text!r}: pair ids start at 1")
        ids.extend(range(a, b + 1))
    if not ids:
        raise PhotostyleError(f"pairs {text!r}: no pair given; write e.g. 21-60 or 1,2,5-8")
    return list(dict.fromkeys(ids))


def tuning_pairs_only(pairs: list[int] | tuple[int, ...]) -> list[int]:
    """``pairs`` unchanged when every id is a tuning pair (:data:`TUNING_PAIRS`); the one refusal otherwise.

    Every study that chooses something (a weight, a post-process, a schedule) calls this, so no
    choice is ever made on a held-out pair.

    Parameters
    ----------
    pairs : sequence of int
        Pair ids.

    Returns
    -------
    list of int
        The same ids, in order.

    Raises
    ------
    PhotostyleError
        One line naming the held-out ids and where they belong (``studies/quality.py``).
    """
    held = [p for p in pairs if p not in TUNING_PAIRS]
    if held:
        raise PhotostyleError(f"pairs {held} are held out for evaluation (studies/quality.py); tune on 1-20 only")
    return list(pairs)
