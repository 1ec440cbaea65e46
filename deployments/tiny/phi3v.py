"""Write a tiny random-weight Phi-3-Vision folder in the official checkpoint format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import tokenizers as tk
import torch
from safetensors.torch import save_file

from pardus.deployments.tiny.phi3v_processor import MAX_IMAGES  # <|image_N|> are single tokens

VOCAB_SIZE = 32064  # Phi-3-Vision's embedding rows
IMAGE_TOKEN_ID = 32044  # "<|image|>": vLLM's phi3v.py hard-codes it as the image feature slot
CLIP_WIDTH, CLIP_MLP, CLIP_PATCH, CLIP_SIDE = 1024, 4096, 14, 336  # ViT-L/14-336, fixed in vLLM
CLIP_LAYERS = 1  # img_processor.layer_idx 0: vLLM builds one CLIP layer
TEXT = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 2}  # head_dim 64 (CPU attn: 32, 64, 80..)
DEFAULT_NUM_CROPS = 1  # one 336 px crop + the global view: 313 image tokens per image
CHAT_TEMPLATE = (  # Phi-3 style over plain-string content; "<|image_1|>" placeholders sit inline
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}"
    "{{ '<|assistant|>\n' }}{% endif %}"
)
_CORPUS = (
    "a an the this that with for and or of in on to is are be it as at by from my new red blue "
    "green black white pink grey gold silver phone case leopard cat dog shoe shoes dress shirt bag "
    "watch lamp chair table cup mug print pattern striped leather cotton wooden metal small large "
    "kids women men cheap gift summer winter sport running home kitchen garden toy book image "
    "picture photo query candidate rank ranking reason best match relevant product item user "
    "assistant system describe which show looks like because colour style size true false null"
)


def _added_tokens() -> list[str]:
    """Ids 32000..32063 as Phi-3 lays them out: chat tokens at their ids, <|image|> at 32044."""
    tokens = [f"<|placeholder{i}|>" for i in range(VOCAB_SIZE - 32000)]
    fixed = {0: "<|endoftext|>", 1: "<|assistant|>", 6: "<|system|>", 7: "<|end|>",
             10: "<|user|>", IMAGE_TOKEN_ID - 32000: "<|image|>"}
    fixed.update({10 + i: f"<|image_{i}|>" for i in range(1, MAX_IMAGES + 1)})
    for offset, token in fixed.items():
        tokens[offset] = token
    return tokens


SPECIAL_TOKEN_IDS = {"<unk>": 0, "<s>": 1, "</s>": 2} | {
    token: 32000 + i for i, token in enumerate(_added_tokens())}


def _corpus() -> list[str]:
    """Deterministic training text for the byte-level BPE: words, JSON, digits."""
    words = _CORPUS.split()
    lines = [" ".join(words[i:i + 9]) for i in range(0, len(words), 3)]
    lines += [w.capitalize() + "." for w in words]
    lines += [json.dumps({"ranking": [i % 9 + 1, i * 7 % 9 + 1], "reason": words[i]})
              for i in range(0, len(words), 5)]
    return (lines + [" ".join(str(n) for n in range(k, k + 20)) for k in range(0, 200, 20)]) * 3


def _tokenizer_json() -> str:
    """Byte-level BPE (no unknown text) padded to 32000 base ids, plus Phi-3's added tokens."""
    tokenizer = tk.Tokenizer(tk.models.BPE())
    tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=1500, min_frequency=2, show_progress=False,
                                     special_tokens=["<unk>", "<s>", "</s>"],
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    spec = json.loads(tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    for i in range(len(vocab), 32000):  # unreachable fillers keep the real vocabulary's id layout
        vocab[f"<|reserved_{i}|>"] = i
    tokenizer = tk.Tokenizer.from_str(json.dumps(spec))
    tokenizer.add_special_tokens([tk.AddedToken(t, special=True, normalized=False)
                                  for t in ["<unk>", "<s>", "</s>", *_added_tokens()]])
    tokenizer.post_processor = tk.processors.TemplateProcessing(  # Llama-style: BOS in front
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    for token, token_id in SPECIAL_TOKEN_IDS.items():
        if tokenizer.token_to_id(token) != token_id:
            raise RuntimeError(f"tokenizer layout broken at {token}")
    return tokenizer.to_str()


# microsoft/Phi-3-vision-128k-instruct's sizes, for throughput runs with load_format="dummy".
FULL_TEXT = {"hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32}
FULL_CLIP_LAYER_IDX = -2  # vLLM builds 23 of CLIP ViT-L/14-336's 24 layers, as for the real model


def _config(text: dict[str, int] = TEXT, layer_idx: int = CLIP_LAYERS - 1,
            dtype: str = "float32") -> dict[str, Any]:
    rotary_pairs = text["hidden_size"] // text["num_attention_heads"] // 2
    return {
        "architectures": ["Phi3VForCausalLM"], "model_type": "phi3", **text,
        "vocab_size": VOCAB_SIZE, "hidden_act": "silu", "rms_norm_eps": 1e-5,
        "initializer_range": 0.02, "attention_dropout": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0,
        "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
        "rope_theta": 10000.0, "sliding_window": None,
        "rope_scaling": {"type": "longrope",  # Phi-3-128k's "su" scaling: a factor per rotary pair
                         "short_factor": [1.0 + 0.05 * i for i in range(rotary_pairs)],
                         "long_factor": [1.0 + 2.0 * i for i in range(rotary_pairs)]},
        "bos_token_id": 1, "eos_token_id": 32000, "pad_token_id": 32000,
        "tie_word_embeddings": False, "torch_dtype": dtype, "use_cache": True,
        "img_processor": {"name": "clip_vision_model", "image_dim_out": CLIP_WIDTH,
                          "model_name": "openai/clip-vit-large-patch14-336",
                          "num_img_tokens": 144, "layer_idx": layer_idx,
                          "type_feature": "patch"},
        "embd_layer": {"embedding_cls": "image", "projection_cls": "mlp", "use_hd_transform": True,
                       "with_learnable_separator": True, "hd_transform_order": "sub_glb"},
    }


def _state_dict(config: dict[str, Any], seed: int) -> dict[str, Any]:
    """Random weights under the parameter names of microsoft/Phi-3-vision-128k-instruct."""
    gen = torch.Generator().manual_seed(seed)
    h, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    head_dim = h // config["num_attention_heads"]
    qkv = (config["num_attention_heads"] + 2 * config["num_key_value_heads"]) * head_dim
    weights: dict[str, Any] = {}

    def rand(name: str, *shape: int) -> None:
        weights[name] = torch.randn(*shape, generator=gen) * 0.02

    def linear(name: str, out_dim: int, in_dim: int, bias: bool = True) -> None:
        rand(f"{name}.weight", out_dim, in_dim)
        if bias:
            rand(f"{name}.bias", out_dim)

    def norm(name: str, width: int, bias: bool = True) -> None:
        weights[f"{name}.weight"] = torch.ones(width)
        if bias:
            weights[f"{name}.bias"] = torch.zeros(width)

    rand("model.embed_tokens.weight", vocab, h)
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        linear(p + "self_attn.qkv_proj", qkv, h, bias=False)  # Phi-3 stores q, k, v fused
        linear(p + "self_attn.o_proj", h, h, bias=False)
        linear(p + "mlp.gate_up_proj", 2 * inter, h, bias=False)  # and gate, up fused
        linear(p + "mlp.down_proj", h, inter, bias=False)
        norm(p + "input_layernorm", h, bias=False)
        norm(p + "post_attention_layernorm", h, bias=False)
    norm("model.norm", h, bias=False)
    rand("lm_head.weight", vocab, h)

    v = "model.vision_embed_tokens."
    rand(v + "glb_GN", 1, 1, 4 * CLIP_WIDTH)  # separator before the global view
    rand(v + "sub_GN", 1, 1, 1, 4 * CLIP_WIDTH)  # end-of-row separator
    linear(v + "img_projection.0", h, 4 * CLIP_WIDTH)  # 2x2-merged patches -> GELU -> Linear
    linear(v + "img_projection.2", h, h)
    c = v + "img_processor.vision_model."
    rand(c + "embeddings.class_embedding", CLIP_WIDTH)
    rand(c + "embeddings.patch_embedding.weight", CLIP_WIDTH, 3, CLIP_PATCH, CLIP_PATCH)
    rand(c + "embeddings.position_embedding.weight", (CLIP_SIDE // CLIP_PATCH) ** 2 + 1, CLIP_WIDTH)
    norm(c + "pre_layrnorm", CLIP_WIDTH)  # sic: the checkpoint spells it "layrnorm"
    for j in range(CLIP_LAYERS):
        p = f"{c}encoder.layers.{j}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            linear(f"{p}self_attn.{proj}", CLIP_WIDTH, CLIP_WIDTH)
        norm(p + "layer_norm1", CLIP_WIDTH)
        norm(p + "layer_norm2", CLIP_WIDTH)
        linear(p + "mlp.fc1", CLIP_MLP, CLIP_WIDTH)
        linear(p + "mlp.fc2", CLIP_WIDTH, CLIP_MLP)
    norm(c + "post_layernorm", CLIP_WIDTH)  # unused (Phi-3-V reads a hidden layer); vLLM skips it
    return {name: t.to(torch.float32).contiguous() for name, t in weights.items()}


def write_tiny_phi3v(folder: str | Path, seed: int = 0, full_size: bool = False) -> Path:
    """Write config, safetensors weights, offline tokenizer and processor code; return folder.

    full_size: the real Phi-3-Vision's sizes (4.2 B parameters) and no weights file, for
    `load_format="dummy"` throughput runs on a GPU (the rope factors are placeholders: the
    compute is the real model's, the numbers are not).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if full_size:
        config = _config(FULL_TEXT, FULL_CLIP_LAYER_IDX, "bfloat16")
    else:

        config = _config()
        weights = _state_dict(config, seed)
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    auto_map = {"AutoProcessor": "processing_pardus_phi3v.PardusPhi3VProcessor",
                "AutoImageProcessor": "processing_pardus_phi3v.PardusPhi3VImageProcessor"}
    specials = {"bos_token": "<s>", "eos_token": "<|endoftext|>", "unk_token": "<unk>",
                "pad_token": "<|endoftext|>"}
    files: dict[str, Any] = {
        "config.json": config,
        "generation_config.json": {"bos_token_id": 1, "eos_token_id": [32000, 32001, 32007],
                                   "pad_token_id": 32000},
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast", **specials, "add_bos_token": True,
            "add_eos_token": False, "clean_up_tokenization_spaces": False,
            "model_max_length": 131072, "padding_side": "left", "chat_template": CHAT_TEMPLATE},
        "special_tokens_map.json": specials,
        "preprocessor_config.json": {
            "image_processor_type": "PardusPhi3VImageProcessor", "auto_map": auto_map,
            "processor_class": "PardusPhi3VProcessor", "num_crops": DEFAULT_NUM_CROPS,
            "num_img_tokens": 144, "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711]},
        "processor_config.json": {"processor_class": "PardusPhi3VProcessor", "auto_map": auto_map},
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2) + "\n")
    (folder / "tokenizer.json").write_text(_tokenizer_json())
    # The processor is our own module, copied in: transformers loads it as remote code.
    shutil.copyfile(Path(__file__).with_name("phi3v_processor.py"),
                    folder / "processing_pardus_phi3v.py")
    return folder
