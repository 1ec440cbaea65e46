"""The `pardus` command line, run in-process through typer's runner."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from serve.cli import app

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
    from deployments.settings import get_settings
    from ingest.samples import draw_product

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


def test_embed_without_weights_explains_what_to_do(tmp_path, monkeypatch):
    from deployments.settings import get_settings

    monkeypatch.setenv("PARDUS_EMBEDDER__CHECKPOINT", str(tmp_path / "missing.pth"))
    get_settings.cache_clear()
    result = runner.invoke(app, ["embed", "--text", "x"])
    get_settings.cache_clear()
    assert result.exit_code == 2
    assert "pardus models tiny" in result.output


def test_demo_falls_back_to_a_tiny_model(tmp_path, monkeypatch):
    from deployments.settings import get_settings

    monkeypatch.setenv("PARDUS_EMBEDDER__CHECKPOINT", str(tmp_path / "missing.pth"))
    get_settings.cache_clear()
    result = runner.invoke(app, ["demo", "--workdir", str(tmp_path / "demo"), "--count", "8"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "rankings are meaningless" in result.output
    assert "SAMPLE0000" in result.output and "a phone case with this" in result.output
    assert len(list((tmp_path / "demo" / "catalogue" / "images").glob("*.jpg"))) == 8
