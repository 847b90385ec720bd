"""Settings from the environment (prefix SIA_, except the conventional DATABASE_URL)."""

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIA_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "SIA_DATABASE_URL"),
        description="PostgreSQL URL; unset means an embedded PostgreSQL in the data folder.",
    )
    data_dir: Path = Field(default=Path(".sia"), description="Data folder: embedded PostgreSQL, keys, outbox.")
    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_json: bool | None = Field(default=None, description="JSON logs; default: on in production only.")
    catalogs_dir: Path | None = Field(
        default=None,
        description="Folder of catalog CSVs replacing the shipped ones (Infonavit's official lists).",
    )

    @model_validator(mode="after")
    def _refuse_defaults_in_production(self) -> "Settings":
        if self.env == "production" and not self.database_url:
            # The embedded server is a development convenience: production data needs a managed PostgreSQL.
            raise ValueError("SIA_ENV=production requiere DATABASE_URL; el PostgreSQL embebido es solo para desarrollo")
        return self

    @cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def json_logs(self) -> bool:
        return self.env == "production" if self.log_json is None else self.log_json
