"""Find and load the official Visualized BGE checkpoint (local path or the hub), unchanged."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from huggingface_hub import constants, hf_hub_download, snapshot_download
from transformers import AutoConfig

from pardus.deployments.embedder.eva import BUILTIN_CONFIGS, EvaVisionConfig
from pardus.deployments.embedder.model import VisualizedBGE
from pardus.deployments.settings import EmbedderSettings

log = logging.getLogger(__name__)

VISION_JSON = "eva_vision.json"  # beside a checkpoint: a non-standard tower (tiny test models)

# Official key prefix -> our module path. Keys not listed here are refused.
_PREFIXES = {
    "bge_embeddings.": "text.embeddings.",
    "bge_encoder.": "text.encoder.",
    "model_visual.visual.": "vision.",
    "visual_proj.": "visual_proj.",
}
# Present in the official file but not used to embed (CLIP head, final norm, pooler, buffers).
_UNUSED = (
    "bge_pooler.",
    "model_visual.logit_scale",
    "model_visual.visual.head.",
    "model_visual.visual.norm.",
    "model_visual.visual.rope.",
    ".attn.rope.freqs_",
    "bge_embeddings.position_ids",
    "bge_embeddings.token_type_ids",
)

HOW_TO_GET_WEIGHTS = (
    "Download the weights where you have internet (hf download BAAI/bge-visualized "
    "Visualized_base_en_v1.5.pth; hf download BAAI/bge-base-en-v1.5) and point "
    "PARDUS_EMBEDDER__CHECKPOINT and PARDUS_EMBEDDER__TEXT_MODEL at the files, or run "
    "`pardus models tiny DIR` for a tiny random-weight model (its rankings are meaningless)."
)


class WeightsNotFound(FileNotFoundError):
    """The weights are neither on disk nor reachable on the hub; the message says what to do."""


@dataclass(frozen=True)
class ModelFiles:
    checkpoint: Path
    text_model: Path
    vision: EvaVisionConfig


def unreachable_hub() -> str | None:
    """The hub's host name when it does not resolve (checked at once: huggingface_hub would
    retry for ~25 s), else None."""
    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
        return None
    except OSError:
        return host


def _check_hub(what: str) -> None:
    """Fail at once when the hub is unreachable."""
    if constants.HF_HUB_OFFLINE:
        return  # the hub client then answers from its local cache only
    host = unreachable_hub()
    if host is not None:
        raise WeightsNotFound(
            f"{what} is not on this machine and the hub ({host}) is unreachable. "
            f"{HOW_TO_GET_WEIGHTS}"
        )


def _hub_file(repo_and_file: str) -> Path:
    parts = repo_and_file.split("/")
    if len(parts) < 3:
        raise WeightsNotFound(f"checkpoint {repo_and_file!r} not found. {HOW_TO_GET_WEIGHTS}")

    _check_hub(f"checkpoint {repo_and_file!r}")

    try:
        return Path(hf_hub_download("/".join(parts[:2]), "/".join(parts[2:])))
    except Exception as exc:
        raise WeightsNotFound(
            f"checkpoint {repo_and_file!r} is not a local file and the hub did not give it "
            f"({type(exc).__name__}). {HOW_TO_GET_WEIGHTS}"
        ) from None


def _hub_folder(repo_id: str) -> Path:
    _check_hub(f"text model {repo_id!r}")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.txt", "*.model"]))
    except Exception as exc:
        raise WeightsNotFound(
            f"text model {repo_id!r} is not a local folder and the hub did not give it "
            f"({type(exc).__name__}). {HOW_TO_GET_WEIGHTS}"
        ) from None


def _vision_config(choice: str | None, checkpoint: Path, text_model_type: str) -> EvaVisionConfig:
    if choice is None:
        beside = checkpoint.parent / VISION_JSON
        if beside.is_file():
            return EvaVisionConfig.from_file(beside)
        choice = "EVA02-CLIP-L-14" if text_model_type == "xlm-roberta" else "EVA02-CLIP-B-16"
    if choice in BUILTIN_CONFIGS:
        return BUILTIN_CONFIGS[choice]
    if Path(choice).is_file():
        return EvaVisionConfig.from_file(choice)
    raise ValueError(
        f"embedder.vision_config {choice!r} is neither {' nor '.join(BUILTIN_CONFIGS)} "
        "nor an existing EVA-CLIP JSON file"
    )


def _text_model(settings: EmbedderSettings) -> Path:
    text_model = Path(settings.text_model).expanduser()
    if not (text_model / "config.json").is_file():
        if text_model.exists() or settings.text_model.startswith((".", "/", "~")):
            raise WeightsNotFound(
                f"text model folder {text_model} has no config.json. {HOW_TO_GET_WEIGHTS}"
            )
        text_model = _hub_folder(settings.text_model)
    return text_model


def embedding_dim(settings: EmbedderSettings) -> int:
    """The vector size of the configured model: `dim` when set, else the text model's hidden
    size from its config.json (a local read; the hub only when the folder is not on disk)."""
    if settings.dim is not None:
        return settings.dim

    return int(AutoConfig.from_pretrained(_text_model(settings)).hidden_size)


def resolve(settings: EmbedderSettings) -> ModelFiles:
    """Turn settings into local files, downloading from the hub only when not on disk."""
    checkpoint = Path(settings.checkpoint).expanduser()
    if not checkpoint.is_file():
        checkpoint = _hub_file(settings.checkpoint)
    text_model = _text_model(settings)
    model_type = AutoConfig.from_pretrained(text_model).model_type
    vision = _vision_config(settings.vision_config, checkpoint, model_type)
    return ModelFiles(checkpoint, text_model, vision)


def official_to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename official keys to our module paths, dropping the unused ones."""
    ours, unknown = {}, []
    for key, value in state.items():
        if any(key.startswith(u) or u in key for u in _UNUSED):
            continue
        for prefix, target in _PREFIXES.items():
            if key.startswith(prefix):
                ours[target + key[len(prefix):]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"checkpoint has keys Visualized BGE does not: {unknown[:5]} ...")
    return ours


def load_model(files: ModelFiles, device: torch.device, dtype: torch.dtype) -> VisualizedBGE:
    """Build the architecture from config and fill every weight from the .pth."""
    text_config = AutoConfig.from_pretrained(files.text_model)
    model = VisualizedBGE(text_config, files.vision)
    state = torch.load(files.checkpoint, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    misfit = (f"{files.checkpoint} does not fit the model built from {files.text_model} and "
              f"{files.vision}")
    hint = (
        "(pair Visualized_base_en_v1.5.pth with bge-base-en-v1.5 and EVA02-CLIP-B-16, "
        "Visualized_m3.pth with bge-m3 and EVA02-CLIP-L-14)"
    )
    try:
        result = model.load_state_dict(official_to_ours(state), strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = str(exc).splitlines()[1:4]
        raise ValueError(f"{misfit}: {' '.join(d.strip() for d in detail)} {hint}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{misfit}: missing {result.missing_keys[:5]}, unexpected "
            f"{result.unexpected_keys[:5]} {hint}"
        )
    log.info("loaded %s (%s, %s)", files.checkpoint.name, device, dtype)
    return model.to(device=device, dtype=dtype).eval()
