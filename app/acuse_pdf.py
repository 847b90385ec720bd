"""An acuse as a PDF a person would accept as a receipt: title, folio, date and time in Mexico City,
the parties, the facts, the cadena original, the digital seal, and a QR code to verify it."""

import datetime as dt
from typing import Any

import segno
from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos

from app.identifiers import MEXICO
from app.models import Acuse

TITULOS = {
    "contrasena.emision": "Acuse de emisión de contraseña",
    "contrasena.renovacion": "Acuse de renovación de contraseña",
    "contrasena.cancelacion": "Acuse de cancelación de contraseña",
    "relacion.creacion": "Acuse de registro de relación de confianza",
    "relacion.revocacion": "Acuse de revocación de relación de confianza",
    "certificacion.aprobacion": "Acuse de certificación de software de nómina",
}
# In the order a person reads a receipt; facts not listed here follow, under their own key.
ETIQUETAS = {
    "patron_nombre": "Patrón",
    "patron_rfc": "RFC del patrón",
    "desarrollador_nombre": "Desarrollador",
    "desarrollador_rfc": "RFC del desarrollador",
    "nrps": "Registros patronales (NRP)",
    "vigencia_inicio": "Vigencia desde",
    "vigencia_fin": "Vigencia hasta",
    "revocada_en": "Revocada el",
    "vigente_hasta": "Certificación vigente hasta",
    "certificacion_id": "Certificación",
    "relacion_id": "Relación",
    "acuse_de_creacion": "Acuse de registro",
    "nombre": "Nombre",
    "rfc": "RFC",
    "correo": "Correo",
    "certificado_efirma": "Certificado de e.firma",
}


def _latin1(text: str) -> str:
    # The PDF core fonts speak Latin-1, which covers Spanish; anything else becomes "?".
    return text.encode("latin-1", "replace").decode("latin-1")


def _local(value: str | dt.datetime) -> str:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(MEXICO).strftime("%d/%m/%Y %H:%M:%S (hora del centro de México)")


def _value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "nrps":
        return "Todos, incluidos los que registre después" if value == "todos" else ", ".join(value)
    if key in ("vigencia_inicio", "vigencia_fin", "revocada_en", "vigente_hasta"):
        return _local(value)
    return str(value)


def render_acuse_pdf(acuse: Acuse, verification_url: str) -> bytes:
    pdf = FPDF(format="Letter")
    pdf.set_title(_latin1(f"{TITULOS.get(acuse.tipo, 'Acuse')} {acuse.folio}"))
    pdf.set_author("Servicio de Intercomunicación de Avisos (SIA)")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(
        width, 5, _latin1("INFONAVIT · Servicio de Intercomunicación de Avisos"), new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(width - 45, 8, _latin1(TITULOS.get(acuse.tipo, "Acuse")), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _qr(pdf, verification_url, x=pdf.w - pdf.r_margin - 38, y=pdf.t_margin, size=38)
    pdf.ln(2)

    rows = [("Folio", acuse.folio), ("Fecha y hora", _local(acuse.emitido_en))]
    ordered = [k for k in ETIQUETAS if k in acuse.datos] + [k for k in acuse.datos if k not in ETIQUETAS]
    rows += [(ETIQUETAS.get(k, k), _value(k, acuse.datos[k])) for k in ordered]
    pdf.set_y(max(pdf.get_y(), pdf.t_margin + 42))
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(55, 7, _latin1(label), border="B")
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(width - 55, 7, _latin1(value), border="B", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    for heading, text, size in (
        ("Cadena original", acuse.cadena_original, 7.5),
        ("Sello digital (JWS ES256, verificable con /.well-known/jwks.json)", acuse.sello, 6.5),
    ):
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(width, 6, _latin1(heading), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Courier", "", size)
        pdf.multi_cell(width, 3.6, _latin1(text), border=1, new_x=XPos.LMARGIN, new_y=YPos.NEXT, wrapmode=WrapMode.CHAR)

    pdf.ln(4)
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(
        width,
        4,
        _latin1(
            "Verifique este acuse escaneando el código QR o en "
            f"{verification_url}. El sello se verifica con las llaves públicas del servicio."
        ),
        align="L",
    )
    return bytes(pdf.output())


def _qr(pdf: FPDF, data: str, *, x: float, y: float, size: float) -> None:
    """The QR code as vector squares: crisp at any zoom, no image library involved."""
    code = segno.make(data, error="m")
    matrix = code.matrix
    border = 2
    module = size / (len(matrix) + 2 * border)
    pdf.set_fill_color(0, 0, 0)
    for row, line in enumerate(matrix):
        for column, dark in enumerate(line):
            if dark:
                pdf.rect(x + (column + border) * module, y + (row + border) * module, module, module, style="F")
