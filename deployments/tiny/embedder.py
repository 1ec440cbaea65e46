"""Write a tiny random-weight Visualized BGE in the official file formats, for tests and demos.

The folder looks like real weights laid out locally (base variant; m3 alike with
Visualized_m3.pth, bge-m3/ holding an XLM-R config and a sentencepiece model):
    DIR/Visualized_base_en_v1.5.pth   official state_dict key layout (all weights)
    DIR/bge-base-en-v1.5/             BERT config.json, vocab.txt, tokenizer_config.json
    DIR/eva_vision.json               EVA-CLIP config of the (tiny) vision tower
Text widths stay 768 (base) and 1024 (m3): the official code hard-codes its bridge to them.
"""

from __future__ import annotations

import hashlib
import io
import json
import string
from pathlib import Path

import sentencepiece as spm
import torch
from transformers import AutoConfig, AutoTokenizer

from pardus.deployments.embedder.checkpoint import _PREFIXES, VISION_JSON
from pardus.deployments.embedder.eva import EVA02_CLIP_B_16, EvaVisionConfig, rope_tables
from pardus.deployments.embedder.model import VisualizedBGE

TINY_VISION = EvaVisionConfig(
    image_size=64, patch_size=16, width=768, layers=2, head_width=64, mlp_ratio=0.5,
    pt_hw_seq_len=16, intp_freq=True, embed_dim=32,
)
TINY_VISION_M3 = EvaVisionConfig(  # EVA02-CLIP-L-14's shape, shrunk: patch 14, width 1024
    image_size=56, patch_size=14, width=1024, layers=2, head_width=64, mlp_ratio=0.25,
    pt_hw_seq_len=16, intp_freq=True, embed_dim=32,
)
CHECKPOINT_NAME = "Visualized_base_en_v1.5.pth"
TEXT_DIR = "bge-base-en-v1.5"
M3_CHECKPOINT_NAME = "Visualized_m3.pth"
M3_TEXT_DIR = "bge-m3"

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


_MULTILINGUAL = (
    "ein roter Becher mit Leopardenmuster une coque de téléphone avec ce motif "
    "una camiseta azul 一个 带 这个 图案 的 手机壳 красная сумка"
)


def _write_xlmr_model(folder: Path) -> dict:
    """XLM-R config + a sentencepiece model trained here on a few sentences (deterministic)."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = [" ".join(_WORDS[i : i + 8]) for i in range(0, len(_WORDS), 4)] * 3
    corpus += _MULTILINGUAL.split(" ") * 3
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=120,
        model_type="unigram", character_coverage=1.0, num_threads=1, minloglevel=2,
    )
    (folder / "sentencepiece.bpe.model").write_bytes(model.getvalue())
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
               "cls_token": "<s>", "pad_token": "<pad>", "mask_token": "<mask>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512, **special}, indent=2
    ))
    config = {
        "architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta", "hidden_size": 1024,
        "num_hidden_layers": 1, "num_attention_heads": 16, "intermediate_size": 256,
        "hidden_act": "gelu", "max_position_embeddings": 514, "type_vocab_size": 1,
        "layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
        "vocab_size": 8,  # replaced below by the tokenizer's size
    }
    (folder / "config.json").write_text(json.dumps(config))
    config["vocab_size"] = len(AutoTokenizer.from_pretrained(folder))
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return config


def _random_like(name: str, tensor: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(tensor.shape, generator=gen, dtype=torch.float32)
    module = name.rsplit(".", 2)[-2].lower()  # LayerNorm, norm1, inner_attn_ln, ffn_ln, ...
    if name.endswith("weight") and ("norm" in module or module.endswith("_ln")):
        return 1.0 + 0.1 * noise
    return 0.05 * noise


def random_official_state(text_config: dict, vision: EvaVisionConfig, seed: int) -> dict:
    """A seeded random state_dict with exactly the official Visualized_BGE keys."""
    config = AutoConfig.for_model(**text_config)
    model = VisualizedBGE(config, vision)
    ours = {k: v for k, v in model.state_dict().items()
            if not k.endswith(("position_ids", "token_type_ids"))}
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


def write_tiny_model(
    folder: str | Path, seed: int = 0, full_size: bool = False, variant: str = "base"
) -> dict[str, str]:
    """Write a random-weight model; returns the settings (env values) that load it.

    variant: "base" (bge-base-en-v1.5 + EVA02-CLIP-B-16) or "m3" (bge-m3 + EVA02-CLIP-L-14).
    full_size (base only): the real architecture's sizes (196M parameters) for benchmarks;
    its tokenizer is still the tiny vocabulary.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if variant == "m3":
        if full_size:
            raise ValueError("full-size random models are written for the base variant only")
        checkpoint, text_dir, vision = M3_CHECKPOINT_NAME, M3_TEXT_DIR, TINY_VISION_M3
        text_config = _write_xlmr_model(folder / text_dir)
    elif variant == "base":
        checkpoint, text_dir = CHECKPOINT_NAME, TEXT_DIR
        vision = EVA02_CLIP_B_16 if full_size else TINY_VISION
        text_config = _write_text_model(folder / text_dir, full_size)
    else:
        raise ValueError(f"variant must be 'base' or 'm3', not {variant!r}")
    (folder / VISION_JSON).write_text(json.dumps(vision.to_eva_clip_json(), indent=2))
    torch.save(random_official_state(text_config, vision, seed), folder / checkpoint)
    return {
        "PARDUS_EMBEDDER__CHECKPOINT": str((folder / checkpoint).resolve()),
        "PARDUS_EMBEDDER__TEXT_MODEL": str((folder / text_dir).resolve()),
    }
