"""Prompt formats per model family."""

from __future__ import annotations

import json

import pytest

from pardus.deployments.reranker.prompts import RerankPrompt, phi3_vision, prompt_format, qwen2_vl


@pytest.mark.parametrize("model", ["microsoft/Phi-3-vision-128k-instruct",
                                   "microsoft/Phi-3.5-vision-instruct", "/models/phi3v-tiny"])
def test_phi3_family(model):
    assert prompt_format(model) is phi3_vision
    text = phi3_vision("do it")
    assert text.startswith("<|user|>\n<|image_1|>\n") and text.endswith("<|end|>\n<|assistant|>\n")


def test_local_folder_is_recognised_by_its_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Phi3VForCausalLM"]}))
    assert prompt_format(str(tmp_path)) is phi3_vision


def test_override_and_unknown():
    assert prompt_format("anything", "qwen2_vl") is qwen2_vl
    with pytest.raises(ValueError, match="PARDUS_RERANKER__PROMPT_FORMAT"):
        prompt_format("some/unknown-model")
    with pytest.raises(ValueError, match="unknown prompt format"):
        prompt_format("x", "nope")


def test_instruction_mentions_what_the_model_needs():
    text = RerankPrompt("a phone case with this", "a leopard", True, 9, ask_caption=False).instruction()
    assert "QUERY" in text and "1 to 9" in text and "a leopard" in text and "all 9" in text
    text = RerankPrompt("", None, False, 3, ask_caption=False).instruction()
    assert "QUERY" not in text and "shopper asks" not in text
