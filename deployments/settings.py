"""The one settings object of Pardus: nested sections, env prefix PARDUS_, loaded once."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class EmbedderSettings(BaseModel):
    """Where the Visualized BGE weights come from and how they run."""

    # A local .pth path, or "org/repo/file.pth" on the Hugging Face hub.
    checkpoint: str = "BAAI/bge-visualized/Visualized_base_en_v1.5.pth"
    # A local folder with config.json + tokenizer files, or a hub id.
    text_model: str = "BAAI/bge-base-en-v1.5"
    # "EVA02-CLIP-B-16", "EVA02-CLIP-L-14", a path to an EVA-CLIP JSON config, or None:
    # eva_vision.json beside the checkpoint if present, else chosen by the text model's type.
    vision_config: str | None = None
    device: str = "auto"  # "auto" = cuda when available, else cpu
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    batch_size: int = Field(32, ge=1, le=1024)
    # Images whose header declares more pixels than this are refused before decoding.
    max_image_pixels: int = Field(40_000_000, ge=1)
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1)
    # Threads that decode and preprocess images while the model runs.
    decode_workers: int = Field(2, ge=1, le=64)


class MilvusSettings(BaseModel):
    """The vector store: a local path is Milvus Lite, http(s)://host:port a server."""

    uri: str = "./data/pardus.db"
    token: str = ""
    collection: str = "products"


class RerankerSettings(BaseModel):
    """The vision-language reranker served by vLLM."""

    model: str = "microsoft/Phi-3-vision-128k-instruct"
    enabled: bool = True


class ServingSettings(BaseModel):
    """HTTP front door."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)


class Settings(BaseSettings):
    """Everything configurable, from PARDUS_* environment variables (nested with __)."""

    model_config = SettingsConfigDict(
        env_prefix="PARDUS_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    embedder: EmbedderSettings = EmbedderSettings()
    milvus: MilvusSettings = MilvusSettings()
    reranker: RerankerSettings = RerankerSettings()
    serving: ServingSettings = ServingSettings()

    @field_validator("embedder")
    @classmethod
    def _checkpoint_is_pth(cls, value: EmbedderSettings) -> EmbedderSettings:
        if not value.checkpoint.endswith((".pth", ".pt", ".bin")):
            raise ValueError(
                f"embedder.checkpoint must name a .pth file (got {value.checkpoint!r}); "
                "for example PARDUS_EMBEDDER__CHECKPOINT=/models/Visualized_base_en_v1.5.pth"
            )
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
