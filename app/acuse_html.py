"""An acuse's verification page for a person holding the printed PDF (what its QR code opens): the facts the
acuse certifies, line by line, to compare with the paper, as SAT's CFDI verification does. Only what the acuse
itself prints about the parties (RFCs, names, NRPs, validity); never a worker's data, never the e-mail."""

from html import escape

from app.acuse_pdf import ETIQUETAS, TITULOS, _local, _value
from app.models import Acuse

# The masked e-mail of a password acuse is on the paper, but a page anyone with the QR can open leaves it out.
OMITIDOS = {"correo"}
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def render_verification_html(acuse: Acuse, sello: str) -> str:
    titulo = TITULOS.get(acuse.tipo, "Acuse")
    ordered = [k for k in ETIQUETAS if k in acuse.datos] + [k for k in acuse.datos if k not in ETIQUETAS]
    rows = [("Tipo", titulo), ("Folio", acuse.folio), ("Fecha y hora", _local(acuse.emitido_en))]
    rows += [(ETIQUETAS.get(k, k), _value(k, acuse.datos[k])) for k in ordered if k not in OMITIDOS]
    rows.append(("Final del sello", f"…{sello}"))
    cells = "\n".join(f"      <dt>{escape(label)}</dt><dd>{escape(value)}</dd>" for label, value in rows)
    return f"""<!doctype html>
<html lang="es-MX">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Verificación del acuse {escape(acuse.folio)} — SIA</title>
  <link rel="stylesheet" href="/portal/static/portal.css">
</head>
<body>
  <header class="barra">
    <div class="marca"><span class="logo" aria-hidden="true">SIA</span>
      <span>Verificación de acuses <small>Servicio de Intercomunicación de Avisos · Infonavit</small></span></div>
  </header>
  <main id="contenido">
    <p class="mensaje ok">Este acuse existe en el SIA y su sello coincide con el del código QR.</p>
    <h1>{escape(titulo)}</h1>
    <p>Compare cada renglón con el acuse impreso; si alguno difiere, el papel no es este acuse.</p>
    <dl class="datos tarjeta">
{cells}
    </dl>
    <p class="ayuda">El sello completo (JWS ES256) se verifica con las llaves públicas en /.well-known/jwks.json.</p>
  </main>
</body>
</html>
"""
