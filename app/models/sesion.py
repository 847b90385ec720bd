"""Portal sessions (backend for frontend): the browser holds only a random cookie; this row is the session."""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class SesionPortal(Base):
    """One signed-in person. Keyed by the SHA-256 of the cookie, so a copy of the table opens no session; it
    names the credential it was opened with, so renewing or cancelling that credential ends it at once."""

    __tablename__ = "sesion_portal"
    __table_args__ = (Index("ix_sesion_portal_credencial", "credencial_id"),)

    id: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    rfc: Mapped[str] = mapped_column(String(13))
    credencial_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("credencial.id", ondelete="CASCADE"))
    creada_en: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ultimo_uso: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    vence_en: Mapped[datetime] = mapped_column(DateTime(timezone=True))
