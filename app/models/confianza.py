"""Certifications of developers and the trust relationships employers grant them."""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

ESTADOS_CERTIFICACION = ("en_curso", "aprobada", "cancelada", "vencida")


class Certificacion(Base):
    """An attempt at certification (the certification issue builds the flow); an approved one with
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
