"""Identifier validation against the vectors of research/identifiers.md, plus the strictness rules."""

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.identifiers import (
    CURP,
    NRP,
    NSS,
    RFC,
    Folio,
    IdentifierError,
    NumeroCredito,
    check_curp,
    check_folio,
    check_nrp,
    check_nss,
    check_numero_credito,
    check_rfc,
    curp_check_digit,
    nss_check_digit,
    rfc_check_digit,
    rfc_warning,
)

# ------------------------------------------------------------------------------------------------ NSS


@pytest.mark.parametrize("nss", ["92919084431", "01067802825", "12345678903"])
def test_nss_valid(nss):
    assert check_nss(nss) == nss
    assert nss_check_digit(nss[:10]) == nss[10]


def test_nss_worked_example():
    # d1..d10 = 9 2 9 1 9 0 8 4 4 3 -> products 9 4 9 2 9 0 8 8 4 6, s = 59, DV = 1.
    assert nss_check_digit("9291908443") == "1"


@pytest.mark.parametrize(("first10", "dv"), [("0106780282", "5"), ("1234567890", "3"), ("5588671234", "2")])
def test_nss_check_digit(first10, dv):
    assert nss_check_digit(first10) == dv


def test_nss_bad_check_digit_names_the_expected_one():
    with pytest.raises(IdentifierError, match=r"^el dígito verificador del NSS debería ser 2$"):
        check_nss("55886712345")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("9291908443", "11 dígitos y tiene 10"),
        ("929190844310", "11 dígitos y tiene 12"),
        ("", "11 dígitos y tiene 0"),
        (" 92919084431", "espacios al inicio ni al final"),
        ("92919084431\n", "espacios al inicio ni al final"),
        ("9291908443A", "solo dígitos"),
        ("9291-908443", "espacios ni guiones"),
        ("９２９１９０８４４３１", "solo dígitos"),  # full-width digits are not ASCII digits
        (92919084431, "cadena de texto"),
        (None, "cadena de texto"),
    ],
)
def test_nss_bad_format(value, reason):
    with pytest.raises(IdentifierError, match=reason):
        check_nss(value)


@pytest.mark.parametrize("first10", ["929190844", "92919084431", "929190844A", ""])
def test_nss_check_digit_needs_ten_digits(first10):
    with pytest.raises(IdentifierError):
        nss_check_digit(first10)


# ------------------------------------------------------------------------------------------------ RFC

RFC_VALID = [
    "GODE561231GR8",
    "CACX7605101P8",
    "XIQB891116QE4",
    "GARJ7504168N4",
    "IAÑL750210963",
    "MAB9307148T4",
    "EKU9003173C9",
    "SAT970701NN3",
    "H&E951128469",
]


@pytest.mark.parametrize("rfc", RFC_VALID)
def test_rfc_valid(rfc):
    assert check_rfc(rfc) == rfc
    assert rfc_warning(rfc) is None
    assert rfc_check_digit(rfc[:-1]) == rfc[-1]


@pytest.mark.parametrize("rfc", ["XAXX010101000", "XEXX010101000"])
def test_rfc_generic_accepted_without_warning(rfc):
    assert check_rfc(rfc) == rfc
    assert rfc_warning(rfc) is None


def test_rfc_generic_national_fails_the_check_digit_it_is_exempt_from():
    assert rfc_check_digit("XAXX01010100") == "4"


def test_rfc_homoclave_rule_warning():
    # Check digit holds, but the homoclave has a 0 in second position.
    assert rfc_check_digit("CCM650122I0") == "6"
    assert check_rfc("CCM650122I06") == "CCM650122I06"
    warning = rfc_warning("CCM650122I06")
    assert warning is not None
    assert "homoclave" in warning
    assert "«I0»" in warning
    assert "dígito verificador" not in warning


@pytest.mark.parametrize(("rfc", "expected"), [("VACE460910SX6", "5"), ("SIN9311169P8", "2")])
def test_rfc_bad_check_digit_is_a_warning_naming_the_expected_digit(rfc, expected):
    assert check_rfc(rfc) == rfc  # format only: accepted
    assert rfc_check_digit(rfc[:-1]) == expected
    warning = rfc_warning(rfc)
    assert warning == (
        f"el dígito verificador del RFC no coincide (se esperaba {expected}); "
        "se acepta porque cerca del 1.5 % de los RFC reales no lo cumplen"
    )


def test_rfc_warning_reports_both_problems():
    body = "CCM650122I0"
    wrong = "7" if rfc_check_digit(body) != "7" else "8"
    warning = rfc_warning(body + wrong)
    assert warning is not None
    assert "se esperaba 6" in warning
    assert "homoclave" in warning


def test_rfc_date_valid_in_either_century():
    # 29 February 2000 exists (1900 did not have it); the RFC does not say which century it means.
    assert check_rfc("GODE000229GR8") == "GODE000229GR8"
    assert check_rfc("MAB0002298T4") == "MAB0002298T4"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("gode561231gr8", "mayúsculas"),
        ("GODE561231gR8", "mayúsculas"),
        ("IAñL750210963", "mayúsculas"),
        (" GODE561231GR8", "espacios al inicio ni al final"),
        ("GODE561231GR8 ", "espacios al inicio ni al final"),
        ("GODE561231GR89", "12 caracteres \\(persona moral\\) o 13 \\(persona física\\) y tiene 14"),
        ("GODE 561231 GR8", "y tiene 15"),
        ("GODE561231G", "y tiene 11"),
        ("GODE-561231GR", "espacios ni guiones"),
        ("G0DE561231GR8", "primeros 4 caracteres del RFC deben ser letras"),
        ("MA19307148T4", "primeros 3 caracteres del RFC deben ser letras"),
        ("GODE5612A1GR8", "caracteres 5 a 10 del RFC deben ser una fecha"),
        ("GODE561231G_8", "homoclave"),
        ("GODE561331GR8", "la fecha del RFC \\(caracteres 5 a 10\\) no existe"),  # month 13
        ("GODE561232GR8", "no existe"),  # day 32
        ("GODE560230GR8", "no existe"),  # 30 February
        ("GODE570229GR8", "no existe"),  # 29 February, neither 1957 nor 2057 is a leap year
        ("GODE560001GR8", "no existe"),  # month 00
        ("MAB9313148T4", "la fecha del RFC \\(caracteres 4 a 9\\) no existe"),
        ("MAB9306318T4", "no existe"),  # 31 June
        ("PUTO561231GR8", "palabra que el SAT no asigna"),
        (None, "cadena de texto"),
    ],
)
def test_rfc_bad_format(value, reason):
    with pytest.raises(IdentifierError, match=reason):
        check_rfc(value)


@pytest.mark.parametrize("body", ["GODE561231", "GODE561231GR8", "gode561231gr", "GODE 61231GR"])
def test_rfc_check_digit_needs_11_or_12_characters(body):
    with pytest.raises(IdentifierError):
        rfc_check_digit(body)


# ----------------------------------------------------------------------------------------------- CURP

CURP_VALID = [
    "HEGG560427MVZRRL04",
    "BEML920313HMCLNS09",
    "PEGL890909MJCRMS08",
    "BOXW310820HNERXN09",
    "XIQB891116MGRMZR05",
    "CACX760510MGTSHC04",
    "GARJ750416HDFRVR09",
    "FEPM890204HASRRN08",
]


def _with_dv(first17: str) -> str:
    return first17 + curp_check_digit(first17)


@pytest.mark.parametrize("curp", CURP_VALID)
def test_curp_valid(curp):
    assert check_curp(curp) == curp
    assert curp_check_digit(curp[:17]) == curp[17]


@pytest.mark.parametrize(("curp", "expected"), [("BOXW310820HNERXN08", "9"), ("PEGL890909MJCRMS09", "8")])
def test_curp_bad_check_digit_names_the_expected_one(curp, expected):
    assert curp_check_digit(curp[:17]) == expected
    with pytest.raises(IdentifierError, match=f"^el dígito verificador de la CURP debería ser {expected}$"):
        check_curp(curp)


def test_curp_century_comes_from_the_differentiator():
    # A digit means born in the 1900s: 29 February 1900 never existed; a letter means 2000, a leap year.
    with pytest.raises(IdentifierError, match="no existe"):
        check_curp(_with_dv("BOXW000229HNERXN0"))
    leap = _with_dv("BOXW000229HNERXNA")
    assert check_curp(leap) == leap


@pytest.mark.parametrize(
    ("first17", "reason"),
    [
        ("BOXW990230HNERXN0", "la fecha de nacimiento de la CURP \\(caracteres 5 a 10\\) no existe"),
        ("BOXW310931HNERXN0", "no existe"),  # 31 September
        ("BOXW311320HNERXN0", "la fecha de nacimiento de la CURP"),  # month 13
        ("BOXW310820HXXRXN0", "«XX» no es una clave de entidad"),
        ("BOXW310820HMXRXN0", "«MX» no es una clave de entidad"),
        ("BOXW310820XNERXN0", "sexo\\) debe ser H o M"),
        ("BBXW310820HNERXN0", "el segundo una vocal o X"),
        ("B0XW310820HNERXN0", "caracteres 1 a 4"),
        ("BOXW3108A0HNERXN0", "caracteres 5 a 10 de la CURP deben ser la fecha"),
        ("BOXW310820HNEAXN0", "caracteres 14 a 16 de la CURP deben ser consonantes"),
        ("BOXW310820HNERXN_", "carácter 17"),
        ("PUTO310820HNERXN0", "palabra que RENAPO no asigna"),
    ],
)
def test_curp_bad_content(first17, reason):
    # Computed check digits, so each value fails only for the reason under test.
    value = first17 + "0" if "_" in first17 else _with_dv(first17)
    with pytest.raises(IdentifierError, match=reason):
        check_curp(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("boxw310820hnerxn09", "mayúsculas"),
        ("BOXW310820HNERXN0", "18 caracteres y tiene 17"),
        ("BOXW310820HNERXN099", "18 caracteres y tiene 19"),
        (" BOXW310820HNERXN09", "espacios al inicio ni al final"),
        ("BOXW310820HNERXN0A", "último carácter de la CURP"),
        ("BOXW 10820HNERXN09", "espacios ni guiones"),
        (None, "cadena de texto"),
    ],
)
def test_curp_bad_format(value, reason):
    with pytest.raises(IdentifierError, match=reason):
        check_curp(value)


@pytest.mark.parametrize("first17", ["BOXW310820HNERXN", "BOXW310820HNERXN09", "boxw310820hnerxn0"])
def test_curp_check_digit_needs_17_characters(first17):
    with pytest.raises(IdentifierError):
        curp_check_digit(first17)


# --------------------------------------------------------------------------- NRP, crédito and folio


@pytest.mark.parametrize("nrp", ["Y5412345101", "E6010293103", "12345678901", "A0010000010"])
def test_nrp_valid(nrp):
    assert check_nrp(nrp) == nrp


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("y5412345101", "mayúsculas"),
        ("Y541234510", "11 caracteres y tiene 10"),
        ("Y54123451011", "11 caracteres y tiene 12"),
        ("Y5402345101", "carácter 4 del NRP no puede ser 0"),
        ("YA412345101", "empezar con una letra o un dígito seguido de dos dígitos"),
        ("Y54123451A1", "caracteres 4 a 11 del NRP deben ser dígitos"),
        ("Y54 1234510", "espacios ni guiones"),
        (" Y5412345101", "espacios al inicio ni al final"),
        (None, "cadena de texto"),
    ],
)
def test_nrp_bad(value, reason):
    with pytest.raises(IdentifierError, match=reason):
        check_nrp(value)


@pytest.mark.parametrize("value", ["1234567890", "0000000001"])
def test_numero_credito_valid(value):
    assert check_numero_credito(value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("123456789", "10 dígitos y tiene 9"),
        ("12345678901", "10 dígitos y tiene 11"),
        ("12345678A0", "solo dígitos"),
        (" 123456789", "espacios al inicio ni al final"),
        ("          ", "espacios al inicio ni al final"),  # SUA's blank credit number
        (1234567890, "cadena de texto"),
    ],
)
def test_numero_credito_bad(value, reason):
    with pytest.raises(IdentifierError, match=reason):
        check_numero_credito(value)


@pytest.mark.parametrize("value", ["20250000000001", "ABCDEFGHIJKLMN", "2026A00000000Z"])
def test_folio_valid(value):
    assert check_folio(value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2025000000001", "14 caracteres y tiene 13"),
        ("202500000000001", "14 caracteres y tiene 15"),
        ("20250000000a01", "mayúsculas"),
        ("2025-000000001", "espacios ni guiones"),
        ("2025000000000Ñ", "solo letras mayúsculas sin acentos y dígitos"),
        ("20250000000001 ", "espacios al inicio ni al final"),
    ],
)
def test_folio_bad(value, reason):
    with pytest.raises(IdentifierError, match=reason):
        check_folio(value)


# ------------------------------------------------------------------------------------ pydantic types

TYPES = [
    (NSS, "92919084431", "55886712345", "debería ser 2"),
    (CURP, "BOXW310820HNERXN09", "BOXW310820HNERXN08", "debería ser 9"),
    (RFC, "GODE561231GR8", "GODE561331GR8", "no existe"),
    (NRP, "Y5412345101", "Y5402345101", "no puede ser 0"),
    (NumeroCredito, "1234567890", "123456789", "10 dígitos"),
    (Folio, "20250000000001", "20250000000a01", "mayúsculas"),
]


@pytest.mark.parametrize(("annotated", "good", "bad", "reason"), TYPES)
def test_pydantic_types(annotated, good, bad, reason):
    adapter = TypeAdapter(annotated)
    assert adapter.validate_python(good) == good
    with pytest.raises(ValidationError, match=reason):
        adapter.validate_python(bad)
    schema = adapter.json_schema()
    assert schema["type"] == "string"
    assert "pattern" in schema


def test_pydantic_rfc_accepts_bad_check_digit():
    # A check-digit mismatch is a warning for the loaders, never a validation error.
    assert TypeAdapter(RFC).validate_python("VACE460910SX6") == "VACE460910SX6"


def test_pydantic_model_reports_the_field():
    class Consulta(BaseModel):
        nss: NSS

    with pytest.raises(ValidationError) as info:
        Consulta(nss="55886712345")
    (error,) = info.value.errors()
    assert error["loc"] == ("nss",)
    assert "el dígito verificador del NSS debería ser 2" in error["msg"]
    with pytest.raises(ValidationError):
        Consulta(nss=92919084431)  # no silent conversion from int
