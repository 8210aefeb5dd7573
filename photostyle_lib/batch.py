"""``photostyle batch SOURCE -o DIR``: many runs through the pipeline ``photostyle transfer`` uses.

SOURCE is a folder laid out like the dataset (``photostyle_lib.io.data``:
``input/in<N>.png``, ``style/tar<N>.png``, gold masks in ``segmentation/``),
giving ``DIR/pair<N>.png``, or a CSV whose rows are runs (columns in
``cli.BATCH_HELP``), giving ``DIR/<output>`` or ``DIR/row<i>_<content>.png``.
Every row is checked (files, options, outputs) before the first run starts,
so a typo in row 40 fails at once, not after an hour.

Resumable: a row whose image and metadata are complete -- the metadata's
``image_sha256`` is the image's digest, as ``pipeline.save_run`` writes it --
is skipped; a torn pair (image without metadata, or a digest mismatch) is run
again. One tqdm bar counts rows; the summary (row, output, stop reason,
seconds) is printed and written to ``DIR/batch_summary.csv``. A row that
fails at run time is reported in the table ("error: ...") and the batch goes
on; the exit status is then 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from photostyle_lib.errors import PhotostyleError

SUMMARY_FILE = "batch_summary.csv"
#: CSV columns of every row that are not options of ``transfer`` (``output`` is: a file name in DIR).
REQUIRED_COLUMNS = ("content", "style")


def parse_pair_ids(text: str | None, available: list[int]) -> list[int]:
    """``"1,2,5-8"`` -> [1, 2, 5, 6, 7, 8], each checked against ``available``; None -> all of them.

    Raises
    ------
    PhotostyleError
        If a part is not a pair id or a range like 5-8, or names pairs not in ``available``.
    """
    if text is None:
        return list(available)
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            lo, _, hi = part.partition("-")
            ids.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise PhotostyleError(f"--pairs {text!r}: {part!r} is not a pair id or a range like 5-8") from None
    missing = sorted(set(ids) - set(available))
    if missing:
        raise PhotostyleError(f"--pairs: pairs {missing} are not in the folder (it has {len(available)} pairs)")
    return list(dict.fromkeys(ids))


def folder_rows(folder: Path, pairs: str | None, masks: str) -> list[dict]:
    """Rows of a dataset-like folder: one per pair, with its gold masks unless ``masks == "segmenter"``.

    Raises
    ------
    PhotostyleError
        If the folder holds no pair, or a pair has no gold masks while ``masks`` is "gold".
    """
    from photostyle_lib.io.data import get_pair, list_pairs

    rows = []
    for n in parse_pair_ids(pairs, list_pairs(folder)):
        p = get_pair(n, folder)
        row = {"content": p.content, "style": p.style, "output": f"pair{n}.png"}
        if masks == "gold":
            if p.content_mask is None or p.style_mask is None:
                raise PhotostyleError(f"pair {n} has no gold masks in {folder}/segmentation; "
                                      "pass --masks segmenter to make them with the segmenter")
            row.update(content_mask=p.content_mask, style_mask=p.style_mask)
        rows.append(row)
    if not rows:
        raise PhotostyleError(f"{folder} holds no pair (input/in<N>.png with style/tar<N>.png)")
    return rows


def csv_rows(path: Path, parser: argparse.ArgumentParser) -> list[dict]:
    """Rows of a CSV: ``{column: value}`` without empty cells, checked by ``cli.option_values``.

    Raises
    ------
    PhotostyleError
        If the CSV cannot be read, has no rows, lacks the content and style columns, or has a row
        with an empty required cell, or a row's options fail ``cli.option_values``.
    """
    from photostyle_lib.cli import option_values

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            table = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PhotostyleError(f"{path}: cannot read the CSV ({exc}); give a UTF-8 CSV with a header row") from None
    if not table:
        raise PhotostyleError(f"{path}: no rows; the first line names the columns (content,style,...)")
    missing = [c for c in REQUIRED_COLUMNS if c not in table[0]]
    if missing:
        raise PhotostyleError(f"{path}: columns {missing} are missing; the header needs content,style")
    rows = []
    for i, raw in enumerate(table, start=1):
        given = {k.strip(): v.strip() for k, v in raw.items() if k is not None and v is not None and v.strip()}
        for c in REQUIRED_COLUMNS:
            if c not in given:
                raise PhotostyleError(f"{path} row {i}: the {c} cell is empty")
        option_values(given, parser, f"{path} row {i}", base=path.parent)  # checked now, applied later
        rows.append(given)
    return rows


def row_namespace(args: argparse.Namespace, row: dict, parser: argparse.ArgumentParser, index: int,
                  source: Path) -> argparse.Namespace:
    """The ``transfer`` options of one row: the row's cells over the batch's flags (and --config)."""
    from photostyle_lib.cli import option_values

    ns = argparse.Namespace(**vars(args))
    out_name = row.get("output")
    cells = {k: v for k, v in row.items() if k != "output"}
    base = source.parent if source.is_file() else None
    options, fields = option_values(cells, parser, f"{source} row {index}", base=base)
    for dest, value in options.items():
        setattr(ns, dest, value)
    ns.config_fields = {**args.config_fields, **fields}
    if out_name is None:
        out_name = f"row{index}_{Path(ns.content).stem}.png"
    ns.output = args.output_dir / out_name
    return ns


def finished(output: Path) -> bool:
    """True if ``output`` and its metadata are a complete pair (the metadata's image_sha256 matches)."""
    from photostyle_lib.io.metadata import file_digest

    meta = output.with_name(output.name + ".json")
    if not output.is_file() or not meta.is_file():
        return False
    try:
        md = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(md, dict) and md.get("image_sha256") == file_digest(output)


def _rows(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[dict]:
    src = args.source
    if src.is_dir():
        return folder_rows(src, args.pairs, args.masks)
    if src.is_file() and src.suffix.lower() == ".csv":
        return csv_rows(src, parser)
    raise PhotostyleError(f"batch source {src}: not a folder of pairs nor a .csv file; give a folder laid out "
                          "like the dataset (input/, style/, segmentation/) or a CSV with content,style columns")


def plan(args: argparse.Namespace) -> list[tuple[int, argparse.Namespace, bool]]:
    """Every row as ``(row number, its transfer options, already finished)``, all checked before any run.

    Raises
    ------
    PhotostyleError
        If two rows write the same output, or a row's options fail the CLI's checks (naming the row).
    """
    from photostyle_lib.cli import build_parser, check_transfer

    parser = build_parser().subcommand_parsers["transfer"]
    jobs, outputs = [], {}
    for i, row in enumerate(_rows(args, parser), start=1):
        ns = row_namespace(args, row, parser, i, args.source)
        key = ns.output.resolve()
        if key in outputs:
            raise PhotostyleError(f"rows {outputs[key]} and {i} both write {ns.output}; give distinct outputs")
        outputs[key] = i
        done = finished(ns.output) and not args.overwrite
        if not done:
            torn = ns.output.exists() or ns.output.with_name(ns.output.name + ".json").exists()
            ns.overwrite = ns.overwrite or torn  # a torn pair from an interrupted batch is run again
            try:
                check_transfer(ns)
            except PhotostyleError as exc:
                raise PhotostyleError(f"{args.source} row {i} ({ns.output.name}): {exc}") from None
        jobs.append((i, ns, done))
    return jobs


def summary_table(records: list[dict]):
    """The batch's summary as a pandas DataFrame: row, output, stop reason, seconds."""
    import pandas as pd

    return pd.DataFrame(records, columns=["row", "output", "stop", "seconds"])


def run_batch(args: argparse.Namespace) -> int:
    """Run every row not yet finished; print and write the summary. 0 if every row succeeded, else 2.

    Raises
    ------
    PhotostyleError
        If any row failed (after every row has run and the summary is written).
    """
    from tqdm import tqdm

    from photostyle_lib.cli import check_transfer, run_transfer
    from photostyle_lib.io.images import write_file_atomically

    jobs = plan(args)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    records = []
    with tqdm(total=len(jobs), desc="batch", unit="run", disable=args.no_progress, file=sys.stderr) as bar:
        for i, ns, done in jobs:
            if done:
                records.append({"row": i, "output": str(ns.output), "stop": "done before (skipped)",
                                "seconds": 0.0})
            else:
                try:
                    r = run_transfer(ns, check_transfer(ns), progress=False)
                    records.append({"row": i, "output": str(ns.output), "stop": r["stop_reason"],
                                    "seconds": round(r["seconds"], 2)})
                except PhotostyleError as exc:
                    records.append({"row": i, "output": str(ns.output),
                                    "stop": f"error: {' '.join(str(exc).split())}", "seconds": float("nan")})
            bar.update(1)
    table = summary_table(records)
    print(table.to_string(index=False))
    summary = args.output_dir / SUMMARY_FILE
    write_file_atomically(summary, lambda f: f.write(table.to_csv(index=False).encode()))
    failed = int(table["stop"].str.startswith("error:").sum())
    if failed:
        raise PhotostyleError(f"{failed} of {len(jobs)} rows failed (see the table and {summary}); "
                              "fix them and run the same command again: finished rows are skipped")
    return 0
