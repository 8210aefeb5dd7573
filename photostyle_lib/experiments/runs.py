"""Cached method runs: one (pair, method, settings) -> one folder of results.

Notebooks, the experiment runner and the metrics sweep all compute images
through :func:`run_cached`, so a figure's runs are computed once and reused
by every other figure and by the sweep. A run's folder is named by the hash
of everything its result depends on (:meth:`RunSpec.key`: the spec's fields
and the bytes of its input files), is written to a temporary folder first
and renamed into place when complete: an interrupted run leaves nothing half
written, and re-running computes only what is missing.

Only finished runs are results. A run stopped by Ctrl-C (a kernel interrupt;
``stop_reason == "interrupted"``) is kept, for a look, under
``interrupted/<key>`` -- never under ``runs/<key>``, so the next call with
the same settings computes the full run -- and the interrupt is raised again.
A run ended by its callback (:class:`photostyle_lib.engine.config.StopRun`, e.g.
the interactive app's Stop button; ``stop_reason == "stopped by user"``) is
kept there too and its record returned, pointing at ``interrupted/<key>``.

Each folder carries ``manifest.json``: every file's size and sha256
(:mod:`photostyle_lib.experiments.cache_store`). Reading an entry checks them and that
every file its kind needs is there; an entry with a missing, truncated or altered file, no
manifest, or a file in the entry's place is discarded (one warning line on stderr naming
it) and computed again. Temp folders carry their writer's host and pid
(``io.outputs.temp_prefix``): those of a killed writer are removed by the next
run of the same key.

Methods: the engine's presets (:data:`photostyle_lib.engine.presets.PRESETS`), the
colour-transfer baselines ``reinhard`` and ``pitie_idt``, and
``luan_published`` (Luan et al.'s published result from the dataset).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from photostyle_lib import baselines
from photostyle_lib.checks import check_choice, check_int, resolve_device
from photostyle_lib.io.data import Pair, get_pair
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import (array_to_tensor, load_image, resize_tensor,
                                   save_image, tensor_to_array, weights_text, write_file_atomically)
from photostyle_lib.io.outputs import remove_stale_temps, temp_prefix
from photostyle_lib.semantic.cache import SegmentationCache
from photostyle_lib.experiments.cache_store import keep_interrupted, read_entry, was_interrupted, write_manifest
from photostyle_lib.experiments.executors import PeakRSS
from photostyle_lib.semantic.cut import DEFAULT_THETA_S, SOFT_PIPELINE
from photostyle_lib.semantic.masks import SemanticMasks
from photostyle_lib.semantic.request import MASK_MODES, MaskRequest
from photostyle_lib.semantic.segmenter import CHECKPOINT_ENV
from photostyle_lib.io.metadata import base_metadata, file_digest, write_json
from photostyle_lib.engine.presets import PRESETS, get_preset
from photostyle_lib.engine.config import STOPPED_BY_USER
from photostyle_lib.experiments.pipeline import (LATER_FIELDS, FileTransfer, Run, relevant_config,  # noqa: F401
                                                 run_files)
from photostyle_lib.features.vgg import weights_identity

COLOUR_TRANSFER = ("reinhard", "pitie_idt")
PUBLISHED = ("luan_published",)
METHODS: tuple[str, ...] = tuple(PRESETS) + COLOUR_TRANSFER + PUBLISHED
#: Raised when a stored run's meaning or its key's layout changes. 3: theta_s a field of the spec.
_FORMAT = 3
#: Raised when segmenter masks change meaning for the same spec; part of the key of hard and soft
#: runs only. 2: the authors' soft pipeline, the paper's scales 300-600 in steps of 100, the tiny
#: random segmenter's peaked head.
_SEGMENTER_MASKS_FORMAT = 2


@dataclass(frozen=True)
class RunSpec:
    """What one cached run computes.

    Attributes
    ----------
    pair_id
        example id in the dataset (1-60).
    method
        one of :data:`METHODS`.
    masks
        for presets that use masks: "gold", "hard", "soft" (overrides
        the preset's own mode) or None (the preset's own); ignored otherwise.
    size
        long side in pixels the images are brought to.
    iterations
        loss evaluations (presets only).
    weights
        VGG weights, "imagenet" | "random" | path.
    segmenter
        ADE20K checkpoint for hard/soft masks: None (the default
        checkpoint), "paper-scales" (the default, averaged over the authors'
        four scales, short sides 300-600), "random" (random weights, the default architecture),
        "random-tiny" (random weights, a tiny model: CI), or a hub id / path
        (see segmenter.segmenter_from_name).
    overrides
        TransferConfig fields as sorted (name, value) pairs, e.g. (("lr", 0.2),).
    seed
        seeds the engine and IDT.
    mask_errors
        with ``masks="gold"`` only: the gold masks corrupted by
        ``mask_errors.masks_with_errors`` (sorted (name, value) pairs: kind,
        severity, seed, target, render "hard" | "soft", temperature) at the
        images' sizes; () for the gold masks as they are.
    theta_s
        the soft cutoff in (0, 1], on the mask request (:meth:`mask_request`), not the
        config; kept only where it acts (soft masks, or gold masks with errors rendered
        soft) and reset to ``cut.DEFAULT_THETA_S`` elsewhere, so it never splits one run
        into two keys.
    """

    pair_id: int
    method: str
    masks: str | None = None
    size: int = 512
    iterations: int = 500
    weights: str = "imagenet"
    segmenter: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    mask_errors: tuple[tuple[str, Any], ...] = ()
    theta_s: float = DEFAULT_THETA_S

    def __post_init__(self) -> None:
        check_int("pair_id", self.pair_id, low=0)
        check_choice("method", self.method, METHODS)
        if self.masks is not None:
            check_choice("masks", self.masks, MASK_MODES)
        check_int("size", self.size, low=16)
        check_int("iterations", self.iterations, low=1)
        object.__setattr__(self, "overrides", tuple(sorted((str(k), v) for k, v in dict(self.overrides).items())))
        object.__setattr__(self, "mask_errors", tuple(sorted((str(k), v) for k, v in dict(self.mask_errors).items())))
        if self.mask_errors and self.mask_mode() != "gold":
            raise PhotostyleError("mask_errors corrupt gold masks: give masks='gold' with a preset that uses masks")
        request = self.mask_request()  # the masks' settings, theta_s included, are checked there, once
        if request is None or not request.uses_theta_s:
            object.__setattr__(self, "theta_s", DEFAULT_THETA_S)

    @property
    def uses_engine(self) -> bool:
        """Whether the method is one of the engine's presets (else a colour transfer or a published result)."""
        return self.method in PRESETS

    def config(self, device: str = "auto"):
        """The TransferConfig this spec runs (presets only); the masks' settings are :meth:`mask_request`'s."""
        cfg = get_preset(self.method, iterations=self.iterations, weights=self.weights, seed=self.seed,
                         device=device, **dict(self.overrides))
        if self.masks is not None and cfg.uses_masks:
            cfg = cfg.replace(segmentation=self.masks)
        return cfg

    def mask_mode(self) -> str | None:
        """"gold", "hard" or "soft" for engine runs with masks, else None."""
        if not self.uses_engine:
            return None
        cfg = self.config()
        return cfg.segmentation if cfg.uses_masks else None

    def mask_request(self) -> MaskRequest | None:
        """The masks this run asks for (None: it uses none): mode, segmenter, theta_s, the paper
        profile's soft pipeline, gold labels the style lacks dropped, the spec's mask errors.

        Raises
        ------
        PhotostyleError
            A theta_s outside (0, 1] (the request's check).
        """
        mode = self.mask_mode()
        if mode is None:
            return None
        return MaskRequest(mode, segmenter=self.segmenter, theta_s=self.theta_s, soft_pipeline=SOFT_PIPELINE,
                           unmatched="drop", mask_errors=self.mask_errors)

    def key(self, pair: Pair) -> str:
        """sha1 of everything the result depends on, the device excepted.

        The spec; the bytes of the files it reads; for engine runs the
        resolved TransferConfig (so a changed preset or default changes the
        key), the VGG weights' identity (``vgg.weights_identity``: the file,
        its size and mtime) and, for segmenter masks, the segmenter's name and
        ``$PHOTOSTYLE_SEGMENTER``; and a format number, raised when the
        meaning of a stored run changes.
        """
        files = [pair.content, pair.style]
        mode = self.mask_mode()
        if mode == "gold":
            files += [pair.content_mask, pair.style_mask]
        if self.method == "luan_published":
            files.append(pair.luan_result)
        spec = dataclasses.asdict(self)
        parts: dict[str, Any] = {"format": _FORMAT, "spec": spec,
                                 "files": [file_digest(p) if p is not None else None for p in files]}
        if self.uses_engine:
            parts["config"] = relevant_config(self.config("cpu"))
            parts["weights"] = weights_identity(self.weights, self.seed)
            request = self.mask_request()
            if request is not None and request.uses_segmenter:
                parts["segmenter"] = [self.segmenter, os.environ.get(CHECKPOINT_ENV)]
                parts["segmenter_masks"] = [_SEGMENTER_MASKS_FORMAT,
                                            request.soft_pipeline if mode == "soft" else None]
        blob = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class RunRecord:
    """A finished run on disk: ``image.png`` (final), ``raw.png`` (before
    post-processing, engine runs), ``content.png`` / ``style.png`` (inputs at
    the run's size), ``losses.csv``, ``masks.npz`` (when masks were used) and
    ``metadata.json``."""

    spec: RunSpec
    key: str
    directory: Path
    metadata: dict[str, Any]

    @property
    def image_path(self) -> Path:
        """The final image's file, ``<directory>/image.png``."""
        return self.directory / "image.png"

    def image(self) -> torch.Tensor:
        """The final image (after any post-process): (1, 3, H, W) float32 in [0, 1]."""
        return load_image(self.image_path)

    def raw_image(self) -> torch.Tensor:
        """The image before post-processing, (1, 3, H, W) float32 in [0, 1]; the final one for runs without it."""
        p = self.directory / "raw.png"
        return load_image(p if p.exists() else self.image_path)

    def content(self) -> torch.Tensor:
        """The content photo at the run's size: (1, 3, H, W) float32 in [0, 1]."""
        return load_image(self.directory / "content.png")

    def style(self) -> torch.Tensor:
        """The style photo at the run's size: (1, 3, Hs, Ws) float32 in [0, 1]."""
        return load_image(self.directory / "style.png")

    def masks(self) -> SemanticMasks | None:
        """The masks the run used (stored as float16, read back as float32 in [0, 1]); None without masks."""
        p = self.directory / "masks.npz"
        if not p.exists():
            return None
        with np.load(p, allow_pickle=False) as z:
            return SemanticMasks(torch.from_numpy(z["content"].astype(np.float32)),
                                 torch.from_numpy(z["style"].astype(np.float32)),
                                 tuple(str(x) for x in z["labels"]), kind=str(z["kind"]),
                                 pipeline=str(z["pipeline"]) or None if "pipeline" in z.files else None)

    def losses(self) -> pd.DataFrame | None:
        """The engine's loss log (one row per evaluation, ``optimise.LOSS_COLUMNS``); None for other methods."""
        p = self.directory / "losses.csv"
        return pd.read_csv(p) if p.exists() else None

    @property
    def random_weights(self) -> bool:
        """Whether the run used random VGG or segmenter weights (a smoke test, not a result)."""
        return bool(self.metadata.get("random_weights"))

    @property
    def weights_warning(self) -> str | None:
        """The run's weights banner as it was recorded (``TransferResult.banner``), else None."""
        return self.metadata.get("weights_warning")


def file_transfer_of(spec: RunSpec, pair: Pair, device: str) -> FileTransfer:
    """An engine spec as the one run from files (``pipeline.run_files``): the pair's photos, the spec's
    config on ``device`` and mask request, the pair's gold mask files when the masks are gold.

    Raises
    ------
    PhotostyleError
        If the spec asks for gold masks and the pair has none.
    """
    request = spec.mask_request() or MaskRequest("none")
    gold = request.mode == "gold"
    if gold and (pair.content_mask is None or pair.style_mask is None):
        raise PhotostyleError(f"pair {pair.id} has no gold masks in the data directory")
    return FileTransfer(content=pair.content, style=pair.style, config=spec.config(device), masks=request,
                        preset=spec.method, size=spec.size, content_mask=pair.content_mask if gold else None,
                        style_mask=pair.style_mask if gold else None)


def run_cached(spec: RunSpec, *, cache_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None,
               device: str = "auto", progress: bool = True,
               callback: Callable[[int, dict[str, float]], None] | None = None,
               image_callback: Callable[[int, torch.Tensor], None] | None = None) -> RunRecord:
    """The result of ``spec``: read from ``cache_dir/runs/<key>`` if complete and intact, else computed
    and stored there.

    ``callback(iteration, loss_terms)`` and ``image_callback(iteration, image)``
    are passed to :func:`stylize` (engine runs that are computed, not read from
    the cache), e.g. for a progress widget and a live preview.
    An interrupted run (Ctrl-C) is moved to ``cache_dir/interrupted/<key>`` and
    KeyboardInterrupt raised again: it is never returned, nor found later, as done.
    A run a callback stopped (``StopRun``) is moved there too and its record
    returned (``metadata["stop_reason"] == "stopped by user"``): never found later as done.

    Parameters
    ----------
    spec : RunSpec
        The run.
    cache_dir : str or os.PathLike
        The run cache's root.
    data_dir : str, os.PathLike or None
        The Luan et al. set (None: ``$PHOTOSTYLE_DATA`` or data/luan2017).
    device : str
        "auto", "cpu", "cuda", ... (not part of the cache key).
    progress : bool
        Show the engine's progress bar.

    Returns
    -------
    RunRecord
        The stored run.

    Raises
    ------
    PhotostyleError
        If the pair is not in the data directory, the run's inputs or settings are bad (from
        the library calls that compute it), or the cache entry is damaged right after it was
        written.
    KeyboardInterrupt
        If the run was interrupted (its partial result kept under ``cache_dir/interrupted``).
    """
    cache = Path(cache_dir)
    pair = get_pair(spec.pair_id, data_dir)
    key = spec.key(pair)
    final = cache / "runs" / key
    found = read_entry(final)
    if found is not None:
        return RunRecord(spec, key, final, found)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final)  # folders of killed writers (SIGTERM, SIGKILL) of this key
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=temp_prefix(key)))
    try:
        md = _compute(spec, pair, tmp, cache, device, progress, callback, image_callback)
        md.update(key=key, spec=dataclasses.asdict(spec), pair=dataclasses.asdict(pair))
        write_json(md, tmp / "metadata.json")
        if md.get("stop_reason") == STOPPED_BY_USER:
            kept = cache / "interrupted" / key
            keep_interrupted(tmp, kept)
            return RunRecord(spec, key, kept if kept.is_dir() else tmp, md)
        if was_interrupted(md):
            keep_interrupted(tmp, cache / "interrupted" / key)
            raise KeyboardInterrupt(f"run {key} interrupted; its partial result is in "
                                    f"{cache / 'interrupted' / key} (not cached as done)")
        write_manifest(tmp)
        try:
            os.replace(tmp, final)
        except OSError:  # another worker finished the same run first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    found = read_entry(final)
    if found is None:
        raise PhotostyleError(f"the cache entry {final} was damaged as soon as it was written; "
                              "check the disk and the cache folder's other users")
    return RunRecord(spec, key, final, found)

def _compute(spec: RunSpec, pair: Pair, out: Path, cache: Path, device: str, progress: bool,
             callback: Callable[[int, dict[str, float]], None] | None = None,
             image_callback: Callable[[int, torch.Tensor], None] | None = None) -> dict[str, Any]:
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with PeakRSS() as mem:
        md = _compute_inner(spec, pair, out, cache, dev, progress, callback, image_callback)
    md["memory"] = mem.report(dev)
    return md


def _compute_inner(spec: RunSpec, pair: Pair, out: Path, cache: Path, dev: torch.device, progress: bool,
                   callback: Callable[[int, dict[str, float]], None] | None,
                   image_callback: Callable[[int, torch.Tensor], None] | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    md = base_metadata()
    md.update(method=spec.method, random_weights=False, weights_warning=None, weights=None)
    if spec.uses_engine:
        segmentation = SegmentationCache(cache / "segmentation")
        run = run_files(file_transfer_of(spec, pair, str(dev)), cache=segmentation, progress=progress,
                        callback=callback, image_callback=image_callback)
        _write_engine_run(run, out)
        md.update(run.result.metadata())
        md.update(run.mask_metadata)
        md["random_weights"] = run.random_weights
        md["weights_warning"] = run.weights_warning  # result.metadata() also gave network and weights_choice
        md["wall_seconds"] = time.perf_counter() - t0
        return md
    content = load_image(pair.content, max_size=spec.size)
    style = load_image(pair.style, max_size=spec.size)
    save_image(content, out / "content.png", overwrite=True)
    save_image(style, out / "style.png", overwrite=True)
    if spec.method in COLOUR_TRANSFER:
        c, s = tensor_to_array(content), tensor_to_array(style)
        t = time.perf_counter()
        img = baselines.reinhard(c, s) if spec.method == "reinhard" else baselines.pitie_idt(c, s, seed=spec.seed)
        save_image(array_to_tensor(img), out / "image.png", overwrite=True)
        md.update(weights="none (colour transfer)", timings={"total": time.perf_counter() - t})
    else:
        if pair.luan_result is None:
            raise PhotostyleError(f"pair {pair.id} has no published Luan et al. result in the data directory")
        pub = resize_tensor(load_image(pair.luan_result), tuple(content.shape[-2:]))
        save_image(pub, out / "image.png", overwrite=True)
        md.update(weights="published result (Luan et al. 2017)", timings={"total": 0.0})
    md["wall_seconds"] = time.perf_counter() - t0
    return md


def _write_engine_run(run: Run, out: Path) -> None:
    """An engine run's files in its cache folder: the inputs at the run's size, the masks (float16), the
    final and raw images (labelled with the run's banner) and the loss log."""
    save_image(run.content, out / "content.png", overwrite=True)
    save_image(run.style, out / "style.png", overwrite=True)
    masks = run.masks
    if masks is not None:
        write_file_atomically(out / "masks.npz", lambda f: np.savez_compressed(
            f, content=masks.content.numpy().astype(np.float16), style=masks.style.numpy().astype(np.float16),
            labels=np.array(masks.labels), kind=np.array(masks.kind), pipeline=np.array(masks.pipeline or "")))
    text = weights_text(run.weights_warning)
    save_image(run.result.image, out / "image.png", overwrite=True, text=text)
    save_image(run.result.raw_image, out / "raw.png", overwrite=True, text=text)
    csv = run.result.losses.to_csv(index=False).encode()
    write_file_atomically(out / "losses.csv", lambda f: f.write(csv))


def run_many(specs: list[RunSpec], *, cache_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None,
             device: str = "auto", executor: Any = None, progress: bool = True, retries: int = 2) -> list[RunRecord]:
    """Run several specs, each an independent task writing its own cached result.

    ``executor``: None (one after another, here), or any object with the
    ``concurrent.futures`` ``submit`` interface -- a ProcessPoolExecutor, or a
    Dask ``distributed.Client`` -- so a lost worker loses only its task.
    Results come back in the order of ``specs``.

    On Dask, ``retries`` reruns a task that raised (e.g. a transient error of
    shared storage) up to that many times; a task whose worker died (killed,
    out of memory) is rescheduled by the scheduler itself, up to its
    ``distributed.scheduler.allowed-failures`` (default 3). Either way nothing
    finished is computed twice: every finished run is in ``cache_dir``, and a
    rescheduled task finds it there. Workers must therefore share
    ``cache_dir`` and ``data_dir`` (the same paths on a shared file system),
    and the VGG / segmenter weights caches, or have their own copies at the
    same paths.

    Parameters
    ----------
    specs : list of RunSpec
        The runs.
    cache_dir, data_dir, device, progress
        As :func:`run_cached`.
    executor : None or a ``concurrent.futures``-style executor
        Where the tasks run (:func:`executors.make_executor`).
    retries : int >= 0
        Reruns of a task that raised (Dask only).

    Returns
    -------
    list of RunRecord
        In the order of ``specs``.

    Raises
    ------
    PhotostyleError
        If ``retries`` < 0, or (re-raised from its task) a run fails as :func:`run_cached` says.
    """
    from tqdm.auto import tqdm

    check_int("retries", retries, low=0)
    data_dir = None if data_dir is None else str(data_dir)
    if executor is None:
        return [run_cached(s, cache_dir=cache_dir, data_dir=data_dir, device=device, progress=progress)
                for s in tqdm(specs, desc="runs", disable=not progress)]
    extra = {"retries": retries} if type(executor).__module__.startswith("distributed") else {}
    futures = [executor.submit(run_cached, s, cache_dir=str(cache_dir), data_dir=data_dir, device=device,
                               progress=False, **extra) for s in specs]
    return [f.result() for f in tqdm(futures, desc="runs", disable=not progress)]


def add_cache_arguments(parser: argparse.ArgumentParser, *, out: Path | None) -> None:
    """The options every study shares: ``--data`` (the dataset, default ``$PHOTOSTYLE_DATA`` then
    ``data/luan2017``), ``--cache`` (the run cache, default ``results/cache``), ``--out`` (the
    study's output folder, default ``out``) and ``--no-progress`` (no tqdm bars).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The study's parser; the four options are added to it.
    out : Path or None
        The default output folder (None: the study derives one from its other options).
    """
    parser.add_argument("--data", type=Path, default=None, help="the Luan et al. data folder")
    parser.add_argument("--cache", type=Path, default=Path("results/cache"), help="the run cache (resumable)")
    parser.add_argument("--out", type=Path, default=out, help="the output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
