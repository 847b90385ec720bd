"""Avisos: immutable notices. A correction is a new aviso with a new folio."""

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Identity,
    Index,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base
from app.models.catalogo import CLASES

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


class AvisoColumns:
    """The columns of an aviso wherever it is kept: production's `aviso` and each certification attempt's
    `sandbox_aviso`, so that the same route code serves both. Each table declares its own `folio` (unique in
    production, unique per attempt in a sandbox)."""

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    tipo_aviso: Mapped[str] = mapped_column(String(2))
    clase: Mapped[str] = mapped_column(String(12))
    rfc_patron: Mapped[str] = mapped_column(String(13))
    nrp: Mapped[str] = mapped_column(String(11))
    nss: Mapped[str] = mapped_column(String(11))
    rfc_trabajador: Mapped[str] = mapped_column(String(13))
    curp: Mapped[str] = mapped_column(String(18))
    nombre_trabajador: Mapped[str] = mapped_column(Text)
    numero_credito: Mapped[str] = mapped_column(String(10))
    tipo_credito: Mapped[str] = mapped_column(String(3))
    estatus_credito: Mapped[str] = mapped_column(String(3))
    tipo_descuento: Mapped[str] = mapped_column(String(2))
    valor_descuento: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    fecha_emision: Mapped[date] = mapped_column(Date)
    fecha_inicio_descuento: Mapped[date] = mapped_column(Date)
    publicado_en: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    seq: Mapped[int] = mapped_column(BigInteger)  # publication order within the employer (app/publicacion.py)
    # The aviso as the API serves it, rendered once by PostgreSQL when the row is written (avisos never change)
    # and relayed as it is by every read (app/avisos/stream.py): migration 20261203_json. Deferred: the ORM
    # has the columns and never needs it.
    json: Mapped[str] = mapped_column(
        Text, Computed(f"aviso_json({', '.join(CAMPOS_AVISO)})", persisted=True), deferred=True
    )


class Aviso(AvisoColumns, Base):
    """Publication order is (rfc_patron, seq): seq is the aviso's place in its employer's order.

    A bigserial alone would skip rows: ids are taken at insert time but rows become visible at commit
    time, so a reader could pass id 10 before a slower transaction commits id 9. Publishers therefore take
    a per-employer lock held until commit and only then number their rows after the employer's highest seq
    (app/publicacion.py), so within one employer seq order is commit order: every row that becomes visible
    later sorts after everything already returned, and readers compare the cursor on seq with no horizon;
    nothing another employer does (a long load, an idle transaction) can hold this one back.

    The references (catalogs, patrón, NRP) are checked once per statement by a trigger over the
    transition table, not by six row-level foreign keys (migration 20261202_seq; REFERENCIAS below).
    """

    __tablename__ = "aviso"
    __table_args__ = (
        CheckConstraint(f"clase IN {CLASES}", name="clase"),
        CheckConstraint("valor_descuento >= 0", name="valor_descuento_no_negativo"),
        Index("uq_aviso_publicacion", "rfc_patron", "seq", unique=True),
        Index("ix_aviso_nss", "nss"),
    )

    folio: Mapped[str] = mapped_column(String(14), unique=True)


# What each aviso column references (aviso column, table, key): checked by the statement-level trigger
# aviso_check_references and guarded on the referenced side (tests/test_migrations.py holds them equal).
REFERENCIAS = (
    ("tipo_aviso", "tipo_aviso", "codigo"),
    ("rfc_patron", "patron", "rfc"),
    ("nrp", "nrp", "nrp"),
    ("tipo_credito", "tipo_credito", "codigo"),
    ("estatus_credito", "estatus_credito", "codigo"),
    ("tipo_descuento", "tipo_descuento", "codigo"),
)


# What a load file carries: the service derives clase (from the catalog) and publicado_en.
CAMPOS_CARGA_AVISO = tuple(c for c in CAMPOS_AVISO if c not in ("clase", "publicado_en"))
