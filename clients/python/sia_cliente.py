"""Reference payroll-side client of SIA: HTTP only (httpx2 + pyotp), no import from the service.

    python sia_cliente.py certificar  --url URL --rfc RFC --contrasena-archivo F --secreto-totp-archivo F
    python sia_cliente.py sincronizar --url URL --rfc RFC --contrasena-archivo F --secreto-totp-archivo F \\
                                      --patron RFC_PATRON --archivo avisos.ndjson

It shows what a well-behaved payroll system does: a token from password + TOTP (never the same TOTP step
twice, even across restarts: the last step used is kept in a file), paging with `despues_de`, respecting
429 + Retry-After, retrying 5xx answers and network errors with exponential backoff and jitter, and keeping
a local copy current by incremental sync that resumes from the last folio it holds after a crash, or after
the last whole aviso of an NDJSON page that was cut (one without its final line).
"""

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pyotp


def huella(folios: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(folios)).encode()).hexdigest()


# Answers worth asking again: the service or a proxy in front of it is restarting, overloaded or unreachable.
REINTENTABLES = {429, 500, 502, 503, 504}
# Methods whose repetition does no harm. A POST is repeated only when it cannot have taken effect: a 429, a 503
# (the service refused before doing anything) or a connection that never opened.
IDEMPOTENTES = {"GET", "HEAD", "OPTIONS", "DELETE"}


class ClienteSIA:
    def __init__(
        self,
        url: str,
        rfc: str,
        contrasena: str,
        secreto_totp: str,
        *,
        timeout: float = 120,
        paso_archivo: Path | None = None,
        reintentos: int = 8,
        espera_base: float = 0.5,
        espera_max: float = 60.0,
        transport: httpx2.BaseTransport | None = None,
        reloj: Callable[[], float] | None = None,
        dormir: Callable[[float], None] | None = None,
    ) -> None:
        self.rfc, self._contrasena, self._totp = rfc, contrasena, pyotp.TOTP(secreto_totp)
        self.http = httpx2.Client(base_url=url, timeout=timeout, transport=transport)
        self._token: str | None = None
        self._vence = 0.0
        self._reintentos, self._espera_base, self._espera_max = reintentos, espera_base, espera_max
        self._reloj, self._dormir = reloj or time.time, dormir or time.sleep
        # The last TOTP step used, kept on disk: a run restarted within the same 30 s must not resend its code.
        self._paso_archivo = paso_archivo
        self._ultimo_paso: int | None = _leer_paso(paso_archivo)

    # -------------------------------------------------------------- token

    def token(self) -> str:
        if self._token and self._reloj() < self._vence - 30:
            return self._token
        respuesta = self._pedir_token()
        if respuesta.status_code == 401:
            # Another process with the same secret (the guide's curl) may have used this step's code: once, with
            # the next one. A wrong password fails again, so it costs one more attempt, not a loop.
            respuesta = self._pedir_token()
        if respuesta.status_code != 200:
            raise RuntimeError(f"token: {respuesta.status_code} {respuesta.text}")
        cuerpo = respuesta.json()
        self._token, self._vence = cuerpo["access_token"], self._reloj() + cuerpo["expires_in"]
        return self._token

    def _codigo(self) -> str:
        """The code of a step never used before, waiting for the next step if need be; the step is recorded
        before the code is sent, since the service may accept it even if its answer never arrives."""
        paso = int(self._reloj() // 30)
        if self._ultimo_paso is not None and paso <= self._ultimo_paso:
            self._dormir((self._ultimo_paso + 1) * 30 - self._reloj() + 0.1)
            paso = int(self._reloj() // 30)
        self._ultimo_paso = paso
        _guardar_paso(self._paso_archivo, paso)
        return self._totp.at(paso * 30)

    def _pedir_token(self) -> httpx2.Response:
        # Each attempt carries a new code: a code sent once, even unanswered, may already count as used.
        return self._enviar(
            "POST",
            "/v1/token",
            datos=lambda: {
                "grant_type": "client_credentials",
                "client_id": self.rfc,
                "client_secret": self._contrasena,
                "otp": self._codigo(),
            },
        )

    def _espera(self, intento: int, respuesta: httpx2.Response | None) -> float:
        """Exponential backoff with full jitter (replicas restarting are not hit by every client at once), never
        shorter than the service's Retry-After."""
        espera = random.uniform(0, min(self._espera_max, self._espera_base * 2**intento))  # noqa: S311 - not crypto
        pedido = respuesta.headers.get("Retry-After") if respuesta is not None else None
        if pedido and pedido.isdigit():
            espera = max(espera, float(pedido))
        return espera

    def _enviar(
        self, metodo: str, ruta: str, *, datos: Callable[[], dict] | None = None, **kwargs: Any
    ) -> httpx2.Response:
        """One request, repeated on 429, 5xx and network errors while that is safe; the last answer otherwise."""
        for intento in range(self._reintentos + 1):
            ultimo = intento == self._reintentos
            try:
                respuesta = self.http.request(metodo, ruta, data=datos() if datos else None, **kwargs)
            except httpx2.TransportError as error:
                nunca_salio = isinstance(error, httpx2.ConnectError | httpx2.ConnectTimeout)
                if ultimo or not (metodo in IDEMPOTENTES or nunca_salio):
                    raise
                print(f"aviso: {ruta}: {type(error).__name__}; reintento", file=sys.stderr)
                self._dormir(self._espera(intento, None))
                continue
            seguro = metodo in IDEMPOTENTES or respuesta.status_code in (429, 503)
            if ultimo or respuesta.status_code not in REINTENTABLES or not seguro:
                return respuesta
            print(f"aviso: {ruta}: {respuesta.status_code}; reintento", file=sys.stderr)
            self._dormir(self._espera(intento, respuesta))
        raise AssertionError("unreachable")

    def pedir(self, metodo: str, ruta: str, **kwargs: Any) -> httpx2.Response:
        """One request, as a patient client makes it: backs off on 429, 5xx and network errors, renews an expired
        token once."""
        renovado = False
        while True:
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.token()}"}
            respuesta = self._enviar(metodo, ruta, headers=headers, **kwargs)
            if respuesta.status_code == 401 and not renovado:
                self._token, renovado = None, True
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            return respuesta

    # -------------------------------------------------------------- avisos

    def paginas(
        self, base: str = "/v1", despues_de: str | None = None, limite: int = 1000, **filtros: Any
    ) -> Iterator[list[dict]]:
        """Every page after `despues_de`, in publication order, until the service says there are no more."""
        while True:
            params = {**filtros, "limite": limite} | ({"despues_de": despues_de} if despues_de else {})
            respuesta = self.pedir("GET", f"{base}/avisos", params=params)
            if respuesta.status_code != 200:
                raise RuntimeError(f"avisos: {respuesta.status_code} {respuesta.text}")
            cuerpo = respuesta.json()
            if cuerpo["avisos"]:
                yield cuerpo["avisos"]
                despues_de = cuerpo["avisos"][-1]["folio"]
            if not cuerpo["hay_mas"]:
                return

    def paginas_ndjson(
        self, base: str = "/v1", despues_de: str | None = None, limite: int = 1000, **filtros: Any
    ) -> Iterator[list[bytes]]:
        """Every page after `despues_de` as the NDJSON lines of its avisos (the bytes as served), until a page's
        final line says no more follow. A page without its final line was cut (a connection lost, a proxy that
        gave up): its whole lines are kept and the rest is asked for after the last of them, with backoff."""
        cortes = 0
        while True:
            params = {**filtros, "limite": limite} | ({"despues_de": despues_de} if despues_de else {})
            respuesta = self.pedir("GET", f"{base}/avisos.ndjson", params=params)
            if respuesta.status_code != 200:
                raise RuntimeError(f"avisos: {respuesta.status_code} {respuesta.text}")
            avisos, fin = _pagina_ndjson(respuesta.content)
            if avisos:
                yield avisos
                despues_de = json.loads(avisos[-1])["folio"]
            if fin is None:
                if cortes == self._reintentos:
                    raise RuntimeError(f"avisos: {cortes + 1} páginas cortadas seguidas")
                print("aviso: página cortada; sigue después del último aviso completo", file=sys.stderr)
                self._dormir(self._espera(cortes, None))
                cortes += 1
                continue
            cortes = 0
            if not fin["hay_mas"]:
                return

    def sincronizar(self, archivo: Path, rfc_patron: str | None = None, base: str = "/v1", limite: int = 1000) -> int:
        """Appends to `archivo` (NDJSON) every aviso published after the last one it holds; returns how many.
        Each page is flushed to disk before the next is asked for, and a line cut by a crash is dropped on start,
        so the next run resumes exactly after the last complete aviso."""
        ultimo = _ultimo_folio_completo(archivo)
        nuevos = 0
        filtros = {"rfc_patron": rfc_patron} if rfc_patron else {}
        with archivo.open("ab") as salida:
            for pagina in self.paginas_ndjson(base, despues_de=ultimo, limite=limite, **filtros):
                salida.write(b"".join(aviso + b"\n" for aviso in pagina))
                salida.flush()
                os.fsync(salida.fileno())
                nuevos += len(pagina)
        return nuevos

    # -------------------------------------------------------------- certification

    def certificar(self) -> dict:
        """Opens an attempt and passes its four scenarios in the sandbox."""
        intento = self.pedir("POST", "/v1/certificaciones").json()
        cid = intento["id"]
        escenarios = {e["nombre"]: e for e in intento["escenarios"]}

        completos = [a["folio"] for p in self.paginas("/sandbox/v1", limite=500) for a in p]
        self.evidencia(cid, "descarga_completa", completos)

        filtro = escenarios["descarga_filtrada"]["parametros"]
        filtrados = [a["folio"] for p in self.paginas("/sandbox/v1", limite=500, **filtro) for a in p]
        self.evidencia(cid, "descarga_filtrada", filtrados)

        self.pedir("POST", f"/v1/certificaciones/{cid}/escenarios/sincronizacion_incremental/inicio").raise_for_status()
        # The cursor is the last folio received (publication order), not the largest one.
        nuevos = [a["folio"] for p in self.paginas("/sandbox/v1", despues_de=completos[-1], limite=500) for a in p]
        self.evidencia(cid, "sincronizacion_incremental", nuevos)

        self.pedir("POST", f"/v1/certificaciones/{cid}/escenarios/limite_de_tasa/inicio").raise_for_status()
        todos = [a["folio"] for p in self.paginas("/sandbox/v1", limite=500) for a in p]
        return self.evidencia(cid, "limite_de_tasa", todos)

    def evidencia(self, cid: str, escenario: str, folios: list[str]) -> dict:
        respuesta = self.pedir(
            "POST",
            f"/v1/certificaciones/{cid}/evidencias",
            json={"escenario": escenario, "total": len(folios), "huella": huella(folios)},
        )
        respuesta.raise_for_status()
        return respuesta.json()


def _leer_paso(ruta: Path | None) -> int | None:
    try:
        return int(ruta.read_text().strip()) if ruta else None
    except (FileNotFoundError, ValueError):
        return None


def _guardar_paso(ruta: Path | None, paso: int) -> None:
    if ruta is None:
        return
    provisional = ruta.with_name(ruta.name + ".tmp")
    provisional.write_text(f"{paso}\n")
    os.replace(provisional, ruta)  # whole or not at all, even if the process dies here


def _leer_secreto(ruta: Path) -> str:
    """A password or TOTP secret from its file, with a warning when others can read it (it should be 0600)."""
    if os.name == "posix" and ruta.stat().st_mode & 0o077:
        print(f"advertencia: otros usuarios pueden leer {ruta}; protéjalo con: chmod 600 {ruta}", file=sys.stderr)
    return ruta.read_text().strip()


def _pagina_ndjson(cuerpo: bytes) -> tuple[list[bytes], dict | None]:
    """The whole aviso lines of an NDJSON page, and its final line ({"fin": true, "hay_mas": ...}) or None when
    the page was cut before it."""
    lineas = cuerpo.split(b"\n")[:-1]  # after the last newline: nothing, or a line cut short
    final = json.loads(lineas[-1]) if lineas else None
    if isinstance(final, dict) and final.get("fin") is True:
        return lineas[:-1], final
    return lineas, None


def _ultimo_folio_completo(archivo: Path) -> str | None:
    if not archivo.exists():
        return None
    datos = archivo.read_bytes()
    completo = datos[: datos.rfind(b"\n") + 1]
    if len(completo) != len(datos):  # a crash cut the last line: drop it, it is asked for again
        with archivo.open("r+b") as f:
            f.truncate(len(completo))
    ultima = completo.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return json.loads(ultima)["folio"] if ultima else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("accion", choices=["certificar", "sincronizar"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rfc", required=True)
    parser.add_argument("--contrasena-archivo", required=True, type=Path)
    # Files, not values: a secret on the command line shows in `ps` and in the shell's history.
    parser.add_argument("--secreto-totp-archivo", required=True, type=Path)
    parser.add_argument("--patron")
    parser.add_argument("--archivo", type=Path)
    parser.add_argument(
        "--paso-totp-archivo",
        type=Path,
        help="Dónde guardar el último paso TOTP usado (por omisión: junto al secreto, con extensión .paso).",
    )
    args = parser.parse_args()
    contrasena, secreto = _leer_secreto(args.contrasena_archivo), _leer_secreto(args.secreto_totp_archivo)
    paso = args.paso_totp_archivo or args.secreto_totp_archivo.with_name(args.secreto_totp_archivo.name + ".paso")
    cliente = ClienteSIA(args.url, args.rfc, contrasena, secreto, paso_archivo=paso)
    if args.accion == "certificar":
        print(json.dumps(cliente.certificar(), ensure_ascii=False, indent=2))
    else:
        if not args.archivo:
            sys.exit("sincronizar necesita --archivo")
        print(f"avisos nuevos: {cliente.sincronizar(args.archivo, args.patron)} ({args.archivo})")


if __name__ == "__main__":
    main()
