"""The transfer command shared by ``photostyle transfer`` and ``photostyle batch``: check, then run.

:func:`check_transfer` makes every check that needs no network and returns the
``experiments.pipeline.FileTransfer`` that :func:`run_transfer` runs, so what is checked is what runs.
Only the standard library is imported at module level: the engine (torch) loads inside the
functions, which ``cli.main`` calls where an interrupt is caught.
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

from photostyle_lib.engine.symbols import weight_overrides
from photostyle_lib.errors import PhotostyleError, require_extra
from photostyle_lib.io.outputs import check_outputs


def run_inputs(args: argparse.Namespace) -> dict:
    """The files one run reads, by role (content, style, masks, a weights file), none of which it may write."""
    from photostyle_lib.experiments.pipeline import input_files  # (the engine loads only for a transfer)

    return input_files(args.content, args.style, args.content_mask, args.style_mask, args.weights)


#: The names ``--weights`` takes besides a file (vgg.NAMED_WEIGHTS, without importing torch).
WEIGHTS_NAMES = ("imagenet", "imagenet-vgg19", "imagenet-vgg16", "imagenet-vgg19-caffe", "hed-vgg16", "auto", "random",
                 "random-vgg16")


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
    except ImportError:  # without the [segmentation] extra: the hub's public address
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
    if not config.uses_masks or config.segmentation == "gold" or args.content_mask is not None:
        return
    require_extra("transformers", "segmentation",
                  f"preset {args.preset!r} without --content-mask / --style-mask (masks from the ADE20K segmenter)")
    check_segmenter_reachable(args.segmenter, f"preset {args.preset!r}",
                               "mask files (--content-mask and --style-mask), or --segmenter random-tiny "
                               "for a smoke test")


def check_segmenter_reachable(name: str | None, who: str, instead: str) -> None:
    """The segmenter ``name`` is random, a local folder, in the Hugging Face cache, or the hub answers.

    Raises
    ------
    PhotostyleError
        Saying that ``who`` needs the segmenter, that it is neither cached nor reachable,
        and what to give ``instead``.
    """
    from photostyle_lib.semantic import segmenter

    if name in ("random", "random-tiny"):
        return
    if name in (None, "paper-scales"):
        name = os.environ.get(segmenter.CHECKPOINT_ENV) or segmenter.DEFAULT_CHECKPOINT
    if Path(name).expanduser().is_dir():
        return
    try:
        from huggingface_hub import try_to_load_from_cache
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
    except Exception:  # noqa: BLE001 -- a malformed id: the loader's own error says more
        return
    if not segmenter.hub_offline() and _hub_reachable():
        return
    raise PhotostyleError(f"{who} makes masks with the ADE20K segmenter {name!r}, which is not in the Hugging "
                          "Face cache, and the hub cannot be reached; give a downloaded checkpoint directory "
                          f"(--segmenter DIR), {instead}")


def config_overrides(args: argparse.Namespace) -> dict:
    """TransferConfig overrides: the config file's extra fields, then the flags (which win)."""
    overrides = dict(args.config_fields)
    overrides.update({"weights": args.weights, "weights_convention": args.weights_convention, "device": args.device})
    overrides.update(weight_overrides(vars(args)))  # --alpha, --beta, --gamma
    for field, value in (("iterations", args.iterations), ("seed", args.seed)):
        if value is not None:
            overrides[field] = value
    return overrides


def file_transfer_of(args: argparse.Namespace):
    """The run the options describe, resolved once (``pipeline.file_transfer``): preset, overrides, mask request.

    ``--theta-s`` goes to the mask request as given; without it, the request's default
    (``semantic.cut.DEFAULT_THETA_S``).

    Raises
    ------
    PhotostyleError
        As ``pipeline.file_transfer`` (an unknown preset, a bad config value, theta_s outside (0, 1]).
    """
    from photostyle_lib.experiments.pipeline import file_transfer

    theta = {} if args.theta_s is None else {"theta_s": args.theta_s}
    return file_transfer(args.content, args.style, preset=args.preset, size=args.size, content_mask=args.content_mask,
                         style_mask=args.style_mask, unmatched=args.unmatched, segmenter=args.segmenter, **theta,
                         **config_overrides(args))


def check_transfer(args: argparse.Namespace):
    """Every check of one run that needs no network: PhotostyleError before minutes of work.

    Returns the checked run (``pipeline.FileTransfer``) that :func:`run_transfer` runs.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``transfer`` options (after any ``--config`` file).

    Returns
    -------
    FileTransfer
        The run: photos, masks, the resolved TransferConfig and the mask request.

    Raises
    ------
    PhotostyleError
        If CONTENT, STYLE or ``-o`` is missing; the output has no image suffix, or it, its
        metadata or a ``--save-every`` snapshot would overwrite an input, is a folder, already
        exists (without ``--overwrite``) or is not writable (``outputs.check_outputs``); the device is
        unavailable; only one of ``--content-mask`` / ``--style-mask`` is given; an input file
        does not exist; the ``--weights`` file is missing or not a weights file; the preset or a
        config value is invalid; the mask request (``--theta-s``, the masks) is invalid; or the
        preset needs the segmenter and it is neither installed, cached, local nor downloadable.
    """
    from photostyle_lib.checks import resolve_device
    from photostyle_lib.io.outputs import refuse_overwriting_inputs

    if args.content is None or args.style is None:
        raise PhotostyleError("give CONTENT and STYLE (or a --config file that names them)")
    out = args.output
    if out is None:
        raise PhotostyleError("give the output path with -o OUT.png")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
        raise PhotostyleError(f"output {out} needs an image suffix such as .png")
    refuse_overwriting_inputs((out, out.with_name(out.name + ".json")), run_inputs(args))  # first: even with --overwrite
    resolve_device(args.device)  # an unavailable device is an error now, not after loading
    if (args.content_mask is None) != (args.style_mask is None):
        raise PhotostyleError("give both --content-mask and --style-mask, or neither")
    for given in (args.content, args.style, args.content_mask, args.style_mask):
        if given is not None and not given.exists():  # the loader's own message, before the checks below
            raise PhotostyleError(f"image file not found: {given}; check the path")
    _check_weights_file(args.weights)
    spec = file_transfer_of(args)  # the preset, the overrides and the mask request (theta_s), checked once
    check_outputs(transfer_outputs(args, spec.config), run_inputs(args), overwrite=args.overwrite)  # before the work
    _check_segmenter_available(args, spec.config)
    return spec


def evaluation_budget(config) -> int:
    """The most loss evaluations a run of ``config`` can make (its iterations across stages or levels)."""
    if config.two_stage:
        return 2 * config.iterations
    if config.uses_pyramid:
        return sum(config.level_iterations or (config.iterations,) * config.pyramid_levels)
    return config.iterations


def transfer_outputs(args: argparse.Namespace, config) -> list[Path]:
    """Every file a ``transfer`` of ``config`` may write: OUT, OUT.json and each ``--save-every`` snapshot."""
    out = args.output
    paths = [out, out.with_name(out.name + ".json")]
    if args.save_every:
        paths += [iterate_path(out, i) for i in range(args.save_every, evaluation_budget(config) + 1,
                                                       args.save_every)]
    return paths


def iterate_path(output: Path, iteration: int) -> Path:
    """Where ``--save-every`` puts iteration ``iteration``'s image: ``OUT.iterNNNN.png`` beside OUT."""
    return output.with_name(f"{output.stem}.iter{iteration:04d}.png")


def _snapshot_callback(every: int | None, kept: list):
    """A stylize ``image_callback`` keeping every ``every``-th iterate as (iteration, (H, W, 3) uint8) in ``kept``.

    Kept in memory and written with the result, so an interrupted run writes
    nothing (the command's promise) and the snapshots carry the result's label.
    """
    if every is None:
        return None

    def callback(iteration: int, x) -> None:
        if iteration % every == 0:
            img = (x[0].clamp(0, 1).permute(1, 2, 0).to("cpu").float().numpy() * 255.0 + 0.5).astype("uint8")
            kept.append((iteration, img))

    return callback


def _stage_snapshots(kept: list, out: Path, warning: str | None) -> list[tuple[Path, Path]]:
    """The kept iterates as staged files (temp file, ``OUT.iterNNNN.png``), renamed with the result."""
    from photostyle_lib.io.images import stage_image, weights_text

    staged: list[tuple[Path, Path]] = []
    try:
        for iteration, img in kept:
            path = iterate_path(out, iteration)
            staged.append((stage_image(img.astype("float32") / 255.0, path, text=weights_text(warning)), path))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return staged


def run_transfer(args: argparse.Namespace, spec, *, progress: bool) -> dict:
    """Run the checked ``spec`` (:func:`check_transfer`) and save it: ``pipeline.run_to_files``.

    The metadata records the run's inputs and settings (``FileTransfer.record``); the
    ``--save-every`` snapshots are renamed into place with the image and its metadata.
    Returns ``{"output", "stop_reason", "seconds", "evaluations", "device", "banner"}``.
    """
    from photostyle_lib.experiments.pipeline import run_to_files

    kept: list = []
    run = run_to_files(spec, args.output, overwrite=args.overwrite, progress=progress,
                       image_callback=_snapshot_callback(args.save_every, kept),
                       also=lambda done: _stage_snapshots(kept, args.output, done.weights_warning))
    r = run.result
    return {"output": args.output, "stop_reason": r.stop_reason, "seconds": r.timings["total"],
            "evaluations": len(r.losses), "device": r.device, "banner": run.weights_warning}

