"""The one settings object of Pardus: nested sections, env prefix PARDUS_, loaded once."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pardus.deployments.names import Fusion, Mode, StockRule
from pardus.deployments.uris import is_uri


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
    # auto: bf16 on GPU, fp32 on CPU
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(32, ge=1, le=1024)
    # Images whose header declares more pixels than this are refused before decoding.
    max_image_pixels: int = Field(40_000_000, ge=1)
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1)
    # Pixels an image may have once scaled to the model's input on its short side (224 px):
    # a thin strip (5 x 1,000,000) is small on disk but huge scaled; 4000 x 12 still fits.
    max_resized_pixels: int = Field(20_000_000, ge=224 * 224)
    # Threads that decode and preprocess images while the model runs.
    decode_workers: int = Field(2, ge=1, le=64)
    # torch threads on a CPU (Serve replicas and ingest actors); 0 = every core of the node
    # (Ray would cap them at the worker's fractional CPU count, i.e. one thread).
    threads: int = Field(0, ge=0)
    # The vector size. None: read from the text model's config.json (768 for bge-base, 1024
    # for bge-m3). Set it where the model files are not mounted (the Kubernetes ingress).
    dim: int | None = Field(None, ge=1)


class MilvusSettings(BaseModel):
    """The vector store: a local path is Milvus Lite, http(s)://host:port a server or cluster."""

    uri: str = "./data/pardus.db"
    token: SecretStr = SecretStr("")  # "user:password" or an API key; empty = no auth
    # The name the service reads: an alias of the live version (`<collection>__<label>`).
    collection: str = Field("products", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")
    # AUTOINDEX lets the engine choose (HNSW on a server); the embedded core takes FLAT,
    # IVF_FLAT and AUTOINDEX. Index and search parameters per index type, as Milvus takes them.
    index_type: Literal["AUTOINDEX", "HNSW", "FLAT", "IVF_FLAT", "IVF_SQ8", "HNSW_SQ"] = "AUTOINDEX"
    index_params: dict[str, dict[str, int]] = {
        "HNSW": {"M": 16, "efConstruction": 200}, "HNSW_SQ": {"M": 16, "efConstruction": 200},
        "IVF_FLAT": {"nlist": 1024}, "IVF_SQ8": {"nlist": 1024}}
    search_params: dict[str, dict[str, int]] = {
        "HNSW": {"ef": 128}, "HNSW_SQ": {"ef": 128}, "IVF_FLAT": {"nprobe": 32},
        "IVF_SQ8": {"nprobe": 32}}
    # Searches: Session sees this client's own writes at once and costs ~nothing; Strong waits
    # for every write cluster-wide (~200 ms a search on a Milvus 2.3 server, measured).
    consistency_level: Literal["Strong", "Session", "Bounded", "Eventually"] = "Session"
    timeout_s: float = Field(10.0, gt=0)
    # After a lost connection, the next call reconnects; further attempts wait this long.
    reconnect_s: float = Field(1.0, ge=0)
    # Engines without collection aliases (the embedded core): how long a process trusts its
    # lookup of the live version; a promote reaches every reader within this time.
    alias_refresh_s: float = Field(1.0, ge=0)
    # Local paths: share one loopback `milvus-lite server` between processes (Ray workers,
    # Serve replicas). False = open the directory in this process only.
    lite_server: bool = True

    @property
    def is_local(self) -> bool:
        return not is_uri(self.uri)


class IngestSettings(BaseModel):
    """Ray Data ingest: stage sizes and resources (fractional CPUs so reads never starve)."""

    batch_size: int = Field(32, ge=1, le=4096, description="Images per embedding batch.")
    embed_actors: int = Field(1, ge=1, description="Embedder replicas (one model each).")
    embed_num_cpus: float = Field(0.5, gt=0)
    embed_num_gpus: float = Field(0.0, ge=0)
    fetch_actors: int = Field(1, ge=1, description="Read/decode workers.")
    # Pictures indexed per manifest item, the main one first (each is a row of the item).
    max_images: int = Field(4, ge=1, le=8)
    fetch_num_cpus: float = Field(0.25, gt=0)
    write_num_cpus: float = Field(0.1, gt=0)
    write_batch_size: int = Field(256, ge=1)
    allow_http: bool = False  # fetch http(s) image URLs named in manifests
    http_timeout_s: float = Field(10.0, gt=0)  # per picture, the whole download
    # Buckets (`s3://name`, `gs://name`) absolute image references may name besides the
    # source's own; the service reads the pictures with the same rule.
    allow_buckets: list[str] = []
    report: str = "./data/ingest-report.jsonl"


class Weights(BaseModel):
    """How much each route counts in weighted fusion (each route's scores normalised to [0, 1]
    first: cosine (1 + s) / 2, BM25 2·atan(s) / π)."""

    model_config = ConfigDict(extra="forbid")
    dense: float = Field(1.0, ge=0, le=1)
    lexical: float = Field(1.0, ge=0, le=1)


class Boosts(BaseModel):
    """Merchandising on top of relevance (a request may send its own): what products out of
    stock get, and how much popularity counts."""

    model_config = ConfigDict(extra="forbid")
    out_of_stock: StockRule = StockRule.DEMOTE
    out_of_stock_factor: float = Field(0.5, ge=0, le=1, description="demote: their relevance "
                                                                    "times this.")
    popularity: float = Field(0.0, ge=0, le=1, description="How much popularity adds: its "
                                                           "weight against relevance (0-1).")


class RelevanceFloor(BaseModel):
    """The relevance cut-off, per kind of score: a candidate counts (in pages, facet counts
    and sorts) when its score is at least this share of the best candidate's. Cosine below 0
    counts as 0; RRF gives an item found by one route alone at most half of what one found
    first by both gets, hence its lower floor."""

    model_config = ConfigDict(extra="forbid")
    dense: float = Field(0.5, ge=0, le=1)
    lexical: float = Field(0.2, ge=0, le=1)
    rrf: float = Field(0.25, ge=0, le=1)
    weighted: float = Field(0.5, ge=0, le=1)


class SearchSettings(BaseModel):
    """Query plans: which routes a query takes and how Milvus fuses them (deployments/catalogue/
    plans.py). RRF needs no calibration between cosine and BM25 scores; weighted fusion lets a
    route count less, as BM25 does beside a picture in composed queries. Then what a results
    page makes of the candidates (deployments/catalogue/results.py)."""

    mode: Mode = Mode.AUTO
    text_fusion: Fusion = Fusion.RRF
    text_weights: Weights = Weights()
    composed_fusion: Fusion = Fusion.WEIGHTED
    composed_weights: Weights = Weights(dense=1.0, lexical=0.3)
    rrf_k: int = Field(60, ge=1)
    candidates: int = Field(100, ge=1, le=2000)  # hits per route before fusion and grouping
    # Products a search ranks: every page, facet count and sort covers these (the window is
    # fetched whole and cut into pages here; Milvus groups at most 16,384 at once).
    window: int = Field(1000, ge=10, le=5000)
    relevance_floor: RelevanceFloor = RelevanceFloor()
    boosts: Boosts = Boosts()
    # The price facet's ranges: these edges make 0-10, 10-25, ..., 500+ (in serving.currency).
    price_ranges: list[float] = [10, 25, 50, 100, 250, 500]
    facet_values: int = Field(20, ge=1, le=200)  # values a facet lists (the most frequent)

    @field_validator("price_ranges")
    @classmethod
    def _increasing(cls, edges: list[float]) -> list[float]:
        if not edges or any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] <= 0:
            raise ValueError("price_ranges must be positive edges in increasing order, e.g. "
                             "[10, 25, 50, 100]")
        return edges


class RerankerSettings(BaseModel):
    """The vision-language reranker served by vLLM."""

    enabled: bool = True
    model: str = "microsoft/Phi-3-vision-128k-instruct"  # a hub id or a local folder
    prompt_format: str | None = None  # None: chosen from the model name (prompts.REGISTRY)
    # The rerank stage's deadline as the search sees it (queueing for a replica included);
    # past it, the retrieval order is returned, flagged.
    timeout_s: float = Field(20.0, gt=0)
    max_tokens: int = Field(256, ge=16)
    max_candidates: int = Field(16, ge=1, le=64)
    grid_cell: int = Field(224, ge=64, le=672)  # pixels per candidate in the composite
    # "fold": the ranking answer also captions the query image (one call); "separate": a
    # caption call first. Captions are cached by image content either way.
    caption_mode: Literal["fold", "separate"] = "fold"
    caption_max_tokens: int = Field(64, ge=8)
    caption_cache_size: int = Field(1024, ge=0)
    # vLLM engine arguments
    dtype: str = "auto"
    max_model_len: int = Field(8192, ge=256)
    num_crops: int = Field(4, ge=1, le=16)  # Phi-3-Vision HD crops of the composite
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    load_format: str = "auto"  # "dummy": random weights (throughput tests)
    trust_remote_code: bool = True
    enforce_eager: bool = False
    max_num_seqs: int = Field(16, ge=1)
    # CPU only: KV cache size (vLLM otherwise claims 90 % of the machine's memory).
    cpu_kv_cache_gib: int = Field(2, ge=1)


MIN_KEY_LENGTH = 16


class ServingSettings(BaseModel):
    """The HTTP front door: where it listens, who may call it, what it accepts."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # API keys (PARDUS_SERVING__API_KEYS='["key1","key2"]'), 16 characters or more, nothing
    # trimmed (compared byte for byte). With any configured, writes need one; searches and item
    # reads too when search_requires_key.
    # Empty = an open service (local use only: a warning when it listens beyond loopback).
    api_keys: list[SecretStr] = []
    search_requires_key: bool = False
    # False: this service only reads the catalogue (POST/DELETE /v1/items answer 403), as with
    # a read-only Milvus user; catalogue writes then come from ingest.
    item_writes: bool = True
    # Browser origins allowed to call the API from other sites; empty = CORS off.
    cors_origins: list[str] = []
    max_request_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    # The longest wait for the next piece of a request body; past it, 400 incomplete_body
    # (uvicorn would wait for a body shorter than its Content-Length forever).
    body_timeout_s: float = Field(15.0, gt=0, le=600)
    # Hosts whose http(s) image URLs a search may name; empty = no server-side fetching.
    fetch_allow_hosts: list[str] = []
    fetch_timeout_s: float = Field(5.0, gt=0)
    # Where item image references resolve (the ingested catalogue's folder, or an object
    # storage URI); images added through the API are written under <image_root>/uploads.
    image_root: str = "./data/catalogue"
    thumbnail_px: int = Field(256, ge=32, le=1024)
    thumbnail_cache_size: int = Field(512, ge=0)  # thumbnails kept in memory per replica
    thumbnail_max_age_s: int = Field(300, ge=0)  # Cache-Control max-age of thumbnails
    embed_timeout_s: float = Field(30.0, gt=0)
    # Query embeddings kept per ingress replica (by model, text and picture), in MiB; 0 = off.
    # A 768-d vector costs ~3.5 KiB: 64 MiB holds ~18k queries.
    query_cache_mb: float = Field(64, ge=0)
    # Whole search answers kept per ingress replica, keyed by the request and the live
    # catalogue version, for this many seconds; 0 = off. An item changed through another
    # replica (PATCH, POST, DELETE) or by ingest in place shows after at most this long.
    result_cache_s: float = Field(0, ge=0, le=3600)
    result_cache_size: int = Field(4096, ge=1)  # answers kept per replica
    readiness_timeout_s: float = Field(5.0, gt=0)  # each /readyz probe (Milvus, models)
    # How often each ingress replica asks Serve's controller which model deployments have a
    # running replica: a call to one with none fails at once (503, or unreranked results).
    replica_watch_s: float = Field(1.0, gt=0, le=60)
    decode_concurrency: int = Field(2, ge=1, le=64)  # thumbnails an ingress replica makes at once
    retry_after_s: int = Field(5, ge=1)  # told to callers while Milvus or a model is down
    web_page: bool = True  # serve the search page at /
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")  # ISO 4217: the catalogue's prices
    # Signs the cursors of result pages; the same on every replica. Empty: a key derived from
    # the catalogue's name (cursors are then checked for damage, not for forgery, which at
    # worst asks another page of one's own search).
    cursor_secret: SecretStr = SecretStr("")

    @field_validator("api_keys")
    @classmethod
    def _strong_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for number, key in enumerate(keys, start=1):
            value = key.get_secret_value()
            if len(value.strip()) < MIN_KEY_LENGTH:
                raise ValueError(f"API key {number} is empty or shorter than {MIN_KEY_LENGTH} "
                                 "characters: an empty key would open the writes (e.g. "
                                 "`openssl rand -hex 24` makes a good one)")
            if not value.isprintable() or value != value.strip():
                raise ValueError(f"API key {number} has whitespace at an end or a control "
                                 "character (a newline from a file?): keys are compared byte "
                                 "for byte and such a key would match no request; remove it")
        return keys

    def exposure_warning(self) -> str | None:
        """What is wrong with listening on `host` without keys, or None."""
        if self.api_keys or self.host in ("127.0.0.1", "localhost", "::1"):
            return None
        return (f"the service listens on {self.host} with no API keys: anyone who can reach it "
                "may add and delete items; set PARDUS_SERVING__API_KEYS, or listen on 127.0.0.1")


class Settings(BaseSettings):
    """Everything configurable, from PARDUS_* environment variables (nested with __)."""

    model_config = SettingsConfigDict(
        env_prefix="PARDUS_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    embedder: EmbedderSettings = EmbedderSettings()
    milvus: MilvusSettings = MilvusSettings()
    ingest: IngestSettings = IngestSettings()
    search: SearchSettings = SearchSettings()
    reranker: RerankerSettings = RerankerSettings()
    serving: ServingSettings = ServingSettings()
    # Where the command line keeps Ray's and the libraries' output (pardus-<command>.log).
    log_dir: str = "./data/logs"

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
