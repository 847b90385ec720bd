"""Benchmark clients, run in their own process so they do not share the server's interpreter.

python -m bench.client download BASE TOKEN RFC TOTAL PAGE [--textbook]   -> {"rows": n, "seconds": s}
python -m bench.client load URL TOKEN CONNECTIONS SECONDS               -> {"requests": n, "seconds": s}
"""

import asyncio
import http.client
import json
import sys
import time
from urllib.parse import urlencode, urlsplit

import orjson


def download(base: str, token: str, rfc: str, total: int, page: int, textbook: bool) -> dict:
    """A lean client (the standard library's http.client): the 2 cores are shared with the server and
    PostgreSQL, so the client should cost as little as a payroll system's would. Like a client that processes
    what it downloads, it asks for the next page as soon as it knows the cursor, and checks the page it holds
    (counts its avisos) while the server prepares that one."""
    parts = urlsplit(base)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/x-ndjson"}
    rows, started = 0, time.perf_counter()
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)

    def ask(cursor: str | None) -> int:
        limite = min(page, total - rows)
        params = {"rfc_patron": rfc, "limite": limite} | ({"despues_de": cursor} if cursor else {})
        connection.request("GET", ("/avisos?" if textbook else "/v1/avisos?") + urlencode(params), headers=headers)
        return limite

    asked = ask(None)
    while asked:
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"{response.status}: {body[:300]!r}")
        if textbook:
            count = body.count(b'"folio":')
            rows += count
            asked = ask(orjson.loads(body)[-1]["folio"]) if count and rows < total else 0
            continue
        # The page's final line says it is whole and whether more follow: it is no aviso. Searched from the end
        # and counted in place: a copy of a 5 MB page (rstrip, rpartition) costs as much as reading it.
        end = body.rfind(b"\n", 0, len(body) - 1) + 1
        if not body.endswith(b"\n") or not (final := orjson.loads(body[end:])).get("fin"):
            raise SystemExit(f"a page without its final line (cut): {body[-300:]!r}")
        if not final["hay_mas"]:
            rows += body.count(b"\n", 0, end)
            break
        # More follow, so the page is full: the next one is asked for before this one is counted.
        full, rows = asked, rows + asked
        asked = ask(orjson.loads(body[body.rfind(b"\n", 0, end - 1) + 1 : end])["folio"]) if rows < total else 0
        if (count := body.count(b"\n", 0, end)) != full:
            raise SystemExit(f"a page with more to follow holds {count} avisos, not {full}")
    connection.close()
    return {"rows": rows, "seconds": time.perf_counter() - started}


async def _worker(host: str, port: int, request: bytes, deadline: float, counter: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    while time.perf_counter() < deadline:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"unexpected answer: {head[:80]!r}")
        counter[0] += 1
    writer.close()


async def load(url: str, token: str, connections: int, seconds: float) -> dict:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    auth = f"Authorization: Bearer {token}\r\n" if token != "-" else ""
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.hostname}\r\n{auth}\r\n".encode()
    counter = [0]
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_worker(parts.hostname, parts.port, request, deadline, counter) for _ in range(connections)))
    return {"requests": counter[0], "seconds": time.perf_counter() - started}


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "download":
        base, token, rfc, total, page, *flags = args
        print(json.dumps(download(base, token, rfc, int(total), int(page), "--textbook" in flags)))
    else:
        url, token, connections, seconds = args
        print(json.dumps(asyncio.run(load(url, token, int(connections), float(seconds)))))
