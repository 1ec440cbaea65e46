"""The clean-up behind the slow scenarios (tests/support/processes.py stop_processes): every
process naming a Ray temp dir goes, with children that name nothing, and nothing else."""

from __future__ import annotations

import subprocess

from tests.support.processes import alive, processes, stop_processes


def test_stop_processes_takes_the_named_ones_and_their_children_only(tmp_path):
    marker = tmp_path / "ray-tmp"
    # A parent that names the dir (as raylet and workers do) and ends on SIGTERM, and a child
    # that does not name it (as vLLM's engine process) and ignores SIGTERM: once its parent
    # has ended it is nobody's descendant; and a bystander.
    named = subprocess.Popen(["bash", "-c", f": {marker}; (trap '' TERM; exec sleep 300) & wait"])
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        for _ in range(50):
            found = processes(marker)
            if len(found) >= 2:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert named.pid in found and len(found) >= 2, found
        assert bystander.pid not in found
        assert stop_processes(marker, grace_s=1) == set()
        assert named.wait(timeout=10) is not None
        assert processes(marker) == set()
        assert not any(alive(pid) for pid in found)  # the orphaned child too
        assert bystander.poll() is None
    finally:
        for process in (named, bystander):
            process.kill()
            process.wait()
