"""Settings from the environment (prefix SIA_, except the conventional DATABASE_URL)."""

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Development-only secret: production refuses to start with it (see _refuse_defaults_in_production).
DEV_TOTP_ENCRYPTION_KEY = "c2lhLWRlc2Fycm9sbG8tc29sby1uby1wcm9kdWNjaW8="


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIA_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "SIA_DATABASE_URL"),
        description="PostgreSQL URL; unset means an embedded PostgreSQL in the data folder.",
    )
    database_read_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_READ_URL", "SIA_DATABASE_READ_URL"),
        description="A streaming replica (hot standby) of DATABASE_URL for the avisos reads; unset: the primary. "
        "Credentials, authorization, audit and loads always use the primary.",
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
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="IPs or networks (CIDR) of the reverse proxies, comma-separated: only a request from one of "
        "them has its X-Forwarded-For believed. Empty: the peer's address is the client's.",
    )
    workers: int | None = Field(
        default=None, ge=1, description="Processes of `sia serve`; unset: one per core this process may use."
    )
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
        default=2.0,
        gt=0,
        description="A request waiting for a pooled connection answers 503 when none was returned to the pool "
        "for this long (the database stuck or too slow).",
    )
    db_pool_queue_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait for a pooled connection while the pool keeps moving: a burst larger than the "
        "pool (many clients at once) waits its turn instead of answering 503.",
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
    # Revocation: *.crl files in efirma_trust_dir always count; OCSP when a URL is set.
    efirma_ocsp_url: str | None = Field(
        default=None, description="The SAT's OCSP responder for e.firmas; unset: only the CRLs in the trust folder."
    )
    efirma_ocsp_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    efirma_ocsp_cache_seconds: int = Field(
        default=300, ge=0, le=86_400, description="How long an OCSP answer is reused (never past its nextUpdate)."
    )
    efirma_ocsp_fail_open: bool = Field(
        default=False,
        description="When the OCSP responder cannot answer: refuse the e.firma (default) or accept it and log it.",
    )

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

    # request bounds (DESIGN §5): a body above the limit gets 413 before it is read; the e.firma routes need the
    # largest bodies, a certificate (up to 20,000 base64 characters) and a signature, well under 64 KiB
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest request body, in bytes.")
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest request line plus headers, in bytes (431 beyond)."
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time a client has to send a request's line and headers (then closed)."
    )
    keep_alive_seconds: int = Field(default=5, ge=1, description="Idle time of a kept-alive connection.")

    # avisos and rate limits (per caller; per process unless rate_limit_storage names a shared store)
    avisos_limite_max: int = Field(default=10_000, ge=1, description="Largest page of GET /v1/avisos.")
    avisos_lean_path: bool = Field(
        default=True,
        description="Serve the common GET /v1/avisos page (up to 1,000 avisos, no other filter, no espera) in one "
        "statement before FastAPI's routing; every other request takes the route, and so does every page when "
        "DATABASE_READ_URL names a replica. Off: always the route.",
    )
    espera_recheck_seconds: float = Field(
        default=12.5,
        gt=0,
        description="A long poll (espera) re-checks its employer this often (±20 %) when no NOTIFY came, in case "
        "one was lost; while nothing is published that is the only query waiting costs.",
    )
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

    # portal (browser sessions): the page never holds a token; these bound the server-side session
    portal_idle_minutes: int = Field(default=15, ge=1, description="A portal session ends after this long unused.")
    portal_absolute_hours: int = Field(default=8, ge=1, description="A portal session ends this long after sign-in.")

    # e-mail: SMTP when a host is set, otherwise .eml files in the data folder's outbox/
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "SIA Infonavit <no-responder@sia.infonavit.org.mx>"
    # The message carries a password: STARTTLS with the certificate verified is the default, and turning it off
    # takes a second, explicit setting (a relay on the same host), which production refuses to assume.
    smtp_starttls: bool = Field(default=True, description="STARTTLS with certificate and host name verified.")
    smtp_allow_plaintext: bool = Field(
        default=False, description="Send without TLS when smtp_starttls is off (only a relay on the same host)."
    )
    smtp_ca_file: Path | None = Field(
        default=None, description="CA certificates (PEM) for the SMTP server; default: the system's."
    )
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: list[str]) -> list[str]:
        # uvicorn would take a mistyped entry as a literal that never matches, or "*" as trust in everyone
        # (any client could then pick its own IP and escape every per-IP limit): refuse both here.
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"SIA_TRUSTED_PROXIES: {item!r} no es una IP ni una red (CIDR)") from None
        return value

    @field_validator("efirma_ocsp_url")
    @classmethod
    def _ocsp_over_http(cls, value: str | None) -> str | None:
        # urllib would also open file: and ftp: URLs; an OCSP responder speaks HTTP (RFC 6960 appendix A).
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("SIA_EFIRMA_OCSP_URL debe ser una URL http:// o https://")
        return value

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
        if not self.smtp_host:
            # Without it passwords would pile up as files in the outbox, a development convenience.
            problems.append("SIA_SMTP_HOST es obligatorio (las contraseñas se envían por correo)")
        if not self.smtp_starttls and not self.smtp_allow_plaintext:
            problems.append(
                "SIA_SMTP_STARTTLS=false enviaría las contraseñas sin cifrar: "
                "confírmelo con SIA_SMTP_ALLOW_PLAINTEXT=true (solo un relay en el mismo equipo)"
            )
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
