"""Identity: e.firma challenges, credentials (password + TOTP), token throttling, and acuses."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    exists,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import Base

ESTADOS_CREDENCIAL = ("activa", "renovada", "cancelada")


class Reto(Base):
    """A challenge for proof of possession of an e.firma: single use, short-lived."""

    __tablename__ = "reto"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rfc: Mapped[str] = mapped_column(String(13))
    reto: Mapped[bytes] = mapped_column(LargeBinary)
    creado_en: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expira_en: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    usado_en: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Credencial(Base):
    """A password + TOTP secret of an RFC. Renewal makes a new row; tokens name the row they came from,
    so a renewed or cancelled credential's tokens fail on the next request."""

    __tablename__ = "credencial"
    __table_args__ = (
        CheckConstraint(f"estado IN {ESTADOS_CREDENCIAL}", name="estado"),
        # At most one active credential per RFC.
        Index("uq_credencial_rfc_activa", "rfc", unique=True, postgresql_where=text("estado = 'activa'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rfc: Mapped[str] = mapped_column(String(13))
    correo: Mapped[str] = mapped_column(Text)
    nombre: Mapped[str | None] = mapped_column(Text)  # from the e.firma, for acuses
    hash_contrasena: Mapped[str] = mapped_column(Text)
    totp_cifrado: Mapped[bytes] = mapped_column(LargeBinary)
    # The last accepted TOTP time step: a code is accepted only for a later step (no replay).
    totp_ultimo_paso: Mapped[int | None] = mapped_column(BigInteger)
    estado: Mapped[str] = mapped_column(String(10))
    certificado_numero: Mapped[str] = mapped_column(String(40))
    creada_en: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    terminada_en: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def token_credential_in_force(credencial_id: Any, rfc: Any) -> ColumnElement[bool]:
    """The one rule of "a token's credential still holds": the row it names, of the RFC it was issued to, not
    renewed or cancelled since. Every request checks it (the caller, a long poll after its wait, authorize)."""
    return exists().where(Credencial.id == credencial_id, Credencial.rfc == rfc, Credencial.estado == "activa")


class BloqueoToken(Base):
    """Failed TOTP codes per RFC, counted only after a right password: a row exists only for a real credential,
    and a stranger who does not know the password cannot lock its owner out."""

    __tablename__ = "bloqueo_token"

    rfc: Mapped[str] = mapped_column(String(13), primary_key=True)
    fallos: Mapped[int] = mapped_column(Integer)
    primer_fallo: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    bloqueado_hasta: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Acuse(Base):
    """A sealed receipt of an act (a password issued, a trust relationship created, …)."""

    __tablename__ = "acuse"
    __table_args__ = (Index("ix_acuse_partes", "partes", postgresql_using="gin"),)

    folio: Mapped[str] = mapped_column(String(24), primary_key=True)
    tipo: Mapped[str] = mapped_column(String(40))
    emitido_en: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    partes: Mapped[list[str]] = mapped_column(ARRAY(String(13)))
    datos: Mapped[dict[str, Any]] = mapped_column(JSONB)
    cadena_original: Mapped[str] = mapped_column(Text)
    sello: Mapped[str] = mapped_column(Text)
    credencial_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("credencial.id"))
