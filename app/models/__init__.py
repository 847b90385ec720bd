"""Every table of the service; importing this module registers them all on Base.metadata."""

from app.models.auditoria import EventoAuditoria
from app.models.aviso import Aviso
from app.models.base import Base
from app.models.catalogo import EstatusCredito, TipoAviso, TipoCredito, TipoDescuento
from app.models.confianza import Certificacion, RelacionConfianza, SandboxAviso, SandboxSolicitud
from app.models.identidad import Acuse, BloqueoToken, Credencial, Reto
from app.models.llave import LlavePublica
from app.models.patron import Nrp, Patron
from app.models.sesion import SesionPortal

__all__ = [
    "Acuse",
    "Aviso",
    "Base",
    "BloqueoToken",
    "Certificacion",
    "Credencial",
    "EstatusCredito",
    "EventoAuditoria",
    "LlavePublica",
    "Nrp",
    "Patron",
    "RelacionConfianza",
    "Reto",
    "SandboxAviso",
    "SandboxSolicitud",
    "SesionPortal",
    "TipoAviso",
    "TipoCredito",
    "TipoDescuento",
]
