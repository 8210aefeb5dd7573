"""``photostyle batch SOURCE -o DIR``: many runs through the pipeline ``photostyle transfer`` uses.

SOURCE is a folder laid out like the dataset (``photostyle_lib.io.data``:
``input/in<N>.png``, ``style/tar<N>.png``, gold masks in ``segmentation/``),
giving ``DIR/pair<N>.png``, or a CSV whose rows are runs (columns in
``arguments.BATCH_HELP``), giving ``DIR/<output>`` or ``DIR/row<i>_<content>.png``.
Every row is checked (files, options, outputs) before the first run starts,
so a typo in row 40 fails at once, not after an hour.

Resumable: a row whose image and metadata are a complete result of the same
inputs and settings -- the metadata's ``image_sha256`` is the image's digest and
its ``request`` (``FileTransfer.record``: the input files' bytes, the preset,
every setting) is the row's -- is skipped. Any other existing output (a user's
file, an image without metadata, a result of other inputs or settings) is
refused before the first run, all of them in one message, unless ``--overwrite``
(which runs every row again); an output that is any row's input is refused
always (``io.outputs.check_outputs``). A refused batch creates nothing. One tqdm bar counts rows; the summary (row, output, stop reason,
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
from photostyle_lib.io.data import parse_pairs

SUMMARY_FILE = "batch_summary.csv"
#: The summary's columns (its header tells a summary this command wrote from a user's file).
SUMMARY_COLUMNS = ("row", "output", "stop", "seconds")
#: CSV columns of every row that are not options of ``transfer`` (``output`` is: a file name in DIR).
REQUIRED_COLUMNS = ("content", "style")


def parse_pair_ids(text: str | None, available: list[int]) -> list[int]:
    """``"1,2,5-8"`` -> [1, 2, 5, 6, 7, 8], each checked against ``available``; None -> all of them.

    Raises
    ------
    PhotostyleError
        If a part is not a pair id or a range like 5-8 (low to high) (``io.data.parse_pairs``), or
        names pairs not in ``available``.
    """
    if text is None:
        return list(available)
    ids = parse_pairs(text)
    missing = sorted(set(ids) - set(available))
    if missing:
        raise PhotostyleError(f"--pairs: pairs {missing} are not in the folder (it has {len(available)} pairs)")
    return ids


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
    """Rows of a CSV: ``{column: value}`` without empty cells, checked by ``arguments.option_values``.

    Raises
    ------
    PhotostyleError
        If the CSV cannot be read, has no rows, lacks the content and style columns, or has a row
        with an empty required cell, or a row's options fail ``arguments.option_values``.
    """
    from photostyle_lib.doors.arguments import option_values

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
    from photostyle_lib.doors.arguments import option_values

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


def output_state(output: Path, record: dict) -> str | None:
    """None if ``output`` and its metadata are absent; "done" if they are a complete result of ``record``;
    else why they are not (torn pair, other inputs or settings), for the refusal's message.

    Complete: the metadata's ``image_sha256`` is the image's digest and its ``request`` equals
    ``record`` (``FileTransfer.record``: the input files' bytes, the preset, every setting).
    """
    from photostyle_lib.experiments.pipeline import record_differences
    from photostyle_lib.io.metadata import file_digest

    meta = output.with_name(output.name + ".json")
    if not output.exists() and not meta.exists():
        return None
    if not output.is_file() or not meta.is_file():
        return "an image without its metadata" if output.is_file() else "not a finished image"
    try:
        md = json.loads(meta.read_text())
    except (OSError, ValueError):
        return "its metadata is unreadable"
    if not isinstance(md, dict) or md.get("image_sha256") != file_digest(output):
        return "not the image its metadata describes"
    diff = record_differences(md.get("request"), record)
    return "done" if not diff else f"made with other {', '.join(diff)}"


def _rows(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[dict]:
    src = args.source
    if src.is_dir():
        return folder_rows(src, args.pairs, args.masks)
    if src.is_file() and src.suffix.lower() == ".csv":
        return csv_rows(src, parser)
    raise PhotostyleError(f"batch source {src}: not a folder of pairs nor a .csv file; give a folder laid out "
                          "like the dataset (input/, style/, segmentation/) or a CSV with content,style columns")


def _row_inputs(jobs: list[tuple[int, argparse.Namespace]]) -> dict[str, Path]:
    """Every file any row reads, by "row N content" etc.: no row may write over another's input."""
    from photostyle_lib.doors.transfer import run_inputs

    return {f"row {i} {role}": path for i, ns in jobs for role, path in run_inputs(ns).items() if path is not None}


def _is_summary(path: Path) -> bool:
    """True for a summary an earlier batch wrote (its header), which a rerun refreshes."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip() == ",".join(SUMMARY_COLUMNS)
    except (OSError, UnicodeDecodeError):
        return False


def plan(args: argparse.Namespace) -> list[tuple[int, argparse.Namespace, object, bool]]:
    """Every row as ``(row number, its transfer options, its checked run, already done)``, all checked first.

    The checked run (``pipeline.FileTransfer``, from ``transfer.check_transfer``) is what
    :func:`run_batch` runs: each row is checked once.

    A row is done when its image and metadata are a complete result of the same inputs and
    settings (:func:`output_state`); done rows are skipped unless ``--overwrite``. Every
    other existing output is refused without ``--overwrite``, all of them named in one
    message; an output that is any row's input is refused always. Nothing is created.

    Raises
    ------
    PhotostyleError
        If two rows write the same output, a row writes over an input of any row, outputs
        exist that are not done (without ``--overwrite``), or a row's options fail the
        CLI's checks (naming the row).
    """
    from photostyle_lib.doors.arguments import build_parser
    from photostyle_lib.doors.transfer import check_transfer, run_inputs, transfer_outputs
    from photostyle_lib.io.outputs import check_outputs

    parser = build_parser().subcommand_parsers["transfer"]
    rows = [(i, row_namespace(args, row, parser, i, args.source)) for i, row in enumerate(_rows(args, parser), 1)]
    outputs: dict[Path, int] = {}
    for i, ns in rows:
        key = ns.output.resolve()
        if key in outputs:
            raise PhotostyleError(f"rows {outputs[key]} and {i} both write {ns.output}; give distinct outputs")
        outputs[key] = i
    summary = args.output_dir / SUMMARY_FILE
    every = [p for _, ns in rows for p in (ns.output, ns.output.with_name(ns.output.name + ".json"))]
    check_outputs([*every, summary], _row_inputs(rows), overwrite=True)  # inputs and folders, whatever --overwrite
    check_outputs([summary], overwrite=args.overwrite, replaceable=_is_summary)
    jobs, taken = [], []
    for i, ns in rows:
        try:
            ns.overwrite = True  # whether the outputs may be replaced is judged here, against the row's record
            spec = check_transfer(ns)
            state = output_state(ns.output, spec.record())
            ns.overwrite = args.overwrite
            if state not in (None, "done") and not args.overwrite:
                taken.append(f"{ns.output} ({state})")
                continue
            if state is None or args.overwrite:  # the snapshots of --save-every too
                check_outputs(transfer_outputs(ns, spec.config), run_inputs(ns), overwrite=args.overwrite)
        except PhotostyleError as exc:
            raise PhotostyleError(f"{args.source} row {i} ({ns.output.name}): {exc}") from None
        jobs.append((i, ns, spec, state == "done" and not args.overwrite))
    if taken:
        raise PhotostyleError(f"{len(taken)} output(s) exist that this batch did not make with these inputs and "
                              f"settings: {'; '.join(taken)}; pass --overwrite to replace them, or choose another -o")
    return jobs


def summary_table(records: list[dict]):
    """The batch's summary as a pandas DataFrame: row, output, stop reason, seconds."""
    import pandas as pd

    return pd.DataFrame(records, columns=list(SUMMARY_COLUMNS))


def run_batch(args: argparse.Namespace) -> int:
    """Run every row not yet finished; print and write the summary. 0 if every row succeeded, else 2.

    Raises
    ------
    PhotostyleError
        If any row failed (after every row has run and the summary is written).
    """
    from tqdm import tqdm

    from photostyle_lib.doors.transfer import run_transfer
    from photostyle_lib.io.images import write_file_atomically

    jobs = plan(args)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    records = []
    with tqdm(total=len(jobs), desc="batch", unit="run", disable=args.no_progress, file=sys.stderr) as bar:
        for i, ns, spec, done in jobs:
            if done:
                records.append({"row": i, "output": str(ns.output), "stop": "done before (skipped)",
                                "seconds": 0.0})
            else:
                try:
                    r = run_transfer(ns, spec, progress=False)  # as checked by plan()
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
