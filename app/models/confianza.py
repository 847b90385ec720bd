"""Certifications of developers and the trust relationships employers grant them."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    and_,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from app.models.aviso import AvisoColumns
from app.models.base import Base

ESTADOS_CERTIFICACION = ("en_curso", "aprobada", "cancelada", "vencida")


class Certificacion(Base):
    """An attempt at certification (app/certificaciones.py); an approved one with
    vigente_hasta in the future lets its RFC read production avisos."""

    __tablename__ = "certificacion"
    __table_args__ = (
        CheckConstraint(f"estado IN {ESTADOS_CERTIFICACION}", name="estado"),
        Index("ix_certificacion_rfc", "rfc", "estado", "vigente_hasta"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rfc: Mapped[str] = mapped_column(String(13))
    estado: Mapped[str] = mapped_column(String(10))
    creada_en: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    aprobada_en: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    vigente_hasta: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelada_en: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The attempt: its sandbox employer, when it expires, and what each scenario asks and has shown.
    expira_en: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sandbox_rfc: Mapped[str | None] = mapped_column(String(13))
    sandbox_nrps: Mapped[list[str] | None] = mapped_column(ARRAY(String(11)))
    escenarios: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    folio_acuse: Mapped[str | None] = mapped_column(ForeignKey("acuse.folio"))


def certificacion_vigente(at: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """The one rule of "certified at `at`": approved (a cancelled one no longer is) and not yet past
    vigente_hasta. Every query that asks whether an RFC may read production avisos builds on it."""
    return and_(Certificacion.estado == "aprobada", Certificacion.vigente_hasta > at)


class RelacionConfianza(Base):
    """An employer lets a developer read its avisos, for some NRPs (NULL = all, including later ones), within
    a window. Its estado (programada, vigente, vencida, revocada) is derived from these columns and the clock."""

    __tablename__ = "relacion_confianza"
    __table_args__ = (
        CheckConstraint("vigencia_fin > vigencia_inicio", name="vigencia"),
        Index("ix_relacion_confianza_par", "rfc_patron", "rfc_desarrollador"),
        Index("ix_relacion_confianza_desarrollador", "rfc_desarrollador"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rfc_patron: Mapped[str] = mapped_column(ForeignKey("patron.rfc"))
    rfc_desarrollador: Mapped[str] = mapped_column(String(13))
    nrps: Mapped[list[str] | None] = mapped_column(ARRAY(String(11)))
    vigencia_inicio: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    vigencia_fin: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    creada_en: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revocada_en: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    folio_acuse: Mapped[str] = mapped_column(ForeignKey("acuse.folio"))
    folio_acuse_revocacion: Mapped[str | None] = mapped_column(ForeignKey("acuse.folio"))


class SandboxAviso(AvisoColumns, Base):
    """The synthetic avisos of one certification attempt. Its own table, so no production query can reach
    them; the same columns and publication order as `aviso`, so the same route code serves them."""

    __tablename__ = "sandbox_aviso"
    __table_args__ = (
        Index("uq_sandbox_aviso_publicacion", "rfc_patron", "seq", unique=True),
        Index("uq_sandbox_aviso_folio", "certificacion_id", "folio", unique=True),
    )

    _REFERENCES = False

    certificacion_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("certificacion.id", ondelete="CASCADE"))
    lote: Mapped[int] = mapped_column(SmallInteger)  # 0: the attempt's data; 1: the incremental scenario's
    folio: Mapped[str] = mapped_column(String(14))


class SandboxSolicitud(Base):
    """Every sandbox request of an attempt: what the service judges the scenarios from."""

    __tablename__ = "sandbox_solicitud"
    __table_args__ = (Index("ix_sandbox_solicitud_certificacion", "certificacion_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    certificacion_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("certificacion.id", ondelete="CASCADE"))
    recibida_en: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    estado_http: Mapped[int] = mapped_column(SmallInteger)
    despues_de: Mapped[str | None] = mapped_column(String(14))
    parametros: Mapped[dict[str, Any]] = mapped_column(JSONB)
    entregados: Mapped[int] = mapped_column(Integer, server_default="0")
