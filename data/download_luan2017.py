#!/usr/bin/env python3
"""Download the Luan et al. (2017) example set from its public repository.

Fetches, for each pair id N (1..60), from github.com/luanfujun/deep-photo-styletransfer
(folder ``examples/``; "published for academic and non-commercial use only"):

    input/inN.png, style/tarN.png, segmentation/inN.png, segmentation/tarN.png,
    luan_results/bestN_t_1000.png   (their final_results/bestN_t_1000.png)

into ``--dest`` (default: data/luan2017 beside this script, where the project
looks unless PHOTOSTYLE_DATA says otherwise). Existing files are kept; each
download goes to a temporary file first, so an interrupted run leaves no
partial image, and folders this run made that stay empty (offline) are removed.
Without network access it says, in one message, how to point the project at a
copy of the set instead. Standard library only.

    python data/download_luan2017.py                # all 60 pairs
    python data/download_luan2017.py --ids 1 8 23   # some pairs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

BASE = "https://raw.githubusercontent.com/luanfujun/deep-photo-styletransfer/master/examples/"
FILES = {  # local path pattern -> remote path pattern
    "input/in{n}.png": "input/in{n}.png",
    "style/tar{n}.png": "style/tar{n}.png",
    "segmentation/in{n}.png": "segmentation/in{n}.png",
    "segmentation/tar{n}.png": "segmentation/tar{n}.png",
    "luan_results/best{n}_t_1000.png": "final_results/best{n}_t_1000.png",
}


def fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            out.write(resp.read())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: What to do without network access: the two ways to point the project at a copy of the set.
OFFLINE_HINT = ("Offline? Point the project at a copy of the set: PHOTOSTYLE_DATA=/path/to/luan2017 make demo, "
                "or make demo DATA=/path/to/luan2017 (PHOTOSTYLE_DATA also serves every other command; "
                "to make the copy by hand from the repository's examples/ folder, see data/README.md).")


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_if_empty(dirs: list[Path]) -> None:
    """Remove the folders this run created that are still empty, deepest first (nothing half-made left behind)."""
    for d in sorted(set(dirs), key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:  # not empty (a file arrived) or already gone
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", type=Path, default=Path(__file__).resolve().parent / "luan2017")
    ap.add_argument("--ids", type=int, nargs="*", default=list(range(1, 61)))
    ap.add_argument("--base-url", default=BASE, help="mirror of the examples/ folder")
    args = ap.parse_args(argv)
    bad = [n for n in args.ids if not 1 <= n <= 60]
    if bad:
        print(f"error: pair ids must be 1..60, got {bad}", file=sys.stderr)
        return 2
    todo = [(local.format(n=n), remote.format(n=n)) for n in args.ids for local, remote in FILES.items()]
    failed, created = [], []
    for i, (local, remote) in enumerate(todo, 1):
        target = args.dest / local
        if target.exists():
            continue
        print(f"[{i}/{len(todo)}] {local}", flush=True)
        created += _missing_dirs(target.parent)
        try:
            fetch(args.base_url + remote, target)
        except urllib.error.HTTPError as exc:  # this file (a 404): the others may still come
            failed.append((local, f"HTTP {exc.code}"))
        except (urllib.error.URLError, OSError) as exc:  # no network: every other file would fail alike
            failed.append((local, str(getattr(exc, "reason", exc))))
            unreached = sum(not (args.dest / rest).exists() for rest, _ in todo[i:])
            break
    else:
        unreached = 0
    _remove_if_empty(created)
    if failed:
        reasons = "; ".join(sorted({reason for _, reason in failed})[:3])
        names = ", ".join(local for local, _ in failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        rest = f" ({unreached} more not tried)" if unreached else ""
        print(f"error: could not download {names}{rest} from {args.base_url}: {reasons}\n{OFFLINE_HINT}",
              file=sys.stderr)
        return 1
    print(f"data ready in {args.dest}; the project finds it there (or set PHOTOSTYLE_DATA={args.dest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
