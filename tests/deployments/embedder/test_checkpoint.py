"""Loading official checkpoints: key layout, clear errors, the tiny model writer."""

from __future__ import annotations

import json

import pytest
import torch

from pardus.deployments.embedder import checkpoint as ckpt
from pardus.deployments.embedder.eva import EVA02_CLIP_B_16, EVA02_CLIP_L_14, EvaVisionConfig
from pardus.deployments.settings import EmbedderSettings
from pardus.deployments.tiny.embedder import (
    TINY_VISION,
    random_official_state,
    state_digest,
    write_tiny_model,
)


def test_tiny_writer_is_deterministic_per_seed(tmp_path):
    a = torch.load(write_tiny_model(tmp_path / "a", seed=3)["PARDUS_EMBEDDER__CHECKPOINT"])
    b = torch.load(write_tiny_model(tmp_path / "b", seed=3)["PARDUS_EMBEDDER__CHECKPOINT"])
    c = torch.load(write_tiny_model(tmp_path / "c", seed=4)["PARDUS_EMBEDDER__CHECKPOINT"])
    assert state_digest(a) == state_digest(b) != state_digest(c)


def test_tiny_checkpoint_has_the_official_key_layout(tiny_model):
    state = torch.load(tiny_model["PARDUS_EMBEDDER__CHECKPOINT"])
    prefixes = {key.split(".")[0] for key in state}
    assert prefixes == {"bge_embeddings", "bge_encoder", "bge_pooler", "model_visual", "visual_proj"}
    for key in (
        "model_visual.visual.blocks.0.attn.q_bias",
        "model_visual.visual.blocks.1.mlp.ffn_ln.weight",
        "model_visual.visual.rope.freqs_cos",
        "bge_encoder.layer.0.attention.self.query.weight",
        "visual_proj.weight",
    ):
        assert key in state


def test_resolve_finds_the_vision_json_beside_the_checkpoint(embedder_settings):
    files = ckpt.resolve(embedder_settings)
    assert files.vision == TINY_VISION
    explicit = embedder_settings.model_copy(update={"vision_config": "EVA02-CLIP-L-14"})
    assert ckpt.resolve(explicit).vision == EVA02_CLIP_L_14


def test_vision_tower_follows_the_text_model_type(tmp_path):
    """Without eva_vision.json: BERT -> EVA02-CLIP-B-16, XLM-R (bge-m3) -> EVA02-CLIP-L-14."""
    env = write_tiny_model(tmp_path / "m3", variant="m3")
    (tmp_path / "m3" / "eva_vision.json").unlink()
    settings = EmbedderSettings(
        checkpoint=env["PARDUS_EMBEDDER__CHECKPOINT"], text_model=env["PARDUS_EMBEDDER__TEXT_MODEL"]
    )
    assert ckpt.resolve(settings).vision == EVA02_CLIP_L_14
    env = write_tiny_model(tmp_path / "base")
    (tmp_path / "base" / "eva_vision.json").unlink()
    settings = EmbedderSettings(
        checkpoint=env["PARDUS_EMBEDDER__CHECKPOINT"], text_model=env["PARDUS_EMBEDDER__TEXT_MODEL"]
    )
    assert ckpt.resolve(settings).vision == EVA02_CLIP_B_16


def test_missing_weights_say_what_to_do(tmp_path):
    settings = EmbedderSettings(checkpoint=str(tmp_path / "absent.pth"))
    with pytest.raises(ckpt.WeightsNotFound, match="pardus models tiny"):
        ckpt.resolve(settings)
    settings = EmbedderSettings(checkpoint="org/repo/file.pth")
    with pytest.raises(ckpt.WeightsNotFound, match="PARDUS_EMBEDDER__CHECKPOINT"):
        ckpt.resolve(settings)


def test_text_folder_without_config_is_refused(tiny_model, tmp_path):
    settings = EmbedderSettings(
        checkpoint=tiny_model["PARDUS_EMBEDDER__CHECKPOINT"], text_model=str(tmp_path)
    )
    with pytest.raises(ckpt.WeightsNotFound, match="no config.json"):
        ckpt.resolve(settings)


def test_unknown_and_missing_keys_are_refused(embedder_settings, tmp_path):
    files = ckpt.resolve(embedder_settings)
    state = torch.load(files.checkpoint)
    with pytest.raises(ValueError, match="keys Visualized BGE does not"):
        ckpt.official_to_ours({**state, "something.else": torch.zeros(1)})
    del state["visual_proj.weight"]
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(ValueError, match="missing.*visual_proj.weight"):
        ckpt.load_model(
            ckpt.ModelFiles(broken, files.text_model, files.vision), torch.device("cpu"), torch.float32
        )


def test_wrong_vision_tower_for_the_checkpoint_is_refused(embedder_settings):
    files = ckpt.resolve(embedder_settings)
    wrong = ckpt.ModelFiles(files.checkpoint, files.text_model, EVA02_CLIP_B_16)
    with pytest.raises(ValueError, match="does not fit"):
        ckpt.load_model(wrong, torch.device("cpu"), torch.float32)


def test_eva_json_round_trip_and_unsupported_towers(tmp_path):
    data = TINY_VISION.to_eva_clip_json()
    assert EvaVisionConfig.from_eva_clip_json(data) == TINY_VISION
    data["vision_cfg"]["rope"] = False
    path = tmp_path / "eva.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="only EVA02"):
        EvaVisionConfig.from_file(path)


def test_builtin_towers_have_the_published_shapes():
    assert (EVA02_CLIP_B_16.num_patches, EVA02_CLIP_B_16.mlp_hidden, EVA02_CLIP_B_16.heads) == (196, 2048, 12)
    assert (EVA02_CLIP_L_14.num_patches, EVA02_CLIP_L_14.width, EVA02_CLIP_L_14.heads) == (256, 1024, 16)


def test_random_state_covers_every_model_weight():
    from transformers import BertConfig

    from pardus.deployments.embedder.model import VisualizedBGE
    from pardus.deployments.tiny.embedder import _text_config

    config = _text_config(50)
    state = random_official_state(config, TINY_VISION, seed=0)
    model = VisualizedBGE(BertConfig(**config), TINY_VISION)
    result = model.load_state_dict(ckpt.official_to_ours(state), strict=False)
    assert not result.unexpected_keys
    assert all(k.endswith(("position_ids", "token_type_ids")) for k in result.missing_keys)
