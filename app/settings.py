"""Settings from the environment (prefix SIA_, except the conventional DATABASE_URL)."""

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
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
    access_log: bool = Field(default=True, description="uvicorn's per-request log lines.")
    log_json: bool | None = Field(default=None, description="JSON logs; default: on in production only.")
    catalogs_dir: Path | None = Field(
        default=None,
        description="Folder of catalog CSVs replacing the shipped ones (Infonavit's official lists).",
    )

    # database pool and timeouts: a database that is slow, locked or gone gives a fast 503, never a hang
    db_pool_size: int = Field(default=10, ge=1, description="Pooled connections per process.")
    db_max_overflow: int = Field(default=10, ge=0, description="Extra connections beyond the pool under bursts.")
    db_pool_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Wait for a free pooled connection before answering 503."
    )
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0, description="Opening a connection (asyncpg).")
    db_statement_timeout_seconds: float = Field(
        default=30.0, ge=0, description="PostgreSQL statement_timeout of the service's connections; 0: none."
    )
    db_lock_timeout_seconds: float = Field(
        default=3.0, ge=0, description="PostgreSQL lock_timeout: a locked table gives 503, not a hang; 0: none."
    )
    db_idle_in_transaction_timeout_seconds: float = Field(
        default=60.0, ge=0, description="PostgreSQL idle_in_transaction_session_timeout; 0: none."
    )
    db_command_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Client-side limit per statement (asyncpg), for a server that stops answering; "
        "default: statement_timeout + 10 s.",
    )
    db_idle_ping_seconds: float = Field(
        default=2.0, ge=0, description="A pooled connection idle longer than this is pinged before use."
    )
    db_retry_after_seconds: int = Field(default=2, ge=1, description="Retry-After of a 503 for the database.")
    readyz_timeout_seconds: float = Field(default=1.0, gt=0, description="/readyz answers within this.")

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
    keys_refresh_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often each replica publishes its public keys to the database and learns the others'; "
        "a rotation reaches every replica within this time.",
    )
    totp_max_failures: int = Field(default=5, ge=1, description="Failed token attempts before the RFC is locked.")
    lockout_minutes: int = Field(default=15, ge=1)

    # avisos and rate limits (per caller, per replica)
    avisos_limite_max: int = Field(default=10_000, ge=1, description="Largest page of GET /v1/avisos.")
    rate_limit_enabled: bool = Field(default=True, description="Off only for benchmarks.")
    rate_limit_avisos: str = "600/minute"
    rate_limit_token: str = "30/minute"
    rate_limit_efirma: str = "20/minute"
    # Each attempt writes up to 8,000 sandbox avisos: opening them in a loop must not fill the database.
    rate_limit_certificaciones: str = "20/hour"

    # certification
    certificacion_vigencia_dias: int = Field(default=365, ge=1, description="Life of an approved certification.")
    intento_vigencia_dias: int = Field(default=7, ge=1, description="Life of a certification attempt.")
    sandbox_limite_max: int = Field(default=500, ge=10, description="Largest sandbox page: paging is required.")

    # e-mail: SMTP when a host is set, otherwise .eml files in the data folder's outbox/
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "SIA Infonavit <no-responder@sia.infonavit.org.mx>"
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None

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
