"""Command line: ``photostyle transfer CONTENT STYLE -o OUT [options]``.

Bad input (missing or unreadable files, mask colours outside the palette,
bad numbers, missing weights) ends with one line on stderr and exit status 2;
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from photostyle_lib.checks import resolve_device
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.images import check_writable, refuse_overwriting_inputs
from photostyle_lib.presets import PRESETS


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors as one line and exit status 2 (shared by the doors)."""

    def error(self, message: str):  # argparse's own usage errors: one line, status 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {v}")
    return v


def _number(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return v


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="photostyle", description="Photorealistic style transfer.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    t = sub.add_parser("transfer", help="transfer the style of STYLE onto CONTENT")
    t.add_argument("content", type=Path, help="content photo (PNG/JPEG)")
    t.add_argument("style", type=Path, help="style (reference) photo")
    t.add_argument("-o", "--output", type=Path, required=True, help="output image path (.png); metadata goes to OUT.png.json (the output path + .json)")
    t.add_argument("--content-mask", type=Path, help="colour-coded mask of the content (gold / user masks)")
    t.add_argument("--style-mask", type=Path, help="colour-coded mask of the style, same colours")
    t.add_argument("--preset", default="full", choices=sorted(PRESETS), help="model variant (default: full)")
    t.add_argument("--size", type=_positive_int, default=512, help="long side in pixels (default 512)")
    t.add_argument("--iterations", type=_positive_int, help="loss evaluations (default: the preset's, 500)")
    t.add_argument("--weights", default="imagenet", help="VGG-19 weights: imagenet, random (smoke tests only) or a file")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    t.add_argument("--alpha", type=_number, help="content weight (paper: 1)")
    t.add_argument("--beta", type=_number, help="style weight (paper: 1e7)")
    t.add_argument("--gamma", type=_number, help="similarity weight (paper: 3)")
    t.add_argument("--theta-s", type=_number, help="soft segmentation cutoff in (0, 1] (default 0.2)")
    t.add_argument("--seed", type=int, help="random seed")
    t.add_argument("--segmenter", default=None,
                   help="ADE20K segmenter checkpoint for presets with soft/hard segmentation and no masks given "
                        "(default: the library's; random or random-tiny for smoke tests)")
    t.add_argument("--unmatched", choices=("error", "drop"), default="error",
                   help="content mask labels missing from the style mask: error (default) or drop")
    t.add_argument("--overwrite", action="store_true", help="replace OUT and OUT.json if they exist")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _inputs(args: argparse.Namespace) -> dict:
    from photostyle_lib.pipeline import input_files  # (the engine loads only for a transfer)

    return input_files(args.content, args.style, args.content_mask, args.style_mask, args.weights)


def _run_transfer(args: argparse.Namespace) -> int:
    from photostyle_lib import pipeline

    out = args.output
    meta = out.with_name(out.name + ".json")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
        raise PhotostyleError(f"output {out} needs an image suffix such as .png")
    refuse_overwriting_inputs((out, meta), _inputs(args))  # even with --overwrite
    for p in (out, meta):
        if p.exists() and not args.overwrite:
            raise PhotostyleError(f"{p} already exists; choose another output path or pass --overwrite")
        check_writable(p)  # before a run of minutes, not after
    resolve_device(args.device)  # an unavailable device is an error now, not after loading
    if (args.content_mask is None) != (args.style_mask is None):
        raise PhotostyleError("give both --content-mask and --style-mask, or neither")
    overrides = {"weights": args.weights, "device": args.device}
    for field, value in (("iterations", args.iterations), ("content_weight", args.alpha),
                         ("style_weight", args.beta), ("similarity_weight", args.gamma),
                         ("theta_s", args.theta_s), ("seed", args.seed)):
        if value is not None:
            overrides[field] = value
    run = pipeline.transfer_files(args.content, args.style, preset=args.preset, size=args.size,
                                  content_mask=args.content_mask, style_mask=args.style_mask,
                                  unmatched=args.unmatched, segmenter=args.segmenter,
                                  progress=not args.no_progress, **overrides)
    pipeline.save_run(run, out, overwrite=args.overwrite)
    r = run.result
    warn = "  [RANDOM WEIGHTS: smoke test, not a style transfer]" if run.random_weights else ""
    print(f"wrote {out} and {meta.name}: {len(r.losses)} evaluations, stop: {r.stop_reason}, "
          f"{r.timings['total']:.1f} s on {r.device}{warn}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "transfer":
            return _run_transfer(args)
    except PhotostyleError as exc:
        print(f"photostyle: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("photostyle: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
