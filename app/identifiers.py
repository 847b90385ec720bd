"""Strict validation of the Mexican identifiers an aviso carries (NSS, CURP, RFC, NRP, crédito, folio).

Spec and test vectors: research/identifiers.md. Values are never normalized: lowercase letters or
surrounding spaces are errors, because a loader that silently fixes them would store something other
than what Infonavit sent. Loaders call these functions for every row of million-row files, hence the
precompiled patterns, lookup tables and the happy path free of string building.
"""

import datetime as dt
import re
from operator import mul
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

__all__ = [
    "BIGINT_MAXIMO",
    "CURP",
    "NRP",
    "NSS",
    "RFC",
    "Fecha",
    "FechaHora",
    "FechaHoraISO",
    "Folio",
    "IdentifierError",
    "NumeroCredito",
    "check_curp",
    "check_folio",
    "check_nrp",
    "check_nss",
    "check_numero_credito",
    "check_rfc",
    "curp_check_digit",
    "has_control_characters",
    "nss_check_digit",
    "rfc_check_digit",
    "rfc_warning",
]


class IdentifierError(ValueError):
    """Carries a Spanish reason a person can act on, e.g. 'el dígito verificador del NSS debería ser 2'."""


# Valid MMDD pairs; 29 February is allowed here and settled against the year separately.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MMDD = frozenset(f"{m:02d}{d:02d}" for m, days in enumerate(_MONTH_DAYS, 1) for d in range(1, days + 1))


def _valid_yymmdd(yymmdd: str, century: int | None) -> bool:
    """Whether six ASCII digits are a real date; century None means "valid as 19YY or 20YY"."""
    mmdd = yymmdd[2:]
    if mmdd not in _MMDD:
        return False
    if mmdd != "0229":
        return True
    yy = int(yymmdd[:2])
    if century is None:
        # Every 19YY leap year is also a 20YY leap year (2000 is one, 1900 is not), so 20YY decides.
        return yy % 4 == 0
    year = century + yy
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _general_reason(value: object, label: str, lengths: tuple[int, ...], expected: str) -> str:
    """Why a value that failed its pattern is wrong, for problems every identifier shares; "" if none.

    expected describes the length ("11 dígitos"); a value of only digits gets the digit-only message.
    """
    if not isinstance(value, str):
        return f"{label} debe ser una cadena de texto"
    if value != value.strip():
        return f"{label} no debe llevar espacios al inicio ni al final"
    if value != value.upper():
        return f"{label} debe escribirse en mayúsculas"
    if len(value) not in lengths:
        return f"{label} debe tener {expected} y tiene {len(value)}"
    if " " in value or "-" in value:
        return f"{label} no debe llevar espacios ni guiones"
    if expected.endswith("dígitos"):
        return f"{label} debe tener solo dígitos (0 a 9)"
    return ""


# --- NSS (identifiers.md §1) -------------------------------------------------------------------------

_NSS_RE = re.compile(r"[0-9]{11}")
_NSS_FIRST10_RE = re.compile(r"[0-9]{10}")
# Luhn variant: weight 1 on odd positions (1-based), 2 on even ones, products above 9 reduced by 9.
_NSS_W1 = {str(d): d for d in range(10)}
_NSS_W2 = {str(d): 2 * d - 9 if d > 4 else 2 * d for d in range(10)}


def _nss_dv(first10: str) -> str:
    s = sum(map(_NSS_W1.__getitem__, first10[0::2])) + sum(map(_NSS_W2.__getitem__, first10[1::2]))
    return str(-s % 10)


def nss_check_digit(first10: str) -> str:
    """The NSS check digit for its first 10 digits."""
    if not isinstance(first10, str) or not _NSS_FIRST10_RE.fullmatch(first10):
        raise IdentifierError("para calcular el dígito verificador del NSS se necesitan sus 10 primeros dígitos")
    return _nss_dv(first10)


def check_nss(value: str) -> str:
    """Return value if it is a valid NSS (11 digits, check digit enforced); raise IdentifierError if not."""
    try:
        ok = _NSS_RE.fullmatch(value)
    except TypeError:
        ok = None
    if not ok:
        raise IdentifierError(_general_reason(value, "el NSS", (11,), "11 dígitos"))
    dv = _nss_dv(value[:10])
    if value[10] != dv:
        raise IdentifierError(f"el dígito verificador del NSS debería ser {dv}")
    return value


# --- CURP (identifiers.md §4) ------------------------------------------------------------------------

_CURP_STATES = "AS BC BS CC CH CL CM CS DF DG GR GT HG JC MC MN MS NE NL NT OC PL QR QT SL SP SR TC TL TS VZ YN ZS"
_CURP_STATE_SET = frozenset(_CURP_STATES.split())
# python-satcfdi's pattern (satcfdi/models/curp.py) with the state list expanded.
_CURP_RE = re.compile(
    r"[A-Z][AEIOUX][A-Z]{2}[0-9]{2}(?:0[1-9]|1[012])(?:0[1-9]|[12][0-9]|3[01])[MH]"
    rf"(?:{_CURP_STATES.replace(' ', '|')})"
    r"[BCDFGHJ-NP-TV-Z]{3}[0-9A-Z][0-9]"
)
_CURP_FIRST17_RE = re.compile(r"[0-9A-ZÑ]{17}")
_CURP_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ")}
_CURP_WEIGHTS = tuple(range(18, 1, -1))
# Offensive 4-letter prefixes that RENAPO never assigns. Source: arthurdejong/python-stdnum,
# stdnum/mx/curp.py (_name_blacklist), LGPL-2.1+.
_CURP_BLACKLIST = frozenset(
    """
    BACA BAKA BUEI BUEY CACA CACO CAGA CAGO CAKA CAKO COGE COGI COJA COJE
    COJI COJO COLA CULO FALO FETO GETA GUEI GUEY JETA JOTO KACA KACO KAGA
    KAGO KAKA KAKO KOGE KOGI KOJA KOJE KOJI KOJO KOLA KULO LILO LOCA LOCO
    LOKA LOKO MAME MAMO MEAR MEAS MEON MIAR MION MOCO MOKO MULA MULO NACA
    NACO PEDA PEDO PENE PIPI PITO POPO PUTA PUTO QULO RATA ROBA ROBE ROBO
    RUIN SENO TETA VACA VAGA VAGO VAKA VUEI VUEY WUEI WUEY
    """.split()
)


def _curp_dv(first17: str) -> str:
    return str(-sum(map(mul, map(_CURP_VALUES.__getitem__, first17), _CURP_WEIGHTS)) % 10)


def curp_check_digit(first17: str) -> str:
    """The CURP check digit for its first 17 characters."""
    if not isinstance(first17, str) or not _CURP_FIRST17_RE.fullmatch(first17):
        raise IdentifierError(
            "para calcular el dígito verificador de la CURP se necesitan sus 17 primeros caracteres "
            "(letras mayúsculas y dígitos)"
        )
    return _curp_dv(first17)


# Only used to explain a CURP that failed _CURP_RE, so speed does not matter here.
_CURP_PARTS = (
    (
        re.compile(r"[A-Z][AEIOUX][A-Z]{2}"),
        0,
        4,
        "los caracteres 1 a 4 de la CURP deben ser letras y el segundo una vocal o X",
    ),
    (
        re.compile(r"[0-9]{6}"),
        4,
        10,
        "los caracteres 5 a 10 de la CURP deben ser la fecha de nacimiento en dígitos (AAMMDD)",
    ),
    (re.compile(r"[HM]"), 10, 11, "el carácter 11 de la CURP (sexo) debe ser H o M"),
    (
        re.compile(r"[A-Z]{2}"),
        11,
        13,
        "los caracteres 12 y 13 de la CURP deben ser la clave de la entidad de nacimiento",
    ),
    (
        re.compile(r"[BCDFGHJ-NP-TV-Z]{3}"),
        13,
        16,
        "los caracteres 14 a 16 de la CURP deben ser consonantes",
    ),
    (re.compile(r"[0-9A-Z]"), 16, 17, "el carácter 17 de la CURP debe ser una letra o un dígito"),
    (re.compile(r"[0-9]"), 17, 18, "el último carácter de la CURP (dígito verificador) debe ser un dígito"),
)


def _curp_reason(value: object) -> str:
    reason = _general_reason(value, "la CURP", (18,), "18 caracteres")
    if reason or not isinstance(value, str):
        return reason
    for pattern, start, end, message in _CURP_PARTS:
        if not pattern.fullmatch(value, start, end):
            return message
    if value[11:13] not in _CURP_STATE_SET:
        return f"«{value[11:13]}» no es una clave de entidad de nacimiento válida en la CURP"
    return "la fecha de nacimiento de la CURP (caracteres 5 a 10) no es válida"


def check_curp(value: str) -> str:
    """Return value if it is a valid CURP (format, birth date, state, check digit); raise otherwise."""
    try:
        ok = _CURP_RE.fullmatch(value)
    except TypeError:
        ok = None
    if not ok:
        raise IdentifierError(_curp_reason(value))
    # The differentiator tells the century: a digit for births before 2000, a letter from 2000 on.
    if not _valid_yymmdd(value[4:10], 1900 if value[16] <= "9" else 2000):
        raise IdentifierError("la fecha de nacimiento de la CURP (caracteres 5 a 10) no existe")
    if value[:4] in _CURP_BLACKLIST:
        raise IdentifierError("las cuatro primeras letras de la CURP forman una palabra que RENAPO no asigna")
    dv = _curp_dv(value[:17])
    if value[17] != dv:
        raise IdentifierError(f"el dígito verificador de la CURP debería ser {dv}")
    return value


# --- RFC (identifiers.md §3) -------------------------------------------------------------------------

# 3 letters: persona moral (12 characters); 4 letters: persona física (13). The digits that follow
# keep the two apart, so one pattern serves both.
_RFC_RE = re.compile(r"[A-Z&Ñ]{3,4}[0-9]{6}[0-9A-Z]{3}")
_RFC_BODY_RE = re.compile(r"[0-9A-Z&Ñ]{11,12}")
_RFC_GENERIC = frozenset(("XAXX010101000", "XEXX010101000"))
_RFC_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ Ñ")}
_RFC_WEIGHTS_12 = tuple(range(13, 1, -1))
_RFC_WEIGHTS_11 = _RFC_WEIGHTS_12[1:]
_RFC_MORAL_PAD = 37 * 13  # the leading space that pads a moral RFC to 12 characters
_RFC_DV = "0123456789A"
# Homoclave rule (python-stdnum _check_digits_re) without its third character, the check digit,
# which the check-digit test covers.
_RFC_HOMOCLAVE_1 = frozenset("123456789ABCDEFGHIJKLMNOPQRSTUV")
_RFC_HOMOCLAVE_2 = frozenset("123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Offensive 4-letter prefixes the SAT never assigns to a persona física. Source:
# arthurdejong/python-stdnum, stdnum/mx/rfc.py (_name_blacklist), LGPL-2.1+.
_RFC_BLACKLIST = frozenset(
    """
    BUEI BUEY CACA CACO CAGA CAGO CAKA CAKO COGE COJA COJE COJI COJO CULO FETO
    GUEY JOTO KACA KACO KAGA KAGO KAKA KOGE KOJO KULO MAME MAMO MEAR MEAS MEON
    MION MOCO MULA PEDA PEDO PENE PUTA PUTO QULO RATA RUIN
    """.split()
)


def _rfc_dv(body: str) -> str:
    if len(body) == 11:
        s = _RFC_MORAL_PAD + sum(map(mul, map(_RFC_VALUES.__getitem__, body), _RFC_WEIGHTS_11))
    else:
        s = sum(map(mul, map(_RFC_VALUES.__getitem__, body), _RFC_WEIGHTS_12))
    return _RFC_DV[-s % 11]


def rfc_check_digit(rfc_without_last: str) -> str:
    """The RFC check digit for its first 11 (persona moral) or 12 (persona física) characters."""
    if not isinstance(rfc_without_last, str) or not _RFC_BODY_RE.fullmatch(rfc_without_last):
        raise IdentifierError(
            "para calcular el dígito verificador del RFC se necesitan sus primeros 11 caracteres "
            "(persona moral) o 12 (persona física)"
        )
    return _rfc_dv(rfc_without_last)


def _rfc_reason(value: object) -> str:
    reason = _general_reason(value, "el RFC", (12, 13), "12 caracteres (persona moral) o 13 (persona física)")
    if reason or not isinstance(value, str):
        return reason
    letters = len(value) - 9
    if not re.fullmatch(r"[A-Z&Ñ]+", value[:letters]):
        return f"los primeros {letters} caracteres del RFC deben ser letras"
    if not re.fullmatch(r"[0-9]{6}", value[letters : letters + 6]):
        return f"los caracteres {letters + 1} a {letters + 6} del RFC deben ser una fecha en dígitos (AAMMDD)"
    if not re.fullmatch(r"[0-9A-Z]{3}", value[-3:]):
        return "los tres últimos caracteres del RFC (homoclave) deben ser letras o dígitos"
    return f"la fecha del RFC (caracteres {letters + 1} a {letters + 6}) no existe"


def check_rfc(value: str) -> str:
    """Return value if it is a well-formed RFC; raise IdentifierError otherwise.

    Format only: the check digit is left to rfc_warning because about 1.5 % of real RFCs fail it.
    """
    try:
        ok = _RFC_RE.fullmatch(value)
    except TypeError:
        ok = None
    if not ok:
        raise IdentifierError(_rfc_reason(value))
    if len(value) == 13:
        if not _valid_yymmdd(value[4:10], None):
            raise IdentifierError("la fecha del RFC (caracteres 5 a 10) no existe")
        if value[:4] in _RFC_BLACKLIST:
            raise IdentifierError("las cuatro primeras letras del RFC forman una palabra que el SAT no asigna")
    elif not _valid_yymmdd(value[3:9], None):
        raise IdentifierError("la fecha del RFC (caracteres 4 a 9) no existe")
    return value


def rfc_warning(value: str) -> str | None:
    """For an RFC that passed check_rfc: None if homoclave and check digit hold, else a Spanish warning."""
    if value in _RFC_GENERIC:
        return None
    try:
        dv = _rfc_dv(value[:-1])
    except KeyError:
        raise IdentifierError("el RFC no tiene un formato válido; revíselo con check_rfc") from None
    dv_ok = value[-1] == dv
    homoclave_ok = value[-3] in _RFC_HOMOCLAVE_1 and value[-2] in _RFC_HOMOCLAVE_2
    if dv_ok and homoclave_ok:
        return None
    problems = []
    if not dv_ok:
        problems.append(f"el dígito verificador del RFC no coincide (se esperaba {dv})")
    if not homoclave_ok:
        problems.append(
            f"la homoclave del RFC («{value[-3:-1]}») no sigue la regla del SAT "
            "(primer carácter 1–9 o A–V, segundo 1–9 o A–Z)"
        )
    if dv_ok:
        return f"{problems[0]}; se acepta, pero conviene confirmar el RFC"
    return "; ".join(problems) + "; se acepta porque cerca del 1.5 % de los RFC reales no lo cumplen"


# --- NRP, número de crédito, folio (identifiers.md §2, §5, §6): format only ---------------------------

# No public source gives the NRP check-digit algorithm, so only the shape is checked.
_NRP_RE = re.compile(r"[A-Z0-9][0-9]{2}[1-9][0-9]{5}[0-9]{2}")
_NUMERO_CREDITO_RE = re.compile(r"[0-9]{10}")
_FOLIO_RE = re.compile(r"[0-9A-Z]{14}")


def check_nrp(value: str) -> str:
    """Return value if it is a well-formed registro patronal (NRP); raise IdentifierError otherwise."""
    try:
        ok = _NRP_RE.fullmatch(value)
    except TypeError:
        ok = None
    if not ok:
        reason = _general_reason(value, "el NRP", (11,), "11 caracteres")
        if not reason and isinstance(value, str):
            if not re.fullmatch(r"[A-Z0-9][0-9]{2}", value[:3]):
                reason = "el NRP debe empezar con una letra o un dígito seguido de dos dígitos"
            elif not re.fullmatch(r"[0-9]{8}", value[3:]):
                reason = "los caracteres 4 a 11 del NRP deben ser dígitos"
            else:
                reason = "el carácter 4 del NRP no puede ser 0"
        raise IdentifierError(reason)
    return value


def check_numero_credito(value: str) -> str:
    """Return value if it is a well-formed número de crédito Infonavit (10 digits); raise otherwise."""
    try:
        ok = _NUMERO_CREDITO_RE.fullmatch(value)
    except TypeError:
        ok = None
    if not ok:
        raise IdentifierError(_general_reason(value, "el número de crédito", (10,), "10 dígitos"))
    return value


def check_folio(value: str) -> str:
    """Return value if it is a well-formed folio de aviso (14 capital letters or digits); raise otherwise."""
    try:
        ok = _FOLIO_RE.fullmatch(value)
    except TypeError:
        ok = None
    if not ok:
        raise IdentifierError(
            _general_reason(value, "el folio", (14,), "14 caracteres")
            or "el folio debe tener solo letras mayúsculas sin acentos y dígitos"
        )
    return value


# --- pydantic types ----------------------------------------------------------------------------------


def _schema(pattern: str, min_length: int, max_length: int) -> WithJsonSchema:
    # Documentation only: a Field(pattern=...) would reject first, with pydantic's English message.
    return WithJsonSchema({"type": "string", "pattern": pattern, "minLength": min_length, "maxLength": max_length})


NSS = Annotated[str, AfterValidator(check_nss), _schema("^[0-9]{11}$", 11, 11)]
CURP = Annotated[str, AfterValidator(check_curp), _schema("^[A-Z]{4}[0-9]{6}[HM][A-Z]{5}[0-9A-Z][0-9]$", 18, 18)]
RFC = Annotated[str, AfterValidator(check_rfc), _schema("^[A-Z&Ñ]{3,4}[0-9]{6}[0-9A-Z]{3}$", 12, 13)]
NRP = Annotated[str, AfterValidator(check_nrp), _schema("^[A-Z0-9][0-9]{2}[1-9][0-9]{7}$", 11, 11)]
NumeroCredito = Annotated[str, AfterValidator(check_numero_credito), _schema("^[0-9]{10}$", 10, 10)]
Folio = Annotated[str, AfterValidator(check_folio), _schema("^[0-9A-Z]{14}$", 14, 14)]


# Dates in query strings and bodies: ISO 8601 text only. Pydantic would otherwise read "0" as 1970-01-01.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?$")

# The dates and instants any request may name. Wide enough for every aviso, relación and audit query; narrow enough
# that an offset of -12:00 or +14:00, or the conversion to UTC, never leaves Python's datetime (years 1 to 9999),
# which was a 500 for `9999-12-31T23:59:59` in Mexico City's time.
FECHA_MINIMA = dt.date(1900, 1, 1)
FECHA_MAXIMA = dt.date(2199, 12, 31)
_INSTANTE_MINIMO = dt.datetime.combine(FECHA_MINIMA, dt.time(), dt.UTC)
_INSTANTE_TOPE = dt.datetime.combine(FECHA_MAXIMA + dt.timedelta(days=1), dt.time(), dt.UTC)
_FUERA_DE_RANGO = f"debe estar entre {FECHA_MINIMA.isoformat()} y {FECHA_MAXIMA.isoformat()}"
# A time without zone is Mexico City's: the employer's and Infonavit's clock.
MEXICO = ZoneInfo("America/Mexico_City")
# PostgreSQL's bigint: a larger integer cannot be compared with an id column and was a 500.
BIGINT_MAXIMO = 2**63 - 1


def _iso_text(pattern: re.Pattern[str], example: str) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, str) and not pattern.match(value):
            raise IdentifierError(f"debe ser una fecha ISO 8601, p. ej. {example}")
        if isinstance(value, int | float):
            raise IdentifierError(f"debe ser una fecha ISO 8601, p. ej. {example}")
        return value

    return BeforeValidator(check)


def _date_in_range(value: dt.date) -> dt.date:
    if not FECHA_MINIMA <= value <= FECHA_MAXIMA:
        raise IdentifierError(_FUERA_DE_RANGO)
    return value


def _instant_in_utc(value: dt.datetime) -> dt.datetime:
    """The instant in UTC, converted here so that no later step (SQL, arithmetic) meets an overflow."""
    try:
        utc = (value.replace(tzinfo=MEXICO) if value.tzinfo is None else value).astimezone(dt.UTC)
    except OverflowError:  # past datetime.max or before datetime.min once in UTC
        raise IdentifierError(_FUERA_DE_RANGO) from None
    if not _INSTANTE_MINIMO <= utc < _INSTANTE_TOPE:
        raise IdentifierError(_FUERA_DE_RANGO)
    return utc


Fecha = Annotated[dt.date, _iso_text(_ISO_DATE, "2026-11-24"), AfterValidator(_date_in_range)]
FechaHoraISO = Annotated[dt.datetime, _iso_text(_ISO_DATETIME, "2026-11-24T09:30:00-06:00")]
# What a request's date and time is: ISO 8601 text, Mexico City's time when it names no zone, inside the range,
# already in UTC.
FechaHora = Annotated[FechaHoraISO, AfterValidator(_instant_in_utc)]


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control_characters(value: str) -> bool:
    """Free text from a request (a form field, a password) that PostgreSQL or a log line must not receive: NUL is
    refused by PostgreSQL's text type (a 500 once), the rest forges lines and terminals."""
    return _CONTROL.search(value) is not None
