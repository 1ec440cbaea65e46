"""Visualized BGE as a torch module: text, image and image+text into one L2-normalised space."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PretrainedConfig
from transformers.masking_utils import create_bidirectional_mask

from pardus.deployments.embedder.eva import EvaVisionConfig, EvaVisionTower


class VisualizedBGE(nn.Module):
    """BGE text encoder (BERT or XLM-R) + EVA02 vision tower + a linear bridge.

    Image+text: the patch tokens (no CLS) go through `visual_proj`, get BGE position
    embeddings 1..P and BGE's LayerNorm, and sit between BGE's [CLS] and the text tokens; the
    BGE encoder runs over [CLS] + image + text[1:] and the [CLS] state is the embedding.
    An image alone is an image with empty text. Text alone is plain BGE.
    """

    def __init__(self, text_config: PretrainedConfig, vision_config: EvaVisionConfig):
        super().__init__()
        text_config._attn_implementation = "sdpa"
        self.text = AutoModel.from_config(text_config, attn_implementation="sdpa")
        self.text.pooler = None  # BGE pools the [CLS] state; the pooler weights are unused
        self.vision = EvaVisionTower(vision_config)
        hidden = text_config.hidden_size
        if vision_config.width != hidden:
            raise ValueError(
                f"vision width {vision_config.width} must equal the text hidden size {hidden}"
            )
        self.visual_proj = nn.Linear(vision_config.width, hidden)

    @property
    def max_positions(self) -> int:
        return self.text.config.max_position_embeddings

    @property
    def image_tokens(self) -> int:
        return self.vision.config.num_patches

    def _encode(self, embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = create_bidirectional_mask(
            config=self.text.config, inputs_embeds=embeddings, attention_mask=attention_mask
        )
        hidden = self.text.encoder(embeddings, attention_mask=mask)[0]
        return F.normalize(hidden[:, 0].float(), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embeddings = self.text.embeddings(
            input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids)
        )
        return self._encode(embeddings, attention_mask)

    def image_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patch tokens projected into BGE's input space, with positions 1..P and LayerNorm."""
        tokens = self.visual_proj(self.vision(pixels)[:, 1:])
        positions = torch.arange(1, 1 + tokens.shape[1], device=tokens.device)
        tokens = tokens + self.text.embeddings.position_embeddings(positions)
        return self.text.embeddings.LayerNorm(tokens)

    def encode_multimodal(
        self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        return self.encode_with_image(self.image_embeddings(pixels), input_ids, attention_mask)

    def encode_with_image(
        self, image: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Image tokens (image_embeddings) + text through BGE: the vision tower's work can be
        shared by several texts of the same picture."""
        batch, image_len = image.shape[:2]
        text_len = input_ids.shape[1]
        if image_len + text_len > self.max_positions:
            raise ValueError(
                f"{image_len} image + {text_len} text tokens exceed {self.max_positions} positions"
            )
        device = input_ids.device
        positions = torch.cat(
            (
                torch.zeros(1, dtype=torch.long, device=device),
                torch.arange(1 + image_len, image_len + text_len, device=device),
            )
        ).unsqueeze(0)
        text = self.text.embeddings(
            input_ids=input_ids,
            position_ids=positions,
            token_type_ids=torch.zeros_like(input_ids),
        )
        sequence = torch.cat((text[:, :1], image.to(text.dtype), text[:, 1:]), dim=1)
        mask = torch.cat(
            (torch.ones(batch, image_len, dtype=attention_mask.dtype, device=device),
             attention_mask),
            dim=1,
        )
        return self._encode(sequence, mask)
