"""The `pardus` command line, run in-process through typer's runner."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pardus.cli.main import app
from pardus.deployments.catalogue import lite_server
from tests.support.cli import core_processes, documented_to_outlive, invoke
from tests.support.processes import (
    Running,
    command_names,
    free_port,
    ignored_signals,
    listening_addresses,
    session_processes,
)

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.output.startswith("pardus 0.")


def test_models_tiny_writes_a_loadable_model(tmp_path):
    result = runner.invoke(app, ["models", "tiny", str(tmp_path / "m"), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "export PARDUS_EMBEDDER__CHECKPOINT=" in result.output
    assert (tmp_path / "m" / "Visualized_base_en_v1.5.pth").is_file()
    assert (tmp_path / "m" / "bge-base-en-v1.5" / "vocab.txt").is_file()


def test_models_tiny_m3_and_bad_variant(tmp_path):
    result = runner.invoke(app, ["models", "tiny", str(tmp_path / "m3"), "--variant", "m3"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m3" / "Visualized_m3.pth").is_file()
    assert (tmp_path / "m3" / "bge-m3" / "sentencepiece.bpe.model").is_file()
    result = runner.invoke(app, ["models", "tiny", str(tmp_path / "x"), "--variant", "large"])
    assert result.exit_code == 2 and "variant must be" in result.output


def test_models_tiny_reranker(tmp_path):
    result = runner.invoke(app, ["models", "tiny-reranker", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert "export PARDUS_RERANKER__MODEL=" in result.output
    config = (tmp_path / "p" / "config.json").read_text()
    assert "Phi3VForCausalLM" in config and (tmp_path / "p" / "model.safetensors").is_file()
    result = runner.invoke(app, ["models", "tiny-reranker", str(tmp_path / "full"), "--full-size"])
    assert result.exit_code == 0 and "LOAD_FORMAT=dummy" in result.output
    full = json.loads((tmp_path / "full" / "config.json").read_text())
    assert (full["hidden_size"], full["num_hidden_layers"], full["img_processor"]["layer_idx"]) == (
        3072, 32, -2)
    assert not (tmp_path / "full" / "model.safetensors").exists()


def test_embed_prints_similarities(tiny_model, tmp_path, monkeypatch):
    from pardus.deployments.settings import get_settings
    from pardus.ingest.samples import draw_product

    for key, value in tiny_model.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    draw_product("mug", "red", "dotted").save(tmp_path / "mug.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    result = runner.invoke(app, [
        "embed", "--text", "a red mug", "--image", str(tmp_path / "mug.jpg"),
        "--image", str(tmp_path / "broken.jpg"),
    ])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "cosine similarity" in result.output and "1.000" in result.output
    assert "skipped" in result.output and "not an image" in result.output
    assert "broken.jpg │" not in result.output  # failed inputs are not compared


def test_a_table_wider_than_a_pipe_keeps_its_figures(tiny_model, monkeypatch):
    """Output to a file or a pipe (no terminal: rich lays out 80 columns): a table that needs
    more is printed wider, every figure in full, never cut to `0.…`."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    texts = [f"a red mug, number {n}" for n in range(12)]
    result = invoke(["embed", *[word for text in texts for word in ("--text", text)]],
                    tiny_model, monkeypatch)
    assert result.exit_code == 0, result.output
    rows = [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in result.output.splitlines() if line.startswith("│")]
    assert "…" not in result.output
    assert [row[0] for row in rows] == [f"{n} text: {text}" for n, text in enumerate(texts)]
    for n, row in enumerate(rows):
        assert len(row) == 1 + len(texts) and row[1 + n] == "1.000"
        assert all(re.fullmatch(r"-?[01]\.\d{3}", cell) for cell in row[1:]), row


def test_embed_without_weights_explains_what_to_do(tmp_path, monkeypatch):
    from pardus.deployments.settings import get_settings

    monkeypatch.setenv("PARDUS_EMBEDDER__CHECKPOINT", str(tmp_path / "missing.pth"))
    get_settings.cache_clear()
    result = runner.invoke(app, ["embed", "--text", "x"])
    get_settings.cache_clear()
    assert result.exit_code == 2
    assert "pardus models tiny" in result.output


def run_cli(args: list[str], env: dict, timeout: float = 420) -> subprocess.CompletedProcess:
    """`pardus ...` in its own process: commands that start Ray must not share the test's."""
    return subprocess.run([sys.executable, "-m", "pardus.cli.main", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})


def test_demo_ingests_serves_and_answers_a_composed_query(tmp_path):
    """The README's main job, end to end: tiny models (no weights here), Serve, vLLM rerank."""
    result = run_cli(["demo", "--workdir", str(tmp_path / "demo"), "--count", "12", "--port",
                      "8151"], {"PARDUS_EMBEDDER__CHECKPOINT": str(tmp_path / "missing.pth"),
                                "PARDUS_LOG_DIR": str(tmp_path / "logs")})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    # ours only: the table, the progress, our notes; Ray's and vLLM's lines are in the log
    assert not [line for line in output.splitlines() if any(s in line for s in LIBRARY_LINES)]
    assert (tmp_path / "logs" / "pardus-demo.log").stat().st_size > 0
    assert "rankings and reasons are meaningless" in output
    assert "a phone case with this" in output and "SAMPLE0000" in output
    assert "reranked" in output and "timings: embed" in output
    assert "composed query, hybrid search, weighted fusion" in output
    pictures = sum(1 + i % 3 for i in range(12))  # one to three per item
    assert len(list((tmp_path / "demo" / "catalogue" / "images").glob("*.jpg"))) == pictures
    outlived = bool(core_processes(tmp_path / "demo" / "pardus.db"))
    assert outlived == documented_to_outlive("pardus demo")


def test_serve_without_weights_says_what_to_do(tmp_path, monkeypatch):
    from pardus.deployments.settings import get_settings

    monkeypatch.setenv("PARDUS_EMBEDDER__CHECKPOINT", str(tmp_path / "missing.pth"))
    get_settings.cache_clear()
    result = runner.invoke(app, ["serve"])
    get_settings.cache_clear()
    assert result.exit_code == 2
    assert "pardus models tiny" in result.output


LIBRARY_LINES = ("INFO", "WARNING", "(raylet)", "core_worker", "Deprecat", "Traceback",
                 "GOAWAY", "too_many_pings")


def start_serve(tmp_path: Path, env: dict[str, str], port: int) -> Running:
    """`pardus serve` in its own session, with default signal dispositions whatever the
    runner's (a runner in the background ignores SIGINT: so would the child)."""
    env = {**os.environ, **env, "PARDUS_MILVUS__URI": str(tmp_path / "store.db"),
           "PARDUS_SERVING__IMAGE_ROOT": str(tmp_path), "PARDUS_LOG_DIR": str(tmp_path / "logs")}
    command = Running([sys.executable, "-m", "pardus.cli.main", "serve", "--port", str(port),
                       "--no-rerank"], env)
    time.sleep(0.5)  # the launcher has exec'd
    assert not ignored_signals(command.pid) & {signal.SIGINT, signal.SIGTERM}
    return command


def ended_quietly(command: Running) -> None:
    """Our lines only in its output, and none of its session's processes left within 30 s."""
    assert not [line for line in command.output.splitlines()
                if any(s in line for s in LIBRARY_LINES)]
    deadline = time.monotonic() + 30
    while session_processes(command.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = session_processes(command.pid)
    assert not left, f"processes left behind: {command_names(left)}"


def stopped_cleanly(command: Running, stop: signal.Signals, tmp_path: Path) -> str:
    """Send `stop`; the command's output once it ended with 0 and left no process behind."""
    code = command.stop(stop)  # Ctrl-C, or what Kubernetes and process managers send
    output = command.output
    assert code == 0, output[-3000:]
    ended_quietly(command)
    outlived = bool(core_processes(tmp_path / "store.db"))  # in a session of its own
    lite_server.stop(tmp_path / "store.db")
    assert outlived == documented_to_outlive("pardus serve")
    return output


def test_a_command_starts_ray_on_loopback_unless_it_joins_a_cluster(monkeypatch):
    """The variable that keeps a local Ray on loopback is set before any command imports Ray
    (inside tests/run-isolated's namespace Ray sees only loopback anyway, so the listening
    check below tells the difference only outside it)."""
    name = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert runner.invoke(app, ["version"]).exit_code == 0
    assert os.environ[name] == "0"
    monkeypatch.delenv(name)
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")  # a RayJob's: Ray's own choice
    assert runner.invoke(app, ["version"]).exit_code == 0
    assert name not in os.environ


def refused_without_token(port: int) -> bool:
    """Whether a gRPC server on this port refuses a call that carries no Ray auth token."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            channel.unary_unary("/ray.serve.ASGIService/HandleRequest")(b"", timeout=10)
        except grpc.RpcError as exc:
            return exc.code() == grpc.StatusCode.UNAUTHENTICATED
    return False


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_answers_and_stops_cleanly(tmp_path, tiny_model, stop):
    port = free_port()
    command = start_serve(tmp_path, tiny_model, port)
    started: set[int] = set()
    try:
        assert command.wait_for(f"Pardus is serving at http://127.0.0.1:{port}", 240)
        body = httpx.post(f"http://127.0.0.1:{port}/v1/search", json={"text": "a mug"},
                          timeout=60).json()
        assert body["results"] == [] and body["rerank"]["outcome"] == "disabled"  # empty catalogue
        started = session_processes(command.pid)
        listening = listening_addresses(started)
        # Ray's servers (GCS, raylet, workers, agents) and ours listen on loopback only; Serve
        # binds each replica's gRPC server on every interface (ray/serve/_private/replica.py),
        # and Ray's token auth, on for a local Ray, refuses a call without the token there.
        assert f"127.0.0.1:{port}" in listening and len(listening) > 5, listening
        open_ = {a: p for a, p in listening.items() if not a.startswith("127.0.0.1:")}
        assert all("ServeRepli" in name for name in open_.values()), open_
        for address in open_:
            assert refused_without_token(int(address.rsplit(":", 1)[1]))
    finally:
        output = stopped_cleanly(command, stop, tmp_path)
    assert "pardus-serve.log" in output and (tmp_path / "logs" / "pardus-serve.log").exists()
    assert len(started) > 3  # Ray's own processes were there


@pytest.mark.slow  # ~50 s; `make test` stops a serving one (above)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_stops_cleanly_while_ray_starts(tmp_path, tiny_model, stop):
    """Stopped as Ray's processes appear: inside ray.init, whose own SIGTERM handler exits
    at once, or just after it, before the app is up."""
    command = start_serve(tmp_path, tiny_model, free_port())
    try:
        command.wait_until(lambda: command.started({"gcs_server", "raylet"}), 120)
        assert command.process.poll() is None, "serve ended before Ray started"
    finally:
        output = stopped_cleanly(command, stop, tmp_path)
    assert "Pardus is serving" not in output and "stopped" in output


@pytest.mark.slow  # ~100 s; `make test` runs the demo to its end
@pytest.mark.parametrize(("stop", "when", "code"), [
    (signal.SIGTERM, "Pardus is serving at", 0),  # --keep-running: how it ends
    (signal.SIGINT, "gcs_server", 130),  # while Ray starts for the ingest: not finished
], ids=["sigterm-serving", "ctrl-c-starting"])
def test_demo_stops_cleanly(tmp_path, stop, when, code):
    env = {**os.environ, "PARDUS_EMBEDDER__CHECKPOINT": str(tmp_path / "missing.pth"),
           "PARDUS_LOG_DIR": str(tmp_path / "logs")}
    command = Running([sys.executable, "-m", "pardus.cli.main", "demo", "--workdir",
                       str(tmp_path / "demo"), "--count", "8", "--no-rerank", "--keep-running",
                       "--port", str(free_port())], env)
    try:
        command.wait_until(lambda: when in command.output or command.started({when}), 300)
        assert command.process.poll() is None, command.output[-3000:]
    finally:
        exit_code = command.stop(stop)
    output = command.output
    assert exit_code == code, output[-3000:]
    assert ("stopped before the demo finished" in output) == (code != 0)
    ended_quietly(command)
    assert not core_processes(tmp_path / "demo" / "pardus.db")  # the demo stops its own


def test_search_against_the_service_and_in_process(service_url, service_settings, monkeypatch):
    result = runner.invoke(app, ["search", "--url", service_url, "--text", "a yellow bag",
                                 "--k", "3", "--no-rerank", "--category", "Clothing"])
    assert result.exit_code == 0, result.output
    assert "SAMPLE" in result.output and "not reranked" in result.output

    from pardus.deployments.settings import get_settings

    embedder = service_settings["embedder"]
    monkeypatch.setenv("PARDUS_EMBEDDER__CHECKPOINT", embedder["checkpoint"])
    monkeypatch.setenv("PARDUS_EMBEDDER__TEXT_MODEL", embedder["text_model"])
    monkeypatch.setenv("PARDUS_MILVUS__URI", service_settings["milvus"]["uri"])
    monkeypatch.setenv("PARDUS_MILVUS__COLLECTION", service_settings["milvus"]["collection"])
    get_settings.cache_clear()
    try:
        local = runner.invoke(app, ["search", "--in-process", "--text", "a yellow bag", "--k", "3",
                                    "--category", "Clothing"])
    finally:
        get_settings.cache_clear()
    assert local.exit_code == 0, local.output
    ids = lambda text: [w for w in text.split() if w.startswith("SAMPLE")]  # noqa: E731
    assert ids(local.output) == ids(result.output)


def test_search_explains_a_missing_service_and_bad_filters(service_url):
    result = runner.invoke(app, ["search", "--url", "http://127.0.0.1:8159", "--text", "x"])
    assert result.exit_code == 2 and "pardus serve" in result.output
    result = runner.invoke(app, ["search", "--url", service_url, "--text", "x",
                                 "--price-min", "9", "--price-max", "1"])
    assert result.exit_code == 1 and "price_min" in result.output


def test_search_pages_facets_and_similar_from_the_command_line(service_url):
    """A page with its facets and the command for the next one; following it gives the
    next products; `pardus similar` lists others like an item."""
    first = runner.invoke(app, ["search", "--url", service_url, "--text", "a bag", "--k", "4",
                                "--no-rerank", "--sort", "price_asc", "--facet", "category",
                                "--refine", "price=0-10", "--refine", "price=10-25", "--debug"])
    assert first.exit_code == 0, first.output
    said = " ".join(first.output.split())
    assert "category:" in said and "sorted by price_asc" in said and "prices in USD" in said
    assert "how the order came about" in said and "next page: pardus search" in said
    cursor = said.split("--cursor ")[-1].split()[0]
    second = runner.invoke(app, ["search", "--url", service_url, "--text", "a bag", "--k", "4",
                                 "--no-rerank", "--sort", "price_asc", "--facet", "category",
                                 "--refine", "price=0-10", "--refine", "price=10-25", "--debug",
                                 "--cursor", cursor])
    assert second.exit_code == 0, second.output

    def ids(text: str) -> list[str]:
        """The ids in the table's rows (not in its title or the next-page command)."""
        rows = [line for line in text.splitlines() if line.startswith("│")]
        return re.findall(r"SAMPLE\d{5}", "\n".join(rows))

    assert ids(first.output) and ids(second.output)
    assert not set(ids(first.output)) & set(ids(second.output))
    wrong = runner.invoke(app, ["search", "--url", service_url, "--text", "a mug", "--cursor",
                                cursor])
    assert wrong.exit_code == 1 and "another search" in wrong.output
    bad = runner.invoke(app, ["search", "--url", service_url, "--text", "x", "--refine", "x"])
    assert bad.exit_code == 2 and "FACET=VALUE" in bad.output
    alike = runner.invoke(app, ["similar", "SAMPLE00002", "--url", service_url, "--k", "3"])
    assert alike.exit_code == 0, alike.output
    assert "SAMPLE00002" not in ids(alike.output) and len(ids(alike.output)) == 3
    missing = runner.invoke(app, ["similar", "NOPE", "--url", service_url])
    assert missing.exit_code == 1 and "no item" in missing.output
