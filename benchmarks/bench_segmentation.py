"""Time ADE20KSegmenter.probabilities on CPU (and CUDA when present).

The default checkpoint's weights cannot be downloaded on offline machines, so
this times the default architecture (UPerNet on ConvNeXt-S, the architecture of
``openmmlab/upernet-convnext-small``) built from its config with RANDOM
weights: same layers, same arithmetic, same cost. The table's header says so.

One trap: ConvNeXt initialises its layer scales to 1e-6, so a randomly
initialised network produces denormal floats, which x86 CPUs process many
times slower (measured: about 2x for the whole model). Trained layer scales
are orders of magnitude larger, so by default the CPU rows flush denormals to
zero (``torch.set_flush_denormal``) to time what the pretrained model costs;
``--keep-denormals`` times the random network as it is.

Rows: image long side (512, 700 px; 4:3 landscape), the scales setting
(the default one pass at short side 512, one pass at the image's own size, and
the paper code's five-scale average), the model input sizes, the best of
``--repeats`` seconds per image, and the time relative to the reference row measured in
the same run (default scales, 512 px image, same device).

    .venv/bin/python benchmarks/bench_segmentation.py [--repeats 2] [--threads 2] [--skip-paper-scales]
"""

from __future__ import annotations

import argparse
import time

import torch

from photostyle_lib.semantic.segmenter import DEFAULT_SCALES, PAPER_SCALES, ADE20KSegmenter, architecture_config

SETTINGS = {"default (512,)": DEFAULT_SCALES, "native size": None, "paper 5-scale": PAPER_SCALES}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_one(seg: ADE20KSegmenter, image: torch.Tensor, repeats: int) -> float:
    """Best of ``repeats`` runs: on a shared machine the minimum is the least disturbed."""
    times = []
    for _ in range(repeats):
        _sync(seg.device)
        t0 = time.perf_counter()
        seg.probabilities(image)
        _sync(seg.device)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per row (best reported)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 700], help="image long sides, pixels")
    parser.add_argument("--skip-paper-scales", action="store_true", help="leave out the five-scale rows")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--keep-denormals", action="store_true",
                        help="do not flush denormals (see the module docstring)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    flushed = False if args.keep_denormals else torch.set_flush_denormal(True)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    settings = {k: v for k, v in SETTINGS.items() if not (args.skip_paper_scales and v == PAPER_SCALES)}
    config = architecture_config()
    print("ADE20KSegmenter.probabilities, default architecture (UPerNet + ConvNeXt-S, 82 M parameters) "
          "with RANDOM weights built from its config -- the same cost as the pretrained checkpoint")
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, best of {args.repeats} runs, "
          f"CPU denormals {'flushed to zero' if flushed else 'kept'}")
    header = f"{'device':<7}{'image HxW':>11}  {'scales':<16}{'model inputs':<44}{'seconds':>9}{'x ref':>8}"
    print(header)
    print("-" * len(header))
    for device in devices:
        ref = None
        # Warm-up at a full-size input: first-call costs (allocator, kernel selection) stay out of the table.
        ADE20KSegmenter("random", config=config, seed=0, device=device).probabilities(
            torch.rand(1, 3, round(args.sizes[0] * 3 / 4), args.sizes[0]))
        for long_side in args.sizes:
            h, w = round(long_side * 3 / 4), long_side
            image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
            for name, scales in settings.items():
                seg = ADE20KSegmenter("random", config=config, seed=0, device=device, scales=scales)
                sec = time_one(seg, image, args.repeats)
                ref = sec if ref is None else ref
                inputs = ", ".join(f"{a}x{b}" for a, b in seg.input_sizes(h, w))
                if len(inputs) > 42:
                    inputs = inputs[:39] + "..."
                print(f"{device:<7}{f'{h}x{w}':>11}  {name:<16}{inputs:<44}{sec:9.2f}{sec / ref:8.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
