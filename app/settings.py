"""Settings from the environment (prefix SIA_, except the conventional DATABASE_URL)."""

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development-only secret: production refuses to start with it (see _refuse_defaults_in_production).
DEV_TOTP_ENCRYPTION_KEY = "c2lhLWRlc2Fycm9sbG8tc29sby1uby1wcm9kdWNjaW8="


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIA_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "SIA_DATABASE_URL"),
        description="PostgreSQL URL; unset means an embedded PostgreSQL in the data folder.",
    )
    data_dir: Path = Field(default=Path(".sia"), description="Data folder: embedded PostgreSQL, keys, outbox.")
    env: Literal["development", "test", "production"] = "development"
    public_url: str | None = Field(
        default=None,
        description="Base URL people reach the service at (acuse QR codes); unset: http://host:port. "
        "Required in production, where the service sits behind a proxy.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int | None = Field(
        default=None, ge=1, description="Processes of `sia serve`; unset: one per core this process may use."
    )
    access_log: bool = Field(default=True, description="uvicorn's per-request log lines.")
    log_json: bool | None = Field(default=None, description="JSON logs; default: on in production only.")
    catalogs_dir: Path | None = Field(
        default=None,
        description="Folder of catalog CSVs replacing the shipped ones (Infonavit's official lists).",
    )

    # e.firma
    efirma_trust_dir: Path | None = Field(
        default=None,
        description="Folder of trusted SAT CA certificates (DER or PEM). Development default: the demo CA.",
    )
    reto_ttl_seconds: int = Field(default=300, ge=30, le=3600)

    # credentials and tokens
    totp_encryption_key: SecretStr = Field(
        default=SecretStr(DEV_TOTP_ENCRYPTION_KEY), description="Fernet key that encrypts TOTP secrets at rest."
    )
    token_ttl_minutes: int = Field(default=5, ge=1, le=60)
    token_issuer: str = "https://sia.infonavit.org.mx"
    token_audience: str = "sia-api"
    token_key_pem: SecretStr | None = Field(
        default=None, description="ES256 private key (PEM) for access tokens; default: keys/tokens/ in the data folder."
    )
    seal_key_pem: SecretStr | None = Field(
        default=None, description="ES256 private key (PEM) for acuse seals; default: keys/sellos/ in the data folder."
    )
    totp_max_failures: int = Field(default=5, ge=1, description="Failed token attempts before the RFC is locked.")
    lockout_minutes: int = Field(default=15, ge=1)

    # avisos and rate limits (per caller; per process unless rate_limit_storage names a shared store)
    avisos_limite_max: int = Field(default=10_000, ge=1, description="Largest page of GET /v1/avisos.")
    rate_limit_enabled: bool = Field(default=True, description="Off only for benchmarks.")
    rate_limit_storage: str | None = Field(
        default=None,
        description="Shared store of the rate-limit counts (redis://, rediss://, valkey://, valkeys://), so that "
        "a budget holds across workers and replicas; unset: each process counts on its own.",
    )
    rate_limit_avisos: str = "600/minute"
    rate_limit_token: str = "30/minute"
    # Per source address, whatever the client_id: random client_ids must not buy unlimited Argon2 work.
    rate_limit_token_ip: str = "60/minute"
    # Wrong passwords (and unknown RFCs) per source address; a right password does not spend it.
    rate_limit_token_fallos: str = "10/minute"
    password_verifications_max: int = Field(
        default=8,
        ge=1,
        description="Argon2 verifications at once per `sia serve` (split among its workers); beyond it POST "
        "/v1/token answers 503.",
    )
    rate_limit_efirma: str = "20/minute"
    # Each attempt writes up to 8,000 sandbox avisos: opening them in a loop must not fill the database.
    rate_limit_certificaciones: str = "20/hour"

    # certification
    certificacion_vigencia_dias: int = Field(default=365, ge=1, description="Life of an approved certification.")
    intento_vigencia_dias: int = Field(default=7, ge=1, description="Life of a certification attempt.")
    sandbox_limite_max: int = Field(default=500, ge=10, description="Largest sandbox page: paging is required.")
    purge_interval_minutes: int = Field(
        default=60, ge=1, description="How often `sia serve` purges expired challenges, old lockouts, ended sandboxes."
    )

    # e-mail: SMTP when a host is set, otherwise .eml files in the data folder's outbox/
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "SIA Infonavit <no-responder@sia.infonavit.org.mx>"
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None

    @field_validator("rate_limit_storage")
    @classmethod
    def _known_rate_limit_store(cls, uri: str | None) -> str | None:
        if not uri:
            return None  # SIA_RATE_LIMIT_STORAGE= (empty) means none, as unset does
        from app.security.rate_limit import shared_store_uri  # lazily: settings load before the web stack

        shared_store_uri(uri)
        return uri

    @model_validator(mode="after")
    def _refuse_defaults_in_production(self) -> "Settings":
        if self.env != "production":
            return self
        problems = []
        if not self.database_url:
            # The embedded server is a development convenience: production data needs a managed PostgreSQL.
            problems.append("DATABASE_URL es obligatorio (el PostgreSQL embebido es solo para desarrollo)")
        if self.totp_encryption_key.get_secret_value() == DEV_TOTP_ENCRYPTION_KEY:
            problems.append("SIA_TOTP_ENCRYPTION_KEY no puede ser la clave de desarrollo")
        if self.efirma_trust_dir is None:
            problems.append("SIA_EFIRMA_TRUST_DIR es obligatorio (certificados de las AC del SAT)")
        if self.public_url is None:
            problems.append("SIA_PUBLIC_URL es obligatorio (la URL que imprimen los QR de los acuses)")
        if problems:
            raise ValueError("SIA_ENV=production: " + "; ".join(problems))
        return self

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_workers(self) -> int:
        if self.workers:
            return self.workers
        # The cores this process may run on (a container's CPU set), not all of the machine's.
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    @property
    def resolved_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def trust_dir(self) -> Path:
        return self.efirma_trust_dir or self.resolved_data_dir / "efirma-demo" / "ca"

    @property
    def outbox_dir(self) -> Path:
        return self.resolved_data_dir / "outbox"

    @property
    def keys_dir(self) -> Path:
        return self.resolved_data_dir / "keys"

    @property
    def json_logs(self) -> bool:
        return self.env == "production" if self.log_json is None else self.log_json
