"""``photostyle report results/<profile>``: one static HTML page of a profile's notebooks.

Reads every ``<notebook>/metadata.json`` that ``experiments.save_outputs``
wrote under the profile's folder and writes ``index.html`` beside them: the
weights banner on top (random or stand-in weights: every image below was made
with them), then per notebook a link to the executed notebook, its parameters,
a table of its runs (pair, method, masks, weights, stop reason, seconds) and
every figure with its caption. Images are linked by relative paths, so the
folder can be moved or served as it is; nothing is fetched from elsewhere.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import is_caution

REPORT_FILE = "index.html"

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


def notebook_section(folder: Path, md: dict[str, Any], root: Path) -> str:
    """The HTML of one notebook: link, parameters, runs table, figures (paths relative to ``root``)."""
    name = str(md.get("notebook") or folder.name)
    rel = folder.relative_to(root).as_posix()
    parts = [f'<section id="{html.escape(name)}"><h2>{html.escape(name)}</h2>']
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


def build_report(profile_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the profile's report (default ``profile_dir/index.html``); return its path.

    Parameters
    ----------
    profile_dir : str or Path
        A ``results/<profile>`` folder of ``<notebook>/metadata.json`` files.
    output : str, Path or None
        The page to write (None: ``profile_dir/index.html``).

    Returns
    -------
    Path
        The HTML page written.

    Raises
    ------
    PhotostyleError
        No ``*/metadata.json`` under ``profile_dir``, or one of them cannot be read as JSON.
    """
    from photostyle_lib.io.images import write_file_atomically

    root = Path(profile_dir)
    found = sorted(root.glob("*/metadata.json"))
    if not found:
        raise PhotostyleError(f"{root} holds no <notebook>/metadata.json; run "
                              "`photostyle figures run --profile ci` first, or give results/<profile>")
    sections, warnings = [], []
    for path in found:
        try:
            md = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PhotostyleError(f"{path} cannot be read ({exc}); rerun its notebook") from None
        sections.append(notebook_section(path.parent, md, root))
        warnings += [md.get("warning")] + [f.get("weights_warning") for f in md.get("figures", [])]
    banners = list(dict.fromkeys(w for w in warnings if w))
    banner = "".join(f'<div class="banner" id="weights-banner">{html.escape(w)}</div>' for w in banners) or \
        '<div id="weights-banner">Weights: the paper\'s networks (no random or stand-in weights).</div>'
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>photostyle: {html.escape(root.name)}"
            f"</title><style>{_STYLE}</style></head><body><h1>photostyle results: {html.escape(root.name)}</h1>"
            f"{banner}\n" + "\n".join(sections) + "</body></html>\n")
    out = Path(output) if output is not None else root / REPORT_FILE
    return write_file_atomically(out, lambda f: f.write(page.encode()))
