"""Run a scenario script (tests/k8s/*_scenario.py) in its own process, as the slow k8s tests do:
it never meets the Ray instance other tests of the session may hold, and what it started is
stopped even when it dies hard."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from pardus.cli.serve_config import REPO_ROOT
from pardus.deployments.catalogue import lite_server
from tests.support.processes import stop_processes


def run_scenario(module: str, work: Path, args: list[str], timeout: float,
                 grace_s: float) -> dict[str, Any]:
    """`python -m module --work work/run --out work/facts.json --ray-tmp T *args`, in its own
    session with no RAY_ADDRESS, its output in work/scenario.log. Past `timeout` it gets SIGTERM
    (the scenarios shut their cluster down on it), past `grace_s` more SIGKILL to its group.
    Then every process of its Ray temp dir T is stopped, T removed and the embedded Milvus
    under work/run stopped. Returns the JSON report, with `left_after_the_scenario` (the
    processes that outlived even that); a test failure with the log's tail when it failed."""
    out, log = work / "facts.json", work / "scenario.log"
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # Short (under /tmp): Ray's unix socket paths must stay under 108 characters.
    ray_tmp = Path(tempfile.mkdtemp(prefix="pardus-sc-", dir="/tmp"))
    command = [sys.executable, "-m", module, "--work", str(work / "run"), "--out", str(out),
               "--ray-tmp", str(ray_tmp), *args]
    with open(log, "w") as handle:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        finally:
            left = stop_processes(ray_tmp)  # nothing, unless the scenario died hard
            shutil.rmtree(ray_tmp, ignore_errors=True)
            lite_server.stop(work / "run" / "pardus.db")  # no-op when the scenario stopped it
    report = json.loads(out.read_text()) if out.exists() else {}
    report["left_after_the_scenario"] = sorted(left)
    if process.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        pytest.fail(f"the scenario failed (rc {process.returncode}): "
                    f"{report.get('error', '')}\n--- log tail ---\n{tail}")
    return report
