"""e.firma (SAT's FIEL): reading the certificate, telling it from a CSD, validating it against the
configured SAT trust anchors at a given time, and verifying a signature made with its key.

Every failure is an EfirmaError with a stable code and a Spanish detail a person can act on."""

import base64
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

log = logging.getLogger(__name__)

X500_UNIQUE_IDENTIFIER = "2.5.4.45"  # SAT puts the RFC here ("RFC / RFC of the legal representative")
SERIAL_NUMBER = "2.5.4.5"  # and the CURP here (" / CURP of the representative" for a persona moral)
ORGANIZATIONAL_UNIT = "2.5.4.11"  # present in CSDs (the branch), absent in e.firmas
COMMON_NAME = "2.5.4.3"
NAME = "2.5.4.41"
ORGANIZATION = "2.5.4.10"


# The problem codes an e.firma can fail with: a subset of app.problems.ProblemCode, which this module does not
# import (security primitives know no HTTP). mypy proves the subset where credenciales turns one into a Problem.
EfirmaCode = Literal[
    "certificado_ilegible",
    "certificado_no_es_efirma",
    "certificado_vencido",
    "certificado_aun_no_vigente",
    "cadena_no_confiable",
    "rfc_no_coincide",
    "certificado_revocado",
    "revocacion_no_verificable",
    "firma_invalida",
    "llave_ilegible",
]


class EfirmaError(Exception):
    def __init__(self, code: EfirmaCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class EfirmaIdentity:
    rfc: str
    rfc_representante: str | None
    curp: str | None
    nombre: str | None
    numero_certificado: str
    valido_desde: dt.datetime
    valido_hasta: dt.datetime
    es_fiel: bool


# ------------------------------------------------------------------ reading


def parse_certificate(data: bytes) -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise EfirmaError(
            "certificado_ilegible",
            "El certificado no se pudo leer. Envíe en base64 el archivo .cer de su e.firma (DER o PEM).",
        ) from None


def _subject_attributes(cert: x509.Certificate) -> dict[str, list[str]]:
    try:
        attributes: dict[str, list[str]] = {}
        for attribute in cert.subject:
            value = attribute.value if isinstance(attribute.value, str) else attribute.value.decode("latin-1")
            attributes.setdefault(attribute.oid.dotted_string, []).append(value)
        return attributes
    except ValueError:
        # Some real SAT subjects are T61String holding Latin-1 bytes, which `cryptography` cannot parse.
        return _subject_attributes_from_der(cert.tbs_certificate_bytes)


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at pos."""
    tag, length = data[pos], data[pos + 1]
    header = 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
        header += count
    return tag, pos + header, pos + header + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items, pos = [], start
    while pos < end:
        item = _tlv(data, pos)
        items.append(item)
        pos = item[2]
    return items


def _oid(encoded: bytes) -> str:
    first, parts, value = encoded[0], [], 0
    parts += [str(first // 40), str(first % 40)]
    for byte in encoded[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(str(value))
            value = 0
    return ".".join(parts)


_STRING_DECODINGS = {0x0C: "utf-8", 0x13: "ascii", 0x14: "latin-1", 0x16: "ascii", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}


def _subject_attributes_from_der(tbs: bytes) -> dict[str, list[str]]:
    _, start, end = _tlv(tbs, 0)
    fields = _children(tbs, start, end)
    if fields and fields[0][0] == 0xA0:  # explicit version
        fields = fields[1:]
    _, subject_start, subject_end = fields[4]  # serial, signature, issuer, validity, subject
    attributes: dict[str, list[str]] = {}
    for _, set_start, set_end in _children(tbs, subject_start, subject_end):
        for _, pair_start, pair_end in _children(tbs, set_start, set_end):
            (_, oid_start, oid_end), (tag, value_start, value_end) = _children(tbs, pair_start, pair_end)[:2]
            raw = tbs[value_start:value_end]
            value = raw.decode(_STRING_DECODINGS.get(tag, "latin-1"), errors="replace")
            attributes.setdefault(_oid(tbs[oid_start:oid_end]), []).append(value)
    return attributes


def _split_pair(value: str | None) -> tuple[str | None, str | None]:
    """'EKU9003173C9 / VADA800927DJ3' -> ('EKU9003173C9', 'VADA800927DJ3'); ' / X' -> (None, 'X')."""
    if value is None:
        return None, None
    own, _, other = value.partition("/")
    return own.strip() or None, other.strip() or None


def read_identity(cert: x509.Certificate) -> EfirmaIdentity:
    try:
        attributes = _subject_attributes(cert)
    except (ValueError, IndexError):
        raise EfirmaError("certificado_ilegible", "El sujeto del certificado no se pudo leer.") from None
    first = {oid: values[0] for oid, values in attributes.items()}
    rfc, rfc_representante = _split_pair(first.get(X500_UNIQUE_IDENTIFIER))
    curp, curp_representante = _split_pair(first.get(SERIAL_NUMBER))
    if not rfc:
        raise EfirmaError(
            "certificado_no_es_efirma", "El certificado no trae un RFC en su sujeto: no es un certificado del SAT."
        )
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        client_or_mail = {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION} & set(usages)
    except x509.ExtensionNotFound:
        client_or_mail = set()
    except ValueError:
        client_or_mail = set()
    serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 7) // 8, "big")
    numero = serial.decode("ascii") if serial.isascii() and serial.isdigit() else str(cert.serial_number)
    return EfirmaIdentity(
        rfc=rfc,
        rfc_representante=rfc_representante,
        curp=curp or curp_representante,
        nombre=first.get(COMMON_NAME) or first.get(NAME) or first.get(ORGANIZATION),
        numero_certificado=numero,
        valido_desde=cert.not_valid_before_utc,
        valido_hasta=cert.not_valid_after_utc,
        # A CSD names a branch in OU and has no extended key usage; an e.firma has neither trait.
        es_fiel=ORGANIZATIONAL_UNIT not in attributes and bool(client_or_mail),
    )


# ------------------------------------------------------------------ trust anchors


CRL_SUFFIX = ".crl"


def load_trust_anchors(folder: Path | None) -> list[x509.Certificate]:
    """Every CA certificate (DER or PEM, any file name but *.crl) in the folder; unreadable files are logged
    and skipped."""
    if folder is None or not folder.is_dir():
        return []
    anchors = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() == CRL_SUFFIX:
            continue
        try:
            anchors.append(parse_certificate(path.read_bytes()))
        except EfirmaError:
            log.warning("ignoring %s: not a certificate", path)
    return anchors


def load_crls(folder: Path | None) -> list[x509.CertificateRevocationList]:
    """The certificate revocation lists (*.crl, DER or PEM) in the trust folder, as the SAT publishes them.
    Read on every proof, like the anchors, so a CRL dropped in the folder counts at once, without a restart."""
    if folder is None or not folder.is_dir():
        return []
    crls = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() != CRL_SUFFIX:
            continue
        data = path.read_bytes()
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                crls.append(x509.load_pem_x509_crl(data))
            else:
                crls.append(x509.load_der_x509_crl(data))
        except ValueError:
            log.warning("ignoring %s: not a certificate revocation list", path)
    return crls


def _key_usage_signs(_policy: object, _cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is None or not usage.digital_signature:
        raise ValueError("key usage does not allow digital signatures")


# SAT leaves have no authorityKeyIdentifier and SAT CAs a non-critical basicConstraints, so the web-PKI
# defaults reject them; this policy asks for what an e.firma chain does have.
_CA_POLICY = ExtensionPolicy.permit_all().require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
_LEAF_POLICY = ExtensionPolicy.permit_all().require_present(x509.KeyUsage, Criticality.AGNOSTIC, _key_usage_signs)


def _chain_is_trusted(cert: x509.Certificate, anchors: list[x509.Certificate], now: dt.datetime) -> bool:
    return _trusted_chain(cert, anchors, now) is not None


def _trusted_chain(
    cert: x509.Certificate, anchors: list[x509.Certificate], now: dt.datetime
) -> list[x509.Certificate] | None:
    """The chain from the leaf to a trust anchor (leaf first), or None when there is none."""
    if not anchors:
        return None
    verifier = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(now)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_LEAF_POLICY)
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(cert, [])
    except (VerificationError, ValueError):
        # An expired chain with an unparsable subject raises ValueError instead of VerificationError.
        return None
    return list(verified.chain)


# ------------------------------------------------------------------ revocation


def revoked_error(identity: EfirmaIdentity, when: dt.datetime | None) -> EfirmaError:
    fecha = f" el {when:%Y-%m-%d}" if when else ""
    return EfirmaError(
        "certificado_revocado",
        f"La e.firma de {identity.rfc} (certificado {identity.numero_certificado}) fue revocada{fecha}. "
        "Tramite una nueva en el SAT.",
    )


def revoked_in_crls(
    cert: x509.Certificate, issuer: x509.Certificate, crls: list[x509.CertificateRevocationList], now: dt.datetime
) -> x509.RevokedCertificate | None:
    """The CRL entry of cert from a CRL its issuer signed, or None. A CRL from anyone else is ignored: only
    the issuing CA can revoke its certificates."""
    for crl in crls:
        if crl.issuer != issuer.subject:
            continue
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            log.warning("ignoring a CRL of %s: its signature is not the CA's", crl.issuer.rfc4514_string())
            continue
        if crl.next_update_utc is not None and crl.next_update_utc < now:
            # A stale list still proves what it lists; what it misses is the operator's to refresh.
            log.warning("the CRL of %s expired on %s", crl.issuer.rfc4514_string(), crl.next_update_utc)
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is not None:
            return entry
    return None


class OcspError(Exception):
    """The OCSP answer could not be used (malformed, unsigned by the CA, stale, about another certificate)."""


@dataclass(frozen=True)
class OcspAnswer:
    status: str  # "good", "revoked" or "unknown"
    revoked_at: dt.datetime | None
    this_update: dt.datetime
    next_update: dt.datetime | None


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """The DER OCSP request for cert (RFC 6960; SHA-1 CertID, what responders expect)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303 - CertID only
    return builder.build().public_bytes(serialization.Encoding.DER)


OCSP_CLOCK_SKEW = dt.timedelta(minutes=5)


def _verify_signature(public_key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm) -> None:
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(algorithm))
    else:
        raise InvalidSignature("unsupported responder key")


def _ocsp_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, now: dt.datetime) -> object:
    """The responder's public key: the CA's own, or a certificate the CA issued for OCSP signing (RFC 6960
    §4.2.2.2). Anything else could be anyone's answer."""
    # ResponderID byKey is a SHA-1 of the key (RFC 6960 §4.2.1): an identifier, not a security hash.
    by_key = response.responder_key_hash
    if response.responder_name == issuer.subject or by_key == _key_hash_with(issuer, hashes.SHA1()):  # noqa: S303
        return issuer.public_key()
    for delegate in response.certificates:
        if delegate.issuer != issuer.subject:
            continue
        try:
            _verify_signature(
                issuer.public_key(),
                delegate.signature,
                delegate.tbs_certificate_bytes,
                delegate.signature_hash_algorithm,  # type: ignore[arg-type]
            )
            usages = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (InvalidSignature, x509.ExtensionNotFound, TypeError):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in usages and delegate.not_valid_before_utc <= now <= (
            delegate.not_valid_after_utc
        ):
            return delegate.public_key()
    raise OcspError("the OCSP answer is not signed by the CA nor by a responder the CA authorized")


def read_ocsp_response(data: bytes, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> OcspAnswer:
    """Checks that the answer is about cert, signed by its CA (or the CA's delegate) and current."""
    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        raise OcspError("the OCSP answer is not DER") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"the OCSP responder answered {response.response_status.name}")
    try:
        _verify_signature(
            _ocsp_signer(response, issuer, now),
            response.signature,
            response.tbs_response_bytes,
            response.signature_hash_algorithm,  # type: ignore[arg-type]
        )
    except (InvalidSignature, TypeError):
        raise OcspError("the OCSP answer's signature is not valid") from None
    for single in response.responses:
        if single.serial_number != cert.serial_number or single.issuer_key_hash != _key_hash_with(
            issuer, single.hash_algorithm
        ):
            continue
        if single.this_update_utc > now + OCSP_CLOCK_SKEW:
            raise OcspError("the OCSP answer is dated in the future")
        if single.next_update_utc is not None and single.next_update_utc < now - OCSP_CLOCK_SKEW:
            raise OcspError("the OCSP answer is stale")
        status = {
            ocsp.OCSPCertStatus.GOOD: "good",
            ocsp.OCSPCertStatus.REVOKED: "revoked",
            ocsp.OCSPCertStatus.UNKNOWN: "unknown",
        }[single.certificate_status]
        revoked_at = single.revocation_time_utc if status == "revoked" else None
        return OcspAnswer(status, revoked_at, single.this_update_utc, single.next_update_utc)
    raise OcspError("the OCSP answer is about another certificate")


def _key_hash_with(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """RFC 6960 CertID.issuerKeyHash: the hash of the issuer's subjectPublicKey BIT STRING."""
    digest = hashes.Hash(algorithm)
    digest.update(_public_key_bits(cert))
    return digest.finalize()


def _public_key_bits(cert: x509.Certificate) -> bytes:
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    _, start, end = _tlv(spki, 0)
    _algorithm, bits = _children(spki, start, end)[:2]
    return spki[bits[1] + 1 : bits[2]]  # the BIT STRING's content after its unused-bits byte


# Called after the signature is verified, with (certificate, issuer, identity): raises EfirmaError when the
# certificate is revoked or its status cannot be learned. Injected so this module does no network I/O: the app
# passes its OCSP client (app/ocsp.py).
RevocationCheck = Callable[[x509.Certificate, x509.Certificate, EfirmaIdentity], None]


# ------------------------------------------------------------------ validation


def validate_efirma(
    certificado: bytes,
    firma: bytes,
    reto: bytes,
    *,
    rfc_esperado: str,
    anchors: list[x509.Certificate],
    now: dt.datetime,
    crls: list[x509.CertificateRevocationList] | None = None,
    revocation: RevocationCheck | None = None,
) -> EfirmaIdentity:
    """The whole proof of possession, in the order a person fixes things: the right file, still valid,
    issued by the SAT, of the right RFC, the signature over the challenge, and not revoked (the CRLs, then
    `revocation`, e.g. OCSP: network work only for whoever holds the key). Blocking: run it off the loop."""
    cert = parse_certificate(certificado)
    identity = read_identity(cert)
    if not identity.es_fiel:
        raise EfirmaError(
            "certificado_no_es_efirma",
            f"El certificado de {identity.rfc} es un certificado de sello digital (CSD, para facturar), "
            "no una e.firma. Use el .cer de su e.firma (FIEL).",
        )
    if now > identity.valido_hasta:
        raise EfirmaError(
            "certificado_vencido",
            f"La e.firma de {identity.rfc} venció el {identity.valido_hasta:%Y-%m-%d}. Renuévela en el SAT.",
        )
    if now < identity.valido_desde:
        raise EfirmaError(
            "certificado_aun_no_vigente",
            f"La e.firma de {identity.rfc} es válida a partir del {identity.valido_desde:%Y-%m-%d %H:%M} UTC.",
        )
    chain = _trusted_chain(cert, anchors, now)
    if chain is None:
        raise EfirmaError(
            "cadena_no_confiable",
            f"La e.firma de {identity.rfc} no fue emitida por una autoridad certificadora del SAT en la que "
            "este servicio confía.",
        )
    if identity.rfc != rfc_esperado:
        raise EfirmaError(
            "rfc_no_coincide",
            f"El certificado es de {identity.rfc}, pero el reto se pidió para {rfc_esperado}.",
        )
    public_key = cert.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise EfirmaError("certificado_ilegible", "La llave pública del certificado no es RSA.")
    try:
        public_key.verify(firma, reto, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise EfirmaError(
            "firma_invalida",
            "La firma no corresponde al reto con la llave de este certificado. Firme los bytes del reto "
            "(decodificados de base64) con RSA PKCS#1 v1.5 y SHA-256, p. ej. con `sia efirma firmar`.",
        ) from None
    # A leaf that is itself an anchor has no issuer to revoke it.
    issuer = chain[1] if len(chain) > 1 else chain[0]
    entry = revoked_in_crls(cert, issuer, crls or [], now)
    if entry is not None:
        raise revoked_error(identity, entry.revocation_date_utc)
    if revocation is not None:
        revocation(cert, issuer, identity)
    return identity


# ------------------------------------------------------------------ signing (the person's side)


def load_private_key(data: bytes, password: bytes | None) -> rsa.RSAPrivateKey:
    """A SAT .key (DER PKCS#8, encrypted) or a PEM key."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password)
        else:
            key = serialization.load_der_private_key(data, password)
    except (ValueError, TypeError) as e:
        raise EfirmaError("llave_ilegible", "No se pudo abrir la llave: revise el archivo .key y su contraseña.") from e
    if not isinstance(key, rsa.RSAPrivateKey):
        raise EfirmaError("llave_ilegible", "La llave no es RSA.")
    return key


def sign_reto(key: rsa.RSAPrivateKey, reto_b64: str) -> str:
    return base64.b64encode(key.sign(base64.b64decode(reto_b64), padding.PKCS1v15(), hashes.SHA256())).decode()
