"""Ingest throughput with the second vector (image + title, for text queries) against the single
image vector Pardus stored before, on the same images, model and Milvus, in one run.

    .venv/bin/python benchmarks/ingest_throughput.py [--items 48] [--rounds 2] [--before cac015d]

`--before` names the commit whose tree stored one vector per item (its pipeline runs from a
git worktree of this repository). Each item has one picture, so both embed the same images;
the new pipeline also reads the words and computes the second vector (one vision pass, two
BGE passes). Both run as `pardus ingest` into a fresh collection of the same Milvus 2.5 core
server, the full-size architecture with random weights, alternately, `--rounds` times each;
printed: items/s of each run (the pipeline's own figure, past Ray's start) and the median
ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pardus.deployments.tiny.embedder import write_tiny_model  # noqa: E402
from pardus.ingest.samples import write_sample_catalogue  # noqa: E402
from tests.support.milvus_core import MilvusCore  # noqa: E402

console = Console()


def single_picture_manifest(folder: Path, items: int) -> Path:
    """The sample catalogue with each item's main picture only."""
    write_sample_catalogue(folder, count=items)
    manifest = folder / "one-picture.jsonl"
    with open(manifest, "w") as out:
        for line in (folder / "items.jsonl").read_text().splitlines():
            record = json.loads(line)
            record["images"] = record["images"][:1]
            out.write(json.dumps(record) + "\n")
    return manifest


def ingest(tree: Path, manifest: Path, env: dict[str, str], collection: str) -> float:
    """`pardus ingest` from `tree`; the items/s it reports."""
    done = subprocess.run(
        [sys.executable, "-m", "pardus.cli.main", "ingest", str(manifest), "--collection", collection],
        cwd=tree, env={**env, "PYTHONPATH": str(tree)}, capture_output=True, text=True,
        timeout=3600)
    output = done.stdout + done.stderr
    found = re.search(r"indexed items/s\s*│\s*([0-9.]+)", output)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"ingest from {tree} failed:\n{output[-3000:]}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default="cac015d", help="a commit storing one vector")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pardus-ingest-bench-"))
    before = work / "before"
    subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=REPO,
                   check=True, capture_output=True)
    server = MilvusCore(work / "core.db", timeout=60)
    try:
        manifest = single_picture_manifest(work / "catalogue", args.items)
        model = write_tiny_model(work / "model", seed=0, full_size=True)
        server.start()
        env = {**os.environ, **model, "PARDUS_MILVUS__URI": server.uri,
               "PARDUS_MILVUS__INDEX_TYPE": "FLAT",  # both trees; the core refuses HNSW
               "PARDUS_INGEST__REPORT": str(work / "report.jsonl"), "RAY_USAGE_STATS_ENABLED": "0"}
        rates: dict[str, list[float]] = {"one vector (before)": [], "two vectors (now)": []}
        for round_ in range(args.rounds):
            for label, tree in (("one vector (before)", before), ("two vectors (now)", REPO)):
                rate = ingest(tree, manifest, env, f"r{round_}_{label.split()[0]}")
                rates[label].append(rate)
                console.print(f"round {round_ + 1}: {label}: {rate:.2f} items/s")
        table = Table(title=f"ingest, {args.items} items of one picture each, full-size "
                            "random-weight model, Milvus 2.5 core server, 2 cores")
        for column in ("pipeline", "items/s per round", "median items/s", "ratio"):
            table.add_column(column)
        base = statistics.median(rates["one vector (before)"])
        for label, values in rates.items():
            median = statistics.median(values)
            table.add_row(label, ", ".join(f"{v:.2f}" for v in values), f"{median:.2f}",
                          f"{median / base:.2f}x")
        console.print(table)
    finally:
        server.stop()
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=REPO,
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
