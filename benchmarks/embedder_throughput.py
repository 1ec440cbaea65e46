"""Embedder throughput: ours (batched) against the reference's one-at-a-time encode, one run.

    bash benchmarks/reference/setup.sh                 # once: the reference venv
    .venv/bin/python benchmarks/embedder_throughput.py [--items 32] [--batch-sizes 1 8 32]

Both sides use the full-size architecture (bge-base + EVA02-CLIP-B-16) with the same random
weights, the same image files (decoding included) and the same texts, one after the other on
this machine. Prints items/s and the ratio ours / reference per kind, batch size and dtype.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pardus.deployments.embedder.encoder import Embedder  # noqa: E402
from pardus.deployments.settings import EmbedderSettings  # noqa: E402
from pardus.deployments.tiny.embedder import CHECKPOINT_NAME, TEXT_DIR, write_tiny_model  # noqa: E402
from pardus.ingest.samples import COLORS, PATTERNS, SHAPES, draw_product  # noqa: E402

KINDS = ("image", "text", "mm")
console = Console()


def make_inputs(folder: Path, count: int) -> tuple[list[str], list[str]]:
    folder.mkdir(parents=True, exist_ok=True)
    paths, texts = [], []
    for i in range(count):
        kind, color = list(SHAPES)[i % len(SHAPES)], list(COLORS)[i % len(COLORS)]
        pattern = PATTERNS[i % len(PATTERNS)]
        path = folder / f"item-{i:03d}.jpg"
        if not path.exists():
            draw_product(kind, color, pattern, seed=i, size=400).save(path, quality=90)
        paths.append(str(path))
        texts.append(f"a photo of item number {i} on a plain background")
    return paths, texts


def reference_rate(ref_python: str, model_dir: Path, images: Path, kind: str, seconds: float) -> float:
    cmd = [ref_python, "-W", "ignore", str(REPO / "benchmarks/reference/shim.py"), "bench",
           "--model-dir", str(model_dir), "--images", str(images), "--kind", kind,
           "--seconds", str(seconds), "--threads", str(torch.get_num_threads())]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["items_per_s"]


def our_rate(embedder: Embedder, kind: str, paths: list[str], texts: list[str]) -> float:
    def run(n: int) -> None:
        if kind == "image":
            embedder.encode_images(paths[:n])
        elif kind == "text":
            embedder.encode_texts(texts[:n])
        else:
            embedder.encode_pairs(paths[:n], texts[:n])

    run(min(len(paths), embedder.settings.batch_size))  # warm-up
    if embedder.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run(len(paths))
    if embedder.device.type == "cuda":
        torch.cuda.synchronize()
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--dtypes", nargs="+", default=None,
                        help="default: float32 and bfloat16 on CPU, bfloat16 on GPU")
    parser.add_argument("--workdir", type=Path, default=REPO / "data" / "bench")
    parser.add_argument("--ref-python", default=str(REPO / ".venv-ref" / "bin" / "python"))
    parser.add_argument("--ref-seconds", type=float, default=20.0)
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    dtypes = args.dtypes or (["bfloat16"] if cuda else ["float32", "bfloat16"])
    model_dir = args.workdir / "model-full"
    if not (model_dir / CHECKPOINT_NAME).exists():
        with console.status("writing the full-size random-weight model"):
            write_tiny_model(model_dir, seed=0, full_size=True)
    paths, texts = make_inputs(args.workdir / "images", args.items)
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                  f"{'cuda ' + torch.cuda.get_device_name() if cuda else 'cpu'}, {args.items} items")

    reference = {}
    if Path(args.ref_python).exists():
        for kind in args.kinds:
            with console.status(f"reference: {kind}, one at a time, fp32"):
                reference[kind] = reference_rate(
                    args.ref_python, model_dir, args.workdir / "images", kind, args.ref_seconds
                )
    else:
        console.print(f"[yellow]no reference venv at {args.ref_python}: run benchmarks/reference/setup.sh[/]")

    table = Table(title="Visualized BGE throughput (items/s, full-size architecture)")
    for column in ("kind", "dtype", "batch", "ours", "reference (1 at a time, fp32)", "ratio"):
        table.add_column(column, justify="right")
    for dtype in dtypes:
        for batch in args.batch_sizes:
            embedder = Embedder(EmbedderSettings(
                checkpoint=str(model_dir / CHECKPOINT_NAME), text_model=str(model_dir / TEXT_DIR),
                batch_size=batch, dtype=dtype,
            ))
            for kind in args.kinds:
                with console.status(f"ours: {kind}, {dtype}, batch {batch}"):
                    rate = our_rate(embedder, kind, paths, texts)
                ref = reference.get(kind)
                table.add_row(kind, dtype, str(batch), f"{rate:.2f}",
                              f"{ref:.2f}" if ref else "-", f"{rate / ref:.2f}x" if ref else "-")
            embedder.close()
    console.print(table)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
