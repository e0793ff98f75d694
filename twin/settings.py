"""All configuration, from the environment (prefix ``TWIN_``) or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        description='API keys allowed to change layers, as a JSON list: TWIN_API_KEYS=\'["k1","k2"]\'.',
    )
    tile_cache_mb: int = Field(default=256, ge=0, description="Memory for encoded tiles, per worker process.")
    tile_cache_dir: Path | None = Field(
        default=None, description="Folder for a tile cache on disk, shared by the workers; unset means memory only."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

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
    def backend_label(self) -> str:
        return "PostGIS" if self.database_url else "SpatiaLite"
