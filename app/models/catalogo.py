"""Catalogs (Infonavit's codes). Rows come from the CSV files in app/catalogs/ (see app/catalogs.py)."""

from sqlalchemy import Boolean, CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

CLASES = ("retencion", "modificacion", "suspension")


class _Entrada:
    descripcion: Mapped[str] = mapped_column(Text)
    # True for every entry we made up while Infonavit's official list is not public.
    provisional: Mapped[bool] = mapped_column(Boolean, default=True)


class TipoAviso(_Entrada, Base):
    __tablename__ = "tipo_aviso"
    __table_args__ = (CheckConstraint(f"clase IN {CLASES}", name="clase"),)

    codigo: Mapped[str] = mapped_column(String(2), primary_key=True)
    clase: Mapped[str] = mapped_column(String(12))


class TipoDescuento(_Entrada, Base):
    __tablename__ = "tipo_descuento"
    codigo: Mapped[str] = mapped_column(String(2), primary_key=True)


class TipoCredito(_Entrada, Base):
    __tablename__ = "tipo_credito"
    codigo: Mapped[str] = mapped_column(String(3), primary_key=True)


class EstatusCredito(_Entrada, Base):
    __tablename__ = "estatus_credito"
    codigo: Mapped[str] = mapped_column(String(3), primary_key=True)
