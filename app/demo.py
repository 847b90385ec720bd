"""Deterministic synthetic patrones and avisos for `sia demo` and the benchmarks.

Every identifier is valid (check digits included, RFC homoclave rule included), so the loaders accept
the files as they are. The same seed and `hasta` give byte-identical files. A million avisos have to
come out in seconds, so everything that can be is drawn once into pools and tables, and the per-aviso
work is a handful of table lookups.
"""

import bisect
import csv
import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

# The blacklists are python-stdnum's (see app.identifiers); reused so demo names never hit them.
# The unchecked check-digit functions: inputs built here are well formed, and workers are drawn by the
# hundred thousand.
from app.catalogs import CATALOGOS, read_catalog_csv
from app.identifiers import _CURP_BLACKLIST, _RFC_BLACKLIST, _curp_dv, _nss_dv, _rfc_dv

__all__ = [
    "CLASE_POR_TIPO_AVISO",
    "DemoPatron",
    "demo_avisos",
    "demo_patrones",
    "inicio_periodo",
    "write_demo_files",
]

# The clase of each tipo de aviso, as the shipped catalog says (synthetic avisos use the shipped codes).
CLASE_POR_TIPO_AVISO = {row["codigo"]: row["clase"] for row in read_catalog_csv(CATALOGOS["tipos-aviso"])}

# Percent weights: retención most common, then modificación, then suspensión.
_PESO_TIPO_AVISO = {"01": 45, "02": 10, "03": 12, "04": 10, "05": 8, "06": 5, "07": 4, "08": 3, "10": 3}
# The first avisos of every file: one of each clase (and "10") as soon as there are three avisos.
_TIPOS_INICIALES = ("01", "03", "10", "02", "04", "06", "05", "07", "08")
# Suspensions by liquidation, cancellation or extension carry the matching credit status.
_ESTATUS_POR_TIPO = {"06": "LIQ", "07": "CAN", "08": "PRO"}
_PESO_TIPO_CREDITO = {"01": 60, "02": 15, "03": 10, "04": 10, "05": 5}
_PESO_TIPO_DESCUENTO = {"1": 30, "2": 25, "3": 45}

_RAZONES_SOCIALES = (
    "Constructora Maya del Sureste, S.A. de C.V.",
    "Servicios Industriales del Bajío, S.A. de C.V.",
    "Comercializadora Huasteca de Abarrotes, S. de R.L. de C.V.",
    "Transportes Refrigerados del Norte, S.A. de C.V.",
    "Alimentos Procesados de Occidente, S.A.P.I. de C.V.",
    "Manufacturas Textiles de Puebla, S.A. de C.V.",
    "Grupo Hotelero Caribe Mexicano, S.A. de C.V.",
    "Autopartes y Maquinados de Querétaro, S. de R.L. de C.V.",
    "Farmacias Populares del Centro, S.A. de C.V.",
    "Agroindustrias del Valle de Culiacán, S.P.R. de R.L.",
    "Limpieza y Mantenimiento Integral, S.A. de C.V.",
    "Tecnologías de Información Azteca, S.C.",
    "Minera Sierra Madre Oriental, S.A. de C.V.",
    "Panificadora La Espiga de Oro, S.A. de C.V.",
    "Seguridad Privada Águila Real, S.A. de C.V.",
    "Distribuidora Ferretera del Golfo, S.A. de C.V.",
    "Empacadora de Mariscos Bahía Kino, S.A. de C.V.",
    "Hospital General San Rafael de Monterrey, S.C.",
)
# Words the SAT skips when it takes a company's initials.
_PALABRAS_IGNORADAS = frozenset(("DE", "DEL", "LA", "LAS", "EL", "LOS", "Y", "EN", "CON", "PARA", "POR"))
_SIN_ACENTOS = str.maketrans("ÁÉÍÓÚÜ", "AEIOUU")

_APELLIDOS = (
    "GARCIA HERNANDEZ MARTINEZ LOPEZ GONZALEZ PEREZ RODRIGUEZ SANCHEZ RAMIREZ CRUZ FLORES GOMEZ "
    "MORALES VAZQUEZ JIMENEZ REYES DIAZ TORRES GUTIERREZ RUIZ MENDOZA AGUILAR ORTIZ MORENO CASTILLO "
    "ROMERO ALVAREZ MENDEZ CHAVEZ RIVERA JUAREZ RAMOS DOMINGUEZ HERRERA MEDINA CASTRO VARGAS GUZMAN "
    "VELAZQUEZ MUÑOZ ROJAS CONTRERAS SALAZAR LUNA ORTEGA SANTIAGO GUERRERO ESTRADA BAUTISTA CORTES "
    "SOTO ALVARADO ESPINOZA LARA AVILA RIOS CERVANTES SILVA DELGADO VEGA MARQUEZ SANDOVAL FERNANDEZ "
    "LEON CARRILLO MEJIA SOLIS NUÑEZ ROSAS VALDEZ IBARRA CAMPOS PEÑA MALDONADO NAVARRO ACOSTA PACHECO "
    "MIRANDA CABRERA CAMACHO CANUL PECH DZIB CHI BALAM CASTAÑEDA IBAÑEZ OCAÑA YAÑEZ"
).split()
_NOMBRES_H = (
    "JUAN|JOSE LUIS|MIGUEL ANGEL|JOSE|FRANCISCO|JESUS|ANTONIO|ALEJANDRO|PEDRO|CARLOS|MANUEL|FERNANDO|"
    "RICARDO|ROBERTO|JORGE|EDUARDO|RAFAEL|DANIEL|JAVIER|LUIS ALBERTO|SERGIO|MARTIN|ARTURO|RAUL|OSCAR|"
    "HECTOR|VICTOR MANUEL|ENRIQUE|GERARDO|ALFREDO|ARMANDO|IVAN|DIEGO|EMILIANO|SANTIAGO|ERICK|OMAR|"
    "JULIO CESAR|ANDRES|ISRAEL|JOSE ANTONIO|JUAN CARLOS|ISMAEL|NOE|ULISES"
).split("|")
_NOMBRES_M = (
    "MARIA GUADALUPE|MARIA|GUADALUPE|JUANA|MARGARITA|VERONICA|LETICIA|ROSA MARIA|FRANCISCA|TERESA|"
    "ALEJANDRA|PATRICIA|ELIZABETH|GABRIELA|ADRIANA|MARTHA|ANA KAREN|LAURA|SILVIA|CLAUDIA|YOLANDA|"
    "ARACELI|SANDRA|DIANA|FERNANDA|XIMENA|VALERIA|DANIELA|CITLALLI|ITZEL|MONICA|ALICIA|BEATRIZ|ROCIO|"
    "NORMA|LORENA|ERIKA|KARLA|NANCY|MARISOL|MARIA DEL CARMEN|BRENDA|ESTEFANIA|XOCHITL"
).split("|")
_ESTADOS = ("AS BC BS CC CL CM CS CH DF DG GT GR HG JC MC MN MS NT NL OC PL QT QR SP SL SR TC TS TL VZ YN ZS").split()
# Subdelegación prefixes for registros patronales (a letter and two digits, as on real NRPs).
_CLAVES_NRP = ("Y54", "Y60", "Y61", "E60", "E61", "A12", "B02", "C11", "D29", "F13", "G11", "H31", "R13")


@dataclass(frozen=True)
class DemoPatron:
    rfc: str
    razon_social: str
    nrps: tuple[str, ...]


# Every pair python-stdnum's homoclave rule allows before the check digit: [1-9A-V][1-9A-Z].
_HOMOCLAVES = tuple(a + b for a in "123456789ABCDEFGHIJKLMNOPQRSTUV" for b in "123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _iniciales(razon_social: str) -> str:
    """The three letters of a persona moral's RFC: initials of its first three significant words."""
    nombre = razon_social.split(",")[0].upper().translate(_SIN_ACENTOS)
    palabras = [p for p in nombre.split() if p.isalpha() and p not in _PALABRAS_IGNORADAS]
    if len(palabras) >= 3:
        return "".join(p[0] for p in palabras[:3])
    return ("".join(p[0] for p in palabras[:-1]) + palabras[-1])[:3].ljust(3, "X")


def demo_patrones(count: int = 4, seed: int = 2026) -> list[DemoPatron]:
    """count personas morales with 2 to 4 registros patronales each.

    Drawn one after the other from one generator, so a patron never depends on how many follow it.
    """
    rng = random.Random(f"{seed}:patrones")  # noqa: S311 - reproducible, not secret
    razones = list(_RAZONES_SOCIALES)
    rng.shuffle(razones)
    rfcs: set[str] = set()
    nrps_usados: set[str] = set()
    patrones = []
    for i in range(count):
        vuelta, base = divmod(i, len(razones))
        razon = razones[base]
        if vuelta:
            nombre, _, sociedad = razon.partition(", ")
            razon = f"{nombre} {vuelta + 1}, {sociedad}"
        constitucion = dt.date(1970, 1, 1) + dt.timedelta(days=rng.randrange(45 * 365))
        prefijo = _iniciales(razon) + constitucion.strftime("%y%m%d")
        rfc = ""
        while not rfc or rfc in rfcs:
            body = prefijo + rng.choice(_HOMOCLAVES)
            rfc = body + _rfc_dv(body)
        rfcs.add(rfc)
        clave = rng.choice(_CLAVES_NRP)
        nrps = []
        for _ in range(rng.randint(2, 4)):
            nrp = ""
            while not nrp or nrp in nrps_usados:
                # Most NRPs of one employer share its subdelegación; modalidad 10 is the ordinary one.
                if rng.random() < 0.3:
                    clave = rng.choice(_CLAVES_NRP)
                modalidad = "10" if rng.random() < 0.85 else "13"
                nrp = f"{clave}{rng.randrange(10000, 100000)}{modalidad}{rng.randrange(10)}"
            nrps_usados.add(nrp)
            nrps.append(nrp)
        patrones.append(DemoPatron(rfc=rfc, razon_social=razon, nrps=tuple(nrps)))
    return patrones


def _tabla(pesos: dict[str, int]) -> tuple[str, ...]:
    """A lookup table where each key appears as often as its weight: table[int(random() * len)]."""
    return tuple(k for k, peso in pesos.items() for _ in range(peso))


def _primera_vocal_interna(palabra: str) -> str:
    return next((c for c in palabra[1:] if c in "AEIOU"), "X")


def _primera_consonante_interna(palabra: str) -> str:
    c = next((c for c in palabra[1:] if c not in "AEIOU"), "X")
    return "X" if c == "Ñ" else c


def _nombre_efectivo(nombre: str) -> str:
    # RFC and CURP skip a leading JOSE or MARIA in compound given names.
    partes = nombre.split()
    if len(partes) > 1 and partes[0] in ("JOSE", "MARIA", "MA.", "J."):
        return partes[1] if partes[1] not in ("DE", "DEL") else partes[-1]
    return partes[0]


class _Trabajadores:
    """Draws workers: name, NSS, RFC and CURP that agree with each other, all with valid check digits."""

    def __init__(self, seed: int, hasta: dt.date) -> None:
        self.rng = random.Random(f"{seed}:trabajadores")  # noqa: S311
        self.nss_usados: set[str] = set()
        # Name fragments, worked out once: (text, RFC letters, first letter for CURP, CURP consonant).
        self.apellidos = [
            (a, a[0] + _primera_vocal_interna(a), a[0], _primera_consonante_interna(a)) for a in _APELLIDOS
        ]
        self.nombres = {
            sexo: [(n, _nombre_efectivo(n)[0], _primera_consonante_interna(_nombre_efectivo(n))) for n in lista]
            for sexo, lista in (("H", _NOMBRES_H), ("M", _NOMBRES_M))
        }
        # Birth dates of people roughly 18 to 65 years old at `hasta`, as (YYMMDD, year).
        primero = dt.date(hasta.year - 65, 1, 1)
        ultimo = dt.date(hasta.year - 18, 12, 31)
        self.nacimientos = [
            (d.strftime("%y%m%d"), d.year)
            for d in (primero + dt.timedelta(days=n) for n in range((ultimo - primero).days + 1))
        ]
        self.ultimo_anio = hasta.year
        self.tipos_credito = _tabla(_PESO_TIPO_CREDITO)
        self.tipos_descuento = _tabla(_PESO_TIPO_DESCUENTO)

    def nuevo(self) -> tuple[str, str, str, str, str, str, str]:
        """(nss, rfc, curp, nombre, numero_credito, tipo_credito, tipo_descuento)."""
        r = self.rng.random
        sexo = "H" if r() < 0.5 else "M"
        pat, pat_rfc, _, pat_cons = self.apellidos[int(r() * len(self.apellidos))]
        mat, _, mat_inicial, mat_cons = self.apellidos[int(r() * len(self.apellidos))]
        nombres = self.nombres[sexo]
        nombre, nom_inicial, nom_cons = nombres[int(r() * len(nombres))]
        yymmdd, anio = self.nacimientos[int(r() * len(self.nacimientos))]

        letras = pat_rfc + mat_inicial + nom_inicial
        # An offensive prefix gets an X: the SAT puts it in the fourth place, RENAPO in the second.
        rfc_letras = letras[:3] + "X" if letras in _RFC_BLACKLIST else letras
        rfc_body = rfc_letras + yymmdd + _HOMOCLAVES[int(r() * len(_HOMOCLAVES))]
        rfc = rfc_body + _rfc_dv(rfc_body)

        curp_letras = letras.replace("Ñ", "X")
        if curp_letras in _CURP_BLACKLIST:
            curp_letras = curp_letras[0] + "X" + curp_letras[2:]
        estado = _ESTADOS[int(r() * len(_ESTADOS))] if r() < 0.97 else "NE"
        # Differentiator: a digit for births before 2000, a letter from 2000 on; mostly the first one.
        diferenciador = ("0" if r() < 0.9 else "1") if anio < 2000 else ("A" if r() < 0.9 else "B")
        curp_body = curp_letras + yymmdd + sexo + estado + pat_cons + mat_cons + nom_cons + diferenciador
        curp = curp_body + _curp_dv(curp_body)

        # NSS: subdelegación, year of first registration (not before 16), birth year, consecutive number.
        alta = min(anio + 16 + int(r() * 10), self.ultimo_anio)
        nss = ""
        while not nss or nss in self.nss_usados:
            first10 = f"{1 + int(r() * 99):02d}{alta % 100:02d}{yymmdd[:2]}{int(r() * 10_000):04d}"
            nss = first10 + _nss_dv(first10)
        self.nss_usados.add(nss)

        credito = str(1_000_000_000 + int(r() * 9_000_000_000))
        tipo_credito = self.tipos_credito[int(r() * len(self.tipos_credito))]
        tipo_descuento = self.tipos_descuento[int(r() * len(self.tipos_descuento))]
        return nss, rfc, curp, f"{pat} {mat} {nombre}", credito, tipo_credito, tipo_descuento


def inicio_periodo(hasta: dt.date) -> dt.date:
    """First day of the demo period: six bimesters ending with the one holding `hasta` (up to `hasta`).

    Ending at `hasta` rather than at the previous bimester keeps the current bimester populated, which is
    what a payroll system asks for first, and never dates an aviso after `hasta` (loaders refuse those).
    """
    bimestre = (hasta.month - 1) // 2  # 0 = enero–febrero
    indice = hasta.year * 6 + bimestre - 5
    return dt.date(indice // 6, indice % 6 * 2 + 1, 1)


def demo_avisos(
    patrones: list[DemoPatron], count: int, *, seed: int = 2026, hasta: dt.date
) -> Iterator[dict[str, str]]:
    """count avisos for the patrones' NRPs, in emission order, dated over the six bimesters up to `hasta`.

    The first patron gets about 40 % of them. Workers come from a pool per NRP, so most workers get
    several avisos.
    """
    if count >= 10**8:
        raise ValueError("a demo data set holds at most 99,999,999 avisos (8 digits of the folio)")
    if not patrones:
        raise ValueError("demo_avisos needs at least one patron")
    rng = random.Random(f"{seed}:avisos")  # noqa: S311
    r = rng.random

    # Which NRP an aviso goes to: bisect a random number over cumulative weights.
    nrps = [(p.rfc, nrp) for p in patrones for nrp in p.nrps]
    pesos = []
    for i, p in enumerate(patrones):
        parte = 1.0 if len(patrones) == 1 else 0.4 if i == 0 else 0.6 / (len(patrones) - 1)
        pesos += [parte / len(p.nrps)] * len(p.nrps)
    acumulado = []
    total = 0.0
    for peso in pesos:
        total += peso
        acumulado.append(total)
    ultimo_nrp = len(nrps) - 1

    trabajadores = _Trabajadores(seed, hasta)
    tamano = max(5, count // (3 * len(nrps)))
    pools = [[trabajadores.nuevo() for _ in range(tamano)] for _ in nrps]

    tipos = _tabla(_PESO_TIPO_AVISO)
    desde = inicio_periodo(hasta)
    dias = (hasta - desde).days + 1
    fechas = [desde + dt.timedelta(days=n) for n in range(dias)]
    emision = [f.isoformat() for f in fechas]
    inicio = [(f + dt.timedelta(days=1)).isoformat() for f in fechas]
    anio = [f"{f.year:04d}" for f in fechas]

    for n in range(count):
        k = min(bisect.bisect(acumulado, r() * total), ultimo_nrp)
        rfc_patron, nrp = nrps[k]
        pool = pools[k]
        nss, rfc, curp, nombre, credito, tipo_credito, tipo_descuento = pool[int(r() * tamano)]
        tipo = _TIPOS_INICIALES[n] if n < len(_TIPOS_INICIALES) else tipos[int(r() * len(tipos))]
        estatus = _ESTATUS_POR_TIPO.get(tipo, "VIG")
        if tipo_descuento == "1":
            valor = f"{5 + int(r() * 51) * 0.5:.4f}"  # 5.0 to 30.0 in half points
        elif tipo_descuento == "2":
            centavos = 20_000 + int(r() * 480_001)
            valor = f"{centavos // 100}.{centavos % 100:02d}00"
        else:
            diezmilesimos = 50_000 + int(r() * 350_001)
            valor = f"{diezmilesimos // 10_000}.{diezmilesimos % 10_000:04d}"
        # Even spread over the period keeps the file in emission order, as folios are.
        d = n * dias // count
        yield {
            # The seed is part of the folio, so data sets made with other seeds can share a database.
            "folio": f"{anio[d]}{seed % 100:02d}{n + 1:08d}",
            "tipo_aviso": tipo,
            "rfc_patron": rfc_patron,
            "nrp": nrp,
            "nss": nss,
            "rfc_trabajador": rfc,
            "curp": curp,
            "nombre_trabajador": nombre,
            "numero_credito": credito,
            "tipo_credito": tipo_credito,
            "estatus_credito": estatus,
            "tipo_descuento": tipo_descuento,
            "valor_descuento": valor,
            "fecha_emision": emision[d],
            "fecha_inicio_descuento": inicio[d],
        }


def write_demo_files(
    out_dir: Path, *, avisos: int, patrones: int, seed: int = 2026, hasta: dt.date
) -> tuple[Path, Path]:
    """Write out_dir/patrones.csv (one row per NRP) and out_dir/avisos.ndjson; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lista = demo_patrones(patrones, seed)
    patrones_csv = out_dir / "patrones.csv"
    with patrones_csv.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("rfc", "razon_social", "nrp"))
        writer.writerows((p.rfc, p.razon_social, nrp) for p in lista for nrp in p.nrps)
    avisos_ndjson = out_dir / "avisos.ndjson"
    dumps = orjson.dumps
    nueva_linea = orjson.OPT_APPEND_NEWLINE
    with avisos_ndjson.open("wb", buffering=1 << 20) as f:
        f.writelines(dumps(a, option=nueva_linea) for a in demo_avisos(lista, avisos, seed=seed, hasta=hasta))
    return patrones_csv, avisos_ndjson
