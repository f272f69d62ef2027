"""LBAG speed and memory: training steps/s and inference time, eager versus each optimisation.

Every (variant, task) runs in a fresh subprocess so that its peak memory (max RSS on the
CPU, max allocated on CUDA) is its own. Ratios are against the eager baseline measured in
the same run. The script runs unchanged on a GPU machine (``--device cuda``).

    python benchmarks/lbag_bench.py                   # full model, CPU, all variants
    python benchmarks/lbag_bench.py --quick           # smaller inputs, for a smoke run
    python benchmarks/lbag_bench.py --device cuda --batch 12
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

VARIANTS = ("eager", "channels_last", "bf16", "compile", "tile_batch")
TASKS = ("train", "infer_538x359", "infer_2152x1436_tiled")


def _measure(variant: str, task: str, args: argparse.Namespace) -> dict:
    import torch

    from reloblur.lbag.device import resolve_device
    from reloblur.lbag.inference import TileOptions, deblur
    from reloblur.lbag.losses import lbag_loss
    from reloblur.lbag.model import LBAG

    torch.manual_seed(0)
    device = resolve_device(args.device)
    model = LBAG(args.num_res).to(device)
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if variant == "compile" else model
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if variant == "bf16" else None

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn, repeats: int) -> float:
        fn()  # warm-up (and compilation)
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        sync()
        return (time.perf_counter() - start) / repeats

    if task == "train":
        net.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        p = args.patch
        blur = torch.rand(args.batch, 3, p, p, device=device)
        sharp = torch.rand(args.batch, 3, p, p, device=device)
        mask = (torch.rand(args.batch, 1, p, p, device=device) > 0.8).float()
        if variant == "channels_last":
            blur = blur.contiguous(memory_format=torch.channels_last)

        def step() -> None:
            if autocast:
                with autocast():
                    images, gates = net(blur)
            else:
                images, gates = net(blur)
            loss, _ = lbag_loss([i.float() for i in images], [g.float() for g in gates], sharp, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        seconds = timed(step, args.repeats)
        result = {"seconds": seconds, "steps_per_s": 1.0 / seconds, "batch": args.batch, "patch": p}
    else:
        net.eval()
        width, height = (538, 359) if task == "infer_538x359" else (2152, 1436)
        if args.quick:
            width, height = width // 2, height // 2
        image = torch.rand(3, height, width)
        # tile_batch: --tile-batch tiles per model call (deblur's default on a GPU); the
        # others one tile a call (its default on the CPU).
        tiles = TileOptions(None if "tiled" not in task else args.tile, args.overlap,
                            args.tile_batch if variant == "tile_batch" else 1)

        def run() -> None:
            with torch.no_grad():
                if autocast:
                    with autocast():
                        deblur(net, image, tiles=tiles, device=device)
                else:
                    deblur(net, image, tiles=tiles, device=device)

        seconds = timed(run, args.repeats)
        result = {"seconds": seconds, "size": f"{width}x{height}", "tile": tiles.tile}
    if device.type == "cuda":
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["device"] = str(device)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-res", type=int, default=20, help="20 = the full LBAG")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--tile-batch", type=int, default=4, help="tiles per model call of the tile_batch variant")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--quick", action="store_true", help="half-size inference inputs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "TASK"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(_measure(args.child[0], args.child[1], args)))
        return

    forwarded = [a for a in sys.argv[1:] if a != "--json"]
    results: dict[str, dict[str, dict]] = {}
    for task in args.tasks.split(","):
        for variant in args.variants.split(","):
            command = [sys.executable, __file__, *forwarded, "--child", variant, task]
            completed = subprocess.run(command, capture_output=True, text=True, env=os.environ)
            if completed.returncode != 0:
                tail = completed.stderr.strip().splitlines()[-1:] or ["failed"]
                results.setdefault(task, {})[variant] = {"error": tail[0]}
            else:
                results.setdefault(task, {})[variant] = json.loads(completed.stdout.strip().splitlines()[-1])
            print(f"{task:24s} {variant:14s} {results[task][variant]}", file=sys.stderr)

    for by_variant in results.values():
        base = by_variant.get("eager", {}).get("seconds")
        for entry in by_variant.values():
            if base and "seconds" in entry:
                entry["speedup_vs_eager"] = base / entry["seconds"]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"LBAG num_res={args.num_res} on {args.device}; baseline: eager, same run")
    print(f"{'task':24s} {'variant':14s} {'seconds':>9s} {'x eager':>8s} {'peak MB':>9s}")
    for by_variant in results.values():
        for variant, entry in by_variant.items():
            if "error" in entry:
                print(f"{task:24s} {variant:14s} failed: {entry['error']}")
                continue
            print(f"{task:24s} {variant:14s} {entry['seconds']:9.3f} {entry.get('speedup_vs_eager', 1):8.2f} "
                  f"{entry['peak_mb']:9.0f}")


if __name__ == "__main__":
    main()
