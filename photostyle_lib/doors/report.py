"""``photostyle report results/<profile>``: one static HTML page of a profile's notebooks.

Reads every ``<notebook>/metadata.json`` that ``experiments.save_outputs``
wrote under the profile's folder and writes ``index.html`` beside them: the
weights banner on top (random or stand-in weights: every image below was made
with them), then per notebook a link to the executed notebook, its parameters,
a table of its runs (pair, method, masks, weights, stop reason, seconds) and
every figure with its caption. Images are linked by relative paths, so the
folder can be moved or served as it is; nothing is fetched from elsewhere.

A notebook whose last run failed or did not finish (its :data:`RUN_STATUS_FILE`,
written by the notebook runner, says so) gets a red notice above its earlier
figures, and :func:`build_report` raises after writing the page, so the command
exits non-zero: a stale figure never passes as the latest.

The page replaces an earlier report (recognised by :data:`GENERATOR`) freely;
any other existing file only with ``overwrite`` (``--overwrite``), and never a
file the report reads (``io.outputs.check_outputs``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import is_caution

REPORT_FILE = "index.html"
#: A notebook folder's record of its last run (written by ``runner.run_notebook``):
#: ``{"status": "running" | "failed" | "ok", "error": ..., "time": ...}``.
RUN_STATUS_FILE = "run_status.json"
#: The mark of a page this module wrote (an earlier report is refreshed without --overwrite).
GENERATOR = '<meta name="generator" content="photostyle report">'

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1200px; }
.banner { background: #b00020; color: white; font-weight: bold; padding: 0.6em 1em; margin-bottom: 1em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
"""


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>"
                                    for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _run_rows(md: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in md.get("runs", []):
        spec = r.get("spec") or {}
        secs = r.get("wall_seconds")
        rows.append({"pair": spec.get("pair_id"), "method": spec.get("method"), "masks": spec.get("masks"),
                     "weights": r.get("weights"), "stop reason": r.get("stop_reason"),
                     "seconds": None if secs is None else f"{secs:.1f}", "cache key": r.get("key")})
    return rows


def last_run_problem(folder: Path) -> str | None:
    """Why a notebook folder's figures are not from its last run (it failed or did not finish), or None.

    Parameters
    ----------
    folder : Path
        A ``results/<profile>/<notebook>`` folder.

    Returns
    -------
    str or None
        "failed: <error>" or "did not finish" from its :data:`RUN_STATUS_FILE`; None
        when the last run succeeded or the folder has no status file (written by hand or
        by an earlier version).
    """
    try:
        status = json.loads((folder / RUN_STATUS_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "left an unreadable run status"
    if not isinstance(status, dict) or status.get("status") == "ok":
        return None
    if status.get("status") == "failed":
        return f"failed: {status.get('error') or 'no message'}"
    return "did not finish (stopped or killed)"


def notebook_section(folder: Path, md: dict[str, Any], root: Path) -> str:
    """The HTML of one notebook: link, parameters, runs table, figures (paths relative to ``root``)."""
    name = str(md.get("notebook") or folder.name)
    rel = folder.relative_to(root).as_posix()
    parts = [f'<section id="{html.escape(name)}"><h2>{html.escape(name)}</h2>']
    problem = last_run_problem(folder)
    if problem:
        parts.append(f'<p class="banner stale">The last run of this notebook {html.escape(problem)}. '
                     "The figures below are from an earlier run.</p>")
    nb = folder / f"{name}.ipynb"
    if nb.exists():
        parts.append(f'<p><a href="{html.escape(f"{rel}/{nb.name}")}">executed notebook</a></p>')
    if md.get("warning"):
        parts.append(f'<p class="banner">{html.escape(md["warning"])}</p>')
    params = md.get("parameters") or {}
    if params:
        parts.append("<h3>Parameters</h3>" + _table([{"parameter": k, "value": json.dumps(v)}
                                                     for k, v in params.items()], ["parameter", "value"]))
    runs = _run_rows(md)
    if runs:
        parts.append("<h3>Runs</h3>" + _table(runs, list(runs[0])))
    for f in md.get("figures", []):
        src = f"{rel}/{f['file']}"
        title = " / ".join(f.get("title") or [f.get("name", "")])
        cap = html.escape(f.get("caption") or "")
        colour = ' style="color:#b00020"' if is_caution(f.get("weights_warning")) else ""
        warn = f' <b{colour}>[{html.escape(f["weights_warning"])}]</b>' if f.get("weights_warning") else ""
        parts.append(f'<figure><img src="{html.escape(src)}" alt="{html.escape(title)}">'
                     f"<figcaption><b>{html.escape(title)}</b>{warn} {cap}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def _figure_files(found: list[Path]) -> dict[str, Path]:
    """The files a report reads (metadata and figures), by role: never its output."""
    inputs: dict[str, Path] = {}
    for path in found:
        inputs[f"metadata {path}"] = path
        try:
            figures = json.loads(path.read_text()).get("figures", [])
        except (OSError, ValueError, AttributeError):
            continue
        for f in figures if isinstance(figures, list) else []:
            if isinstance(f, dict) and f.get("file"):
                inputs[f"figure {f['file']}"] = path.parent / str(f["file"])
    return inputs


def _is_report(path: Path) -> bool:
    """True for a page this module wrote (:data:`GENERATOR`), which a new report replaces."""
    try:
        with open(path, encoding="utf-8") as f:
            return GENERATOR in f.read(4096)
    except (OSError, UnicodeDecodeError):
        return False


def build_report(profile_dir: str | Path, output: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Write the profile's report (default ``profile_dir/index.html``); return its path.

    Parameters
    ----------
    profile_dir : str or Path
        A ``results/<profile>`` folder of ``<notebook>/metadata.json`` files.
    output : str, Path or None
        The page to write (None: ``profile_dir/index.html``); must end in .html or .htm.
    overwrite : bool, keyword-only
        Replace an existing file that is not an earlier report (an earlier report is
        always refreshed; a file the report reads is never replaced).

    Returns
    -------
    Path
        The HTML page written.

    Raises
    ------
    PhotostyleError
        No ``*/metadata.json`` under ``profile_dir``, or one of them cannot be read as JSON;
        the output is not .html, is one of the report's own files, or exists and is not an
        earlier report (without ``overwrite``); or -- after the page is written -- a
        notebook's last run failed or did not finish (its earlier figures are shown under a
        notice).
    """
    from photostyle_lib.io.images import write_file_atomically
    from photostyle_lib.io.outputs import check_outputs

    root = Path(profile_dir)
    found = sorted(root.glob("*/metadata.json"))
    if not found:
        raise PhotostyleError(f"{root} holds no <notebook>/metadata.json; run "
                              "`photostyle figures run --profile ci` first, or give results/<profile>")
    out = Path(output) if output is not None else root / REPORT_FILE
    if out.suffix.lower() not in (".html", ".htm"):
        raise PhotostyleError(f"report output {out} must end in .html (the page is HTML); e.g. {root / REPORT_FILE}")
    check_outputs([out], _figure_files(found), overwrite=overwrite, replaceable=_is_report)
    sections, warnings, stale = [], [], []
    for path in found:
        try:
            md = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PhotostyleError(f"{path} cannot be read ({exc}); rerun its notebook") from None
        sections.append(notebook_section(path.parent, md, root))
        warnings += [md.get("warning")] + [f.get("weights_warning") for f in md.get("figures", [])]
        problem = last_run_problem(path.parent)
        if problem:
            stale.append(f"{path.parent.name} ({problem})")
    banners = list(dict.fromkeys(w for w in warnings if w))
    banner = "".join(f'<div class="banner" id="weights-banner">{html.escape(w)}</div>' for w in banners) or \
        '<div id="weights-banner">Weights: the paper\'s networks (no random or stand-in weights).</div>'
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{GENERATOR}<title>photostyle: "
            f"{html.escape(root.name)}</title><style>{_STYLE}</style></head><body><h1>photostyle results: "
            f"{html.escape(root.name)}</h1>{banner}\n" + "\n".join(sections) + "</body></html>\n")
    write_file_atomically(out, lambda f: f.write(page.encode()))
    if stale:
        raise PhotostyleError(f"wrote {out}, but the last run of {len(stale)} notebook(s) did not succeed: "
                              f"{'; '.join(stale)}; their figures are from an earlier run: fix and rerun them "
                              "(photostyle figures run --only NAME)")
    return out
