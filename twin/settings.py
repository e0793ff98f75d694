"""All configuration, from the environment (prefix ``TWIN_``) or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from layers.filter_limits import FilterLimits
from layers.store.writer_queue import WriteLimits


class TwinSettings(BaseSettings):
    """Settings of one Twin deployment. Nothing else reads the environment."""

    model_config = SettingsConfigDict(env_prefix="TWIN_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path("var"), description="Folder of the embedded database and generated files (sample city, caches)."
    )
    database_url: str | None = Field(
        default=None,
        description="postgresql://user:pass@host/db for PostGIS; unset means SQLite+SpatiaLite in data_dir.",
    )
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description='Admin API keys, as a JSON list: TWIN_API_KEYS=\'["k1","k2"]\' (other keys: `twin keys add`).',
    )

    # Access (README, "Access"): OIDC bearer tokens, checked against the provider's published keys.
    oidc_issuer: str | None = Field(default=None, description="The `iss` a token must carry; unset: no tokens.")
    oidc_audience: str | None = Field(default=None, description="The `aud` a token must carry (Twin's client id).")
    oidc_jwks_url: str | None = Field(default=None, description="Where the provider publishes its keys (JWKS).")
    oidc_roles_claim: str = Field(default="roles", description="The claim (dotted path) that lists the roles.")
    oidc_areas_claim: str = Field(default="areas", description="The claim (dotted path) that lists the areas.")
    oidc_client_id: str | None = Field(default=None, description="The client id the planner signs in with.")
    oidc_authorize_url: str | None = Field(default=None, description="The provider's authorization endpoint.")
    oidc_token_url: str | None = Field(default=None, description="The provider's token endpoint (code + PKCE).")
    auth_cache_s: float = Field(
        default=5, ge=0, le=300, description="How long a worker trusts a key lookup: a revoked key stops within it."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call from a browser, e.g. '[\"https://ioc.example\"]'."
    )
    rate_limit_per_minute: int = Field(
        default=0, ge=0, description="Requests a minute per key, or per address with none, per worker; 0: no limit."
    )
    max_body_mb: int = Field(default=16, ge=1, le=1024, description="Largest JSON body of a feature write.")
    max_upload_mb: int = Field(default=2048, ge=1, description="Largest file an HTTP import takes.")
    tile_cache_mb: int = Field(default=256, ge=0, description="Memory for encoded tiles, per worker process.")
    tile_cache_dir: Path | None = Field(
        default=None, description="Folder for a tile cache on disk, shared by the workers; unset means memory only."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    # Bounds on every request, checked before a parser or the database sees it (README, "Limits").
    filter_max_length: int = Field(default=20_000, ge=100, description="Characters in one CQL2 filter.")
    filter_max_depth: int = Field(default=40, ge=2, le=200, description="Nesting of a CQL2 filter.")
    filter_max_parentheses: int = Field(
        default=12, ge=1, le=16, description="Grouping parentheses nested in a CQL2 text filter (parser backtracking)."
    )
    filter_max_terms: int = Field(default=500, ge=1, le=900, description="Operators and functions in one filter.")
    filter_max_points: int = Field(default=10_000, ge=1, description="Points in a filter's geometry literals.")
    filter_max_dwithin_points: int = Field(default=100, ge=1, description="Points of one S_DWITHIN's multipoint.")
    statement_timeout_s: float = Field(
        default=30, gt=0, le=3600, description="Longest a read query may run before it is cancelled (503)."
    )

    # Writers under a long write, and imports over HTTP (README, "Imports over HTTP").
    write_wait_s: float = Field(
        default=15, ge=0, le=600, description="How long a write waits for another (SQLite: one at a time) before a 503."
    )
    write_queue: int = Field(default=8, ge=1, description="Writes waiting per worker process (SQLite); more get 503.")
    wal_checkpoint_mb: int = Field(
        default=64, ge=1, description="A write that leaves SQLite's write-ahead log larger checkpoints and truncates it"
    )
    import_wait_s: float = Field(
        default=5, ge=0, le=60, description="How long an HTTP import may take to answer with its report, not 202."
    )
    import_jobs: int = Field(default=2, ge=1, le=64, description="Imports running or waiting per worker process.")

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'twin.sqlite').resolve()}"

    @property
    def write_counter_path(self) -> Path:
        """The file that the processes using this store share to count writes (see ``layers.signal``)."""
        return self.data_dir / "store-writes.counter"

    @property
    def filter_limits(self) -> FilterLimits:
        return FilterLimits(
            max_length=self.filter_max_length,
            max_depth=self.filter_max_depth,
            max_parentheses=self.filter_max_parentheses,
            max_terms=self.filter_max_terms,
            max_points=self.filter_max_points,
            max_dwithin_points=self.filter_max_dwithin_points,
        )

    @property
    def write_limits(self) -> WriteLimits:
        return WriteLimits(
            wait_s=self.write_wait_s, max_waiting=self.write_queue, wal_checkpoint_bytes=self.wal_checkpoint_mb * 2**20
        )

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_jwks_url)

    @property
    def backend_label(self) -> str:
        return "PostGIS" if self.database_url else "SpatiaLite"
