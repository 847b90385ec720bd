"""The employer registry: patrones and their registros patronales (NRPs), loaded by the operator."""

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class Patron(Base):
    __tablename__ = "patron"

    rfc: Mapped[str] = mapped_column(String(13), primary_key=True)
    razon_social: Mapped[str] = mapped_column(Text)
    registrado_en: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Nrp(Base):
    __tablename__ = "nrp"

    nrp: Mapped[str] = mapped_column(String(11), primary_key=True)
    rfc_patron: Mapped[str] = mapped_column(ForeignKey("patron.rfc"), index=True)
    registrado_en: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
