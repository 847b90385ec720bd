"""Avisos: immutable notices. A correction is a new aviso with a new folio."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from app.models.base import Base
from app.models.catalogo import CLASES


class Xid8(UserDefinedType):
    """PostgreSQL's 64-bit transaction id type."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "xid8"


# So that reflection (and the models-vs-migrations test) knows the type.
ischema_names.setdefault("xid8", Xid8)


class Aviso(Base):
    """Publication order is (publicacion_xid, id), read only below the oldest running transaction.

    A bigserial alone would skip rows: ids are taken at insert time but rows become visible at commit
    time, so a reader could pass id 10 before a slower transaction commits id 9. The id of the inserting
    transaction (xid8) fixes this: readers only return rows whose transaction id is below
    pg_snapshot_xmin(pg_current_snapshot()), i.e. rows no still-running transaction can precede; every row
    that becomes visible later sorts after everything already returned. See app/avisos/sql.py.
    """

    __tablename__ = "aviso"
    __table_args__ = (
        CheckConstraint(f"clase IN {CLASES}", name="clase"),
        CheckConstraint("valor_descuento >= 0", name="valor_descuento_no_negativo"),
        Index("ix_aviso_publicacion", "rfc_patron", "publicacion_xid", "id"),
        Index("ix_aviso_nss", "nss"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    folio: Mapped[str] = mapped_column(String(14), unique=True)
    tipo_aviso: Mapped[str] = mapped_column(ForeignKey("tipo_aviso.codigo"))
    clase: Mapped[str] = mapped_column(String(12))
    rfc_patron: Mapped[str] = mapped_column(ForeignKey("patron.rfc"))
    nrp: Mapped[str] = mapped_column(ForeignKey("nrp.nrp"))
    nss: Mapped[str] = mapped_column(String(11))
    rfc_trabajador: Mapped[str] = mapped_column(String(13))
    curp: Mapped[str] = mapped_column(String(18))
    nombre_trabajador: Mapped[str] = mapped_column(Text)
    numero_credito: Mapped[str] = mapped_column(String(10))
    tipo_credito: Mapped[str] = mapped_column(ForeignKey("tipo_credito.codigo"))
    estatus_credito: Mapped[str] = mapped_column(ForeignKey("estatus_credito.codigo"))
    tipo_descuento: Mapped[str] = mapped_column(ForeignKey("tipo_descuento.codigo"))
    valor_descuento: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    fecha_emision: Mapped[date] = mapped_column(Date)
    fecha_inicio_descuento: Mapped[date] = mapped_column(Date)
    publicado_en: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    publicacion_xid: Mapped[str] = mapped_column(Xid8, server_default=text("pg_current_xact_id()"))


# The fields of an aviso as the API and the loaders name them, in API order (DESIGN §3).
CAMPOS_AVISO = (
    "folio",
    "tipo_aviso",
    "clase",
    "rfc_patron",
    "nrp",
    "nss",
    "rfc_trabajador",
    "curp",
    "nombre_trabajador",
    "numero_credito",
    "tipo_credito",
    "estatus_credito",
    "tipo_descuento",
    "valor_descuento",
    "fecha_emision",
    "fecha_inicio_descuento",
    "publicado_en",
)
# What a load file carries: the service derives clase (from the catalog) and publicado_en.
CAMPOS_CARGA_AVISO = tuple(c for c in CAMPOS_AVISO if c not in ("clase", "publicado_en"))
