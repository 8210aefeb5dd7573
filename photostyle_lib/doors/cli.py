"""Command line: ``photostyle transfer | batch | segment`` (``photostyle --help`` lists examples).

* ``transfer CONTENT STYLE -o OUT``: one run; ``--config FILE`` (TOML, or a
  result's metadata JSON to rerun it) supplies any option, flags win;
  ``--save-every N`` also writes ``OUT.iterNNNN.png``.
* ``batch SOURCE -o DIR``: many runs (photostyle_lib.doors.batch).
* ``segment CONTENT STYLE -o DIR``: the segmenter's masks as palette PNGs to
  repaint and pass back with ``--content-mask`` / ``--style-mask``.
* ``report results/<profile>``: a static HTML page (photostyle_lib.doors.report).
* ``figures run --profile ci|paper [--only NAME ...]``: every notebook of the
  paper's figures through papermill (photostyle_lib.doors.runner), into
  ``results/<profile>/`` of the current directory; ``figures list`` shows the
  notebooks and the parameters a profile gives them.

Bad input (missing or unreadable files, mask colours outside the palette,
bad numbers, missing weights) ends with one line on stderr and exit status 2;
never a traceback. Ctrl-C (or SIGTERM) at any moment -- while torch is
imported, or mid-run -- ends with the line "photostyle: interrupted" and exit
status 130, and writes nothing (a partial result never takes the output's
name; temp files are removed, and those of a killed process by the next run).

A result of random weights, of the VGG-16 stand-in (``--weights hed-vgg16``) or
of the original VGG-19 (``--weights imagenet-vgg19-caffe``, or ``auto`` offline)
says so in the final line, in the PNG's text chunk and in the metadata
(``weights_warning``, ``network``, ``weights_choice``).

Only the standard library (and the torch-free errors and engine.symbols) is
imported at module level: the engine (torch) loads inside :func:`main`, where
an interrupt is caught.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from photostyle_lib.doors.arguments import parse_args
from photostyle_lib.doors.transfer import check_segmenter_reachable, check_transfer, run_transfer
from photostyle_lib.errors import PhotostyleError, require_extra
from photostyle_lib.io.outputs import check_outputs

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def _absolute(value: Path | None) -> Path | None:
    """A command-line path against the current directory (the notebooks run elsewhere)."""
    return None if value is None else value.expanduser().resolve()


def _run_figures(args: argparse.Namespace) -> int:
    """``photostyle figures run | list`` (see FIGURES_HELP); one line per notebook, then a summary."""
    import json

    from photostyle_lib.doors import runner

    if args.figures_command == "list":
        for name, params in runner.list_notebooks(args.profile, _absolute(args.notebooks_dir)):
            print(f"{name}: {json.dumps(params, default=str)}")
        return 0
    runs = runner.run_suite(args.profile, only=args.only, data_dir=_absolute(args.data_dir),
                            output_dir=_absolute(args.output_dir), cache_dir=_absolute(args.cache_dir),
                            notebooks_dir=_absolute(args.notebooks_dir), timeout=args.timeout,
                            progress=args.progress, echo=print, weights=args.weights,
                            figure_format=args.figure_format, dpi=args.dpi)
    total = sum(r.seconds for r in runs)
    warn = "".join("  [" + b.replace(" \u2014 ", ": ") + "]" for b in runner.suite_warnings(runs))
    print(f"{len(runs)} notebook(s) in {total:.1f} s under profile {args.profile}{warn}")
    return 0


def _run_transfer(args: argparse.Namespace) -> int:
    spec = check_transfer(args)
    done = run_transfer(args, spec, progress=not args.no_progress)
    meta = args.output.with_name(args.output.name + ".json")
    # The banner as random weights have always been said here: "[RANDOM WEIGHTS: smoke test, ...]"
    banner = (done["banner"] or "").replace(" \u2014 ", ": ")
    warn = f"  [{banner}]" if banner else ""
    snaps = f", {len(range(args.save_every, done['evaluations'] + 1, args.save_every))} intermediate images" \
        if args.save_every else ""
    print(f"wrote {args.output} and {meta.name}{snaps}: {done['evaluations']} evaluations, "
          f"stop: {done['stop_reason']}, {done['seconds']:.1f} s on {done['device']}{warn}")
    return 0


def _run_segment(args: argparse.Namespace) -> int:
    """``photostyle segment``: palette masks and their legend (see SEGMENT_HELP)."""
    from photostyle_lib.experiments import pipeline
    from photostyle_lib.checks import resolve_device
    from photostyle_lib.io.images import load_image
    from photostyle_lib.semantic.masks import write_palette_masks
    from photostyle_lib.semantic.segmenter import segmenter_for

    from photostyle_lib.semantic.masks import PALETTE_FILES

    require_extra("transformers", "segmentation", "photostyle segment")
    for given in (args.content, args.style):
        if not given.exists():
            raise PhotostyleError(f"image file not found: {given}; check the path")
    check_outputs([args.output_dir / name for name in PALETTE_FILES.values()],
                  {"content": args.content, "style": args.style}, overwrite=args.overwrite)  # before segmenting
    resolve_device(args.device)
    check_segmenter_reachable(args.segmenter, "photostyle segment", "--segmenter random-tiny for a smoke test")
    c = load_image(args.content, max_size=args.size)
    s = load_image(args.style, max_size=args.size)
    masks = pipeline.editable_masks(c, s, segmenter=args.segmenter, device=args.device)
    seg = segmenter_for(args.segmenter, args.device)
    source = {"content": str(args.content), "style": str(args.style), "size": args.size,
              "segmenter": seg.describe(), "random_weights": seg.weights == "random"}
    paths = write_palette_masks(masks.content, masks.style, masks.labels, masks.colours, args.output_dir,
                                overwrite=args.overwrite, source=source)
    warn = "  [RANDOM SEGMENTER WEIGHTS: smoke test]" if seg.weights == "random" else ""
    print(f"wrote {', '.join(str(p) for p in paths)}: {len(masks.labels)} labels "
          f"({', '.join(f'{c}={lab}' for c, lab in zip(masks.colours, masks.labels))}){warn}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The ``photostyle`` command: parse ``argv``, run the sub-command, return the exit status.

    A PhotostyleError becomes one line on stderr (``photostyle: error: ...``); Ctrl-C becomes
    "photostyle: interrupted".

    Parameters
    ----------
    argv : list of str or None
        The arguments after the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 2 on bad input (a PhotostyleError, or a failed batch row),
        :data:`EXIT_INTERRUPTED` (130) after Ctrl-C, 1 for an unknown command.
    """
    previous = _terminate_as_interrupt()
    try:
        args = parse_args(argv)
        if args.command == "transfer":
            return _run_transfer(args)
        if args.command == "batch":
            from photostyle_lib.doors.batch import run_batch
            return run_batch(args)
        if args.command == "segment":
            return _run_segment(args)
        if args.command == "report":
            from photostyle_lib.doors.report import build_report
            print(f"wrote {build_report(args.profile_dir, args.output, overwrite=args.overwrite)}")
            return 0
        if args.command == "figures":
            return _run_figures(args)
    except PhotostyleError as exc:
        print(f"photostyle: error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line, always
        return 2
    except KeyboardInterrupt:
        print("photostyle: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 1


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _terminate_as_interrupt():
    """SIGTERM (``kill``, a job scheduler) ends a command like Ctrl-C: temp files removed, nothing half written.

    Returns the previous handler (None when not on the main thread, where handlers cannot be set).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


if __name__ == "__main__":
    sys.exit(main())
