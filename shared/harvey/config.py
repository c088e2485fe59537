"""Settings read from the environment (and `.env`), one place for every knob.

Every field here is listed in the README's configuration table.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
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
    db_timeout_s: float = Field(default=30.0, alias="HARVEY_DB_TIMEOUT_S")

    # Models
    llm_models: str = Field(default="harvey/extractive", alias="HARVEY_LLM_MODELS")
    llm_timeout_s: float = Field(default=60.0, alias="HARVEY_LLM_TIMEOUT_S")
    llm_retries: int = Field(default=1, alias="HARVEY_LLM_RETRIES")
    llm_api_base: str | None = Field(default=None, alias="HARVEY_LLM_API_BASE")
    embedding_model: str = Field(default="harvey/local", alias="HARVEY_EMBEDDING_MODEL")

    # Pipeline
    top_k: int = Field(default=6, alias="HARVEY_TOP_K")
    max_revisions: int = Field(default=1, alias="HARVEY_MAX_REVISIONS")
    max_request_bytes: int = Field(default=64 * 1024, alias="HARVEY_MAX_REQUEST_BYTES")
    prompt_version: str = Field(default="2026-11-25.1", alias="HARVEY_PROMPT_VERSION")
    cache_ttl_s: int = Field(default=3600, alias="HARVEY_CACHE_TTL_S")

    # Events
    k_sink: str | None = Field(default=None, alias="K_SINK")
    k_ce_overrides: str | None = Field(default=None, alias="K_CE_OVERRIDES")
    event_source: str = Field(default="/harvey", alias="HARVEY_EVENT_SOURCE")

    log_level: str = Field(default="INFO", alias="HARVEY_LOG_LEVEL")

    @property
    def llm_chain(self) -> list[str]:
        return [m.strip() for m in self.llm_models.split(",") if m.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
