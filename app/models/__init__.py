"""Every table of the service; importing this module registers them all on Base.metadata."""

from app.models.auditoria import EventoAuditoria
from app.models.aviso import Aviso
from app.models.base import Base
from app.models.catalogo import EstatusCredito, TipoAviso, TipoCredito, TipoDescuento
from app.models.patron import Nrp, Patron

__all__ = [
    "Aviso",
    "Base",
    "EstatusCredito",
    "EventoAuditoria",
    "Nrp",
    "Patron",
    "TipoAviso",
    "TipoCredito",
    "TipoDescuento",
]
