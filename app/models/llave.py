"""The public halves of every replica's signing keys, so that each replica verifies the others' tokens and
publishes one JWKS. Private halves never reach the database: they stay in each replica's folder or settings."""

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

ANILLOS = ("tokens", "sellos")


class LlavePublica(Base):
    __tablename__ = "llave_publica"
    __table_args__ = (CheckConstraint(f"anillo IN {ANILLOS}", name="anillo"),)

    kid: Mapped[str] = mapped_column(Text, primary_key=True)  # RFC 7638 thumbprint: the key names itself
    anillo: Mapped[str] = mapped_column(String(10))
    x: Mapped[str] = mapped_column(Text)  # P-256 coordinates, base64url as in the JWK
    y: Mapped[str] = mapped_column(Text)
    # When it starts signing (a rotation publishes ahead), and when its successor replaced it.
    creada_en: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reemplazada_en: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
