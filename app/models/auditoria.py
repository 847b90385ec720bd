"""The audit log: who did what to or with whose data. Written by loaders, relationship acts and every avisos
read (refused ones too)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class EventoAuditoria(Base):
    __tablename__ = "evento_auditoria"
    __table_args__ = (Index("ix_evento_auditoria_patron", "rfc_patron", "ocurrido_en"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    ocurrido_en: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    accion: Mapped[str] = mapped_column(Text)  # e.g. "carga.avisos", "avisos.consulta"
    actor: Mapped[str | None] = mapped_column(String(64))  # an RFC, or "operador:<user>" for the CLI
    rfc_patron: Mapped[str | None] = mapped_column(String(13))
    nrps: Mapped[list[str] | None] = mapped_column(ARRAY(String(11)))
    cantidad: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(Text)
    relacion_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("relacion_confianza.id"))
    detalle: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
