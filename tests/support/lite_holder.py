"""A foreign process that holds a Milvus Lite data file (to test lock handling)."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def foreign_holder(path: Path):
    """Open `path` with pymilvus's own local mode in another process and keep it open until the
    block ends."""
    code = (f"from pymilvus import MilvusClient; import time; MilvusClient({str(path)!r}); "
            "print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        if holder.stdout.readline().strip() != "held":
            raise RuntimeError("the holder process could not open the directory")
        yield holder
    finally:
        holder.kill()
        holder.wait()
