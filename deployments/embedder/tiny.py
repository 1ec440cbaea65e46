"""Write a tiny random-weight Visualized BGE in the official file formats, for tests and demos.

The folder looks like real weights laid out locally:
    DIR/Visualized_base_en_v1.5.pth   official state_dict key layout (all weights)
    DIR/bge-base-en-v1.5/             BERT config.json, vocab.txt, tokenizer_config.json
    DIR/eva_vision.json               EVA-CLIP config of the (tiny) vision tower
The BERT width stays 768 because the official code hard-codes a 768x768 bridge for bge-base.
"""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path

import torch

from deployments.embedder.checkpoint import VISION_JSON
from deployments.embedder.eva import EVA02_CLIP_B_16, EvaVisionConfig, rope_tables

TINY_VISION = EvaVisionConfig(
    image_size=64, patch_size=16, width=768, layers=2, head_width=64, mlp_ratio=0.5,
    pt_hw_seq_len=16, intp_freq=True, embed_dim=32,
)
CHECKPOINT_NAME = "Visualized_base_en_v1.5.pth"
TEXT_DIR = "bge-base-en-v1.5"

_WORDS = (
    "a an the this that with for and or of in on to my new red blue green black white pink "
    "phone case leopard cat dog shoe shoes dress shirt bag watch lamp chair table cup mug "
    "print pattern striped leather cotton wooden metal gold silver small large kids women men "
    "cheap gift summer winter sport running home kitchen garden toy book"
).split()


def _vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = ["##" + c for c in string.ascii_lowercase + string.digits]
    return specials + chars + pieces + _WORDS


def _text_config(vocab_size: int, full_size: bool = False) -> dict:
    """BERT config: tiny (1 layer), or bge-base-en-v1.5's sizes for benchmarks."""
    return {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": 768,
        "num_hidden_layers": 12 if full_size else 1, "num_attention_heads": 12,
        "intermediate_size": 3072 if full_size else 256,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "vocab_size": 30522 if full_size else vocab_size,
    }


def _write_text_model(folder: Path, full_size: bool) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = _vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = _text_config(len(vocab), full_size)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer = {
        "tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "cls_token": "[CLS]", "mask_token": "[MASK]",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer, indent=2))
    return config


def _random_like(name: str, tensor: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(tensor.shape, generator=gen, dtype=torch.float32)
    module = name.rsplit(".", 2)[-2].lower()  # LayerNorm, norm1, inner_attn_ln, ffn_ln, ...
    if name.endswith("weight") and ("norm" in module or module.endswith("_ln")):
        return 1.0 + 0.1 * noise
    return 0.05 * noise


def random_official_state(text_config: dict, vision: EvaVisionConfig, seed: int) -> dict:
    """A seeded random state_dict with exactly the official Visualized_BGE keys."""
    from transformers import BertConfig

    from deployments.embedder.checkpoint import _PREFIXES
    from deployments.embedder.model import VisualizedBGE

    model = VisualizedBGE(BertConfig(**text_config), vision)
    ours = {k: v for k, v in model.state_dict().items() if not k.endswith(("position_ids", "token_type_ids"))}
    back = {target: prefix for prefix, target in _PREFIXES.items()}
    state: dict[str, torch.Tensor] = {}
    gen = torch.Generator().manual_seed(seed)
    for key in sorted(ours):
        prefix = next(t for t in back if key.startswith(t))
        state[back[prefix] + key[len(prefix):]] = _random_like(key, ours[key], gen)
    hidden, width = text_config["hidden_size"], vision.width
    extra = {
        "bge_pooler.dense.weight": (hidden, hidden), "bge_pooler.dense.bias": (hidden,),
        "model_visual.logit_scale": (),
        "model_visual.visual.norm.weight": (width,), "model_visual.visual.norm.bias": (width,),
        "model_visual.visual.head.weight": (vision.embed_dim, width),
        "model_visual.visual.head.bias": (vision.embed_dim,),
    }
    for key, shape in extra.items():
        state[key] = 0.05 * torch.randn(shape, generator=gen)
    cos, sin = rope_tables(vision)
    for where in ["model_visual.visual.rope"] + [
        f"model_visual.visual.blocks.{i}.attn.rope" for i in range(vision.layers)
    ]:
        state[f"{where}.freqs_cos"], state[f"{where}.freqs_sin"] = cos.clone(), sin.clone()
    return state


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """A content hash of a state_dict (names, shapes, values), independent of file format."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to(torch.float32).contiguous()
        digest.update(key.encode() + str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def write_tiny_model(folder: str | Path, seed: int = 0, full_size: bool = False) -> dict[str, str]:
    """Write a random-weight model; returns the settings (env values) that load it.

    full_size: the real architecture (bge-base + EVA02-CLIP-B-16, 196M parameters) for
    benchmarks; its tokenizer is still the tiny vocabulary.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text_config = _write_text_model(folder / TEXT_DIR, full_size)
    vision = EVA02_CLIP_B_16 if full_size else TINY_VISION
    (folder / VISION_JSON).write_text(json.dumps(vision.to_eva_clip_json("eva-clip-b-16-X"), indent=2))
    state = random_official_state(text_config, vision, seed)
    torch.save(state, folder / CHECKPOINT_NAME)
    return {
        "PARDUS_EMBEDDER__CHECKPOINT": str((folder / CHECKPOINT_NAME).resolve()),
        "PARDUS_EMBEDDER__TEXT_MODEL": str((folder / TEXT_DIR).resolve()),
    }
