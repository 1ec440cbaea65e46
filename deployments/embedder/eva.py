"""EVA02-CLIP vision tower (2D RoPE, SwiGLU with sub-LN) as Visualized BGE uses it, on SDPA.

Parameter names follow the official checkpoint (`model_visual.visual.*`), so weights load by
stripping a prefix. Only the EVA02 variant that BGE ships is supported: rope, naive SwiGLU,
sub-LN, q/v biases, no layer scale, patch dropout ignored (inference only).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class EvaVisionConfig:
    image_size: int = 224
    patch_size: int = 16
    width: int = 768
    layers: int = 12
    head_width: int = 64
    mlp_ratio: float = 2.6667
    pt_hw_seq_len: int = 16
    intp_freq: bool = True
    embed_dim: int = 512  # width of the CLIP head: in the checkpoint, unused for embeddings

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    @property
    def heads(self) -> int:
        return self.width // self.head_width

    @property
    def mlp_hidden(self) -> int:
        return int(self.width * self.mlp_ratio)

    @classmethod
    def from_eva_clip_json(cls, data: dict) -> "EvaVisionConfig":
        """Read an EVA-CLIP model config ({"embed_dim", "vision_cfg": {...}})."""
        vision = data.get("vision_cfg", data)
        unsupported = [
            key
            for key, want in (("rope", True), ("naiveswiglu", True), ("subln", True))
            if vision.get(key, False) != want
        ]
        if vision.get("ls_init_value") or vision.get("postnorm") or unsupported:
            raise ValueError(
                "only EVA02 vision towers (rope, naiveswiglu, subln, no layer scale, no postnorm) "
                f"are supported; this config differs in {unsupported or ['ls_init_value/postnorm']}"
            )
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in vision.items() if k in known}
        if "embed_dim" in data:
            values["embed_dim"] = data["embed_dim"]
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> "EvaVisionConfig":
        return cls.from_eva_clip_json(json.loads(Path(path).read_text()))

    def to_eva_clip_json(self, name: str = "eva-clip-custom") -> dict:
        vision = {k: v for k, v in asdict(self).items() if k != "embed_dim"}
        vision.update(
            eva_model_name=name, drop_path_rate=0, rope=True, naiveswiglu=True, subln=True,
            xattn=True, fusedLN=True, patch_dropout=0.5,
        )
        text = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}
        return {"embed_dim": self.embed_dim, "vision_cfg": vision, "text_cfg": text}


# The two towers Visualized BGE ships with (EVA-CLIP model configs of the same names).
EVA02_CLIP_B_16 = EvaVisionConfig()
EVA02_CLIP_L_14 = EvaVisionConfig(patch_size=14, width=1024, layers=24, embed_dim=768)
BUILTIN_CONFIGS = {"EVA02-CLIP-B-16": EVA02_CLIP_B_16, "EVA02-CLIP-L-14": EVA02_CLIP_L_14}


def rope_tables(config: EvaVisionConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (num_patches, head_width) of EVA's 2D rotary embedding.

    The first half of each head rotates with the patch row, the second with the column; the
    grid is rescaled to the pre-training grid (pt_hw_seq_len) when intp_freq is set.
    """
    dim = config.head_width // 2
    freqs = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    grid = config.grid if config.intp_freq else config.pt_hw_seq_len
    t = torch.arange(grid) / grid * config.pt_hw_seq_len
    angles = torch.einsum("i,f->if", t, freqs).repeat_interleave(2, dim=-1)  # (grid, dim)
    rows = angles[:, None, :].expand(grid, grid, dim)
    cols = angles[None, :, :].expand(grid, grid, dim)
    table = torch.cat((rows, cols), dim=-1).reshape(-1, 2 * dim)
    return table.cos(), table.sin()


def _rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...): rotation of interleaved pairs."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


class EvaAttention(nn.Module):
    def __init__(self, config: EvaVisionConfig):
        super().__init__()
        width, self.heads = config.width, config.heads
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.inner_attn_ln = nn.LayerNorm(width, eps=1e-6)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, tokens, self.heads, -1).transpose(1, 2)

        q = heads(F.linear(x, self.q_proj.weight, self.q_bias))
        k = heads(F.linear(x, self.k_proj.weight))
        v = heads(F.linear(x, self.v_proj.weight, self.v_bias))
        # RoPE on the patch tokens only; the CLS token (index 0) keeps its vector.
        q = torch.cat((q[:, :, :1], q[:, :, 1:] * cos + _rotate_pairs(q[:, :, 1:]) * sin), dim=2)
        k = torch.cat((k[:, :, :1], k[:, :, 1:] * cos + _rotate_pairs(k[:, :, 1:]) * sin), dim=2)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(batch, tokens, -1)
        return self.proj(self.inner_attn_ln(out))


class SwiGLU(nn.Module):
    def __init__(self, config: EvaVisionConfig):
        super().__init__()
        width, hidden = config.width, config.mlp_hidden
        self.w1 = nn.Linear(width, hidden)
        self.w2 = nn.Linear(width, hidden)
        self.ffn_ln = nn.LayerNorm(hidden, eps=1e-6)
        self.w3 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(self.ffn_ln(F.silu(self.w1(x)) * self.w2(x)))


class EvaBlock(nn.Module):
    def __init__(self, config: EvaVisionConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.width, eps=1e-6)
        self.attn = EvaAttention(config)
        self.norm2 = nn.LayerNorm(config.width, eps=1e-6)
        self.mlp = SwiGLU(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, config: EvaVisionConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, config.width, config.patch_size, stride=config.patch_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.proj(pixels).flatten(2).transpose(1, 2)


class EvaVisionTower(nn.Module):
    """pixels (B, 3, S, S) -> all tokens (B, 1 + patches, width), before the final norm."""

    def __init__(self, config: EvaVisionConfig):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, config.width))
        self.blocks = nn.ModuleList(EvaBlock(config) for _ in range(config.layers))
        cos, sin = rope_tables(config)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if pixels.shape[-2:] != (size, size):
            raise ValueError(f"expected {size}x{size} pixels, got {tuple(pixels.shape[-2:])}")
        x = self.patch_embed(pixels)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        cos, sin = self.rope_cos.to(x.dtype), self.rope_sin.to(x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin)
        return x
