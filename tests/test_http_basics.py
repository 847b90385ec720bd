import uuid

import pytest

from app.problems import PROBLEM_MEDIA_TYPE


async def test_livez(client):
    response = await client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"estado": "vivo"}


async def test_readyz_when_migrated(client):
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["estado"] == "listo"


async def test_readyz_503_when_migrations_pending(settings, new_database):
    # /readyz has its own connection, so the database it sees is committed state: a database of its own.
    import asyncio

    import asyncpg
    import httpx2
    from asgi_lifespan import LifespanManager

    from app.db import asyncpg_dsn
    from app.main import create_app

    url = await asyncio.to_thread(new_database)  # the factory runs its own event loop
    conn = await asyncpg.connect(asyncpg_dsn(url))
    await conn.execute("UPDATE alembic_version SET version_num = 'antigua'")
    await conn.close()
    app = create_app(settings.model_copy(update={"database_url": url}))
    async with LifespanManager(app) as manager:
        transport = httpx2.ASGITransport(app=manager.app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["code"] == "migraciones_pendientes"


async def test_catalogo_tipos_aviso_has_the_known_entry(client):
    response = await client.get("/v1/catalogos/tipos-aviso")
    assert response.status_code == 200
    entries = {e["codigo"]: e for e in response.json()["entradas"]}
    assert entries["10"] == {
        "codigo": "10",
        "descripcion": "Pronta culminación",
        "clase": "suspension",
        "provisional": False,
    }
    assert all(e["provisional"] for code, e in entries.items() if code != "10")
    assert {e["clase"] for e in entries.values()} == {"retencion", "modificacion", "suspension"}


@pytest.mark.parametrize("nombre", ["tipos-descuento", "tipos-credito", "estatus-credito"])
async def test_other_catalogs(client, nombre):
    response = await client.get(f"/v1/catalogos/{nombre}")
    assert response.status_code == 200
    body = response.json()
    assert body["nombre"] == nombre and body["entradas"]
    assert all(e["clase"] is None for e in body["entradas"])


async def test_unknown_catalog_is_a_problem(client):
    response = await client.get("/v1/catalogos/no-existe")
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = response.json()
    assert body["code"] == "solicitud_invalida"
    assert body["errores"][0]["campo"] == "path.nombre"
    assert "tipos-aviso" in body["errores"][0]["motivo"]


async def test_unknown_route_and_method_are_problems(client):
    missing = await client.get("/v1/no-existe")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert missing.json()["code"] == "no_encontrado"
    wrong_method = await client.delete("/v1/catalogos/tipos-aviso")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "metodo_no_permitido"
    assert wrong_method.headers["allow"] == "GET"
    # GET and POST of this path are two routes: Allow names both.
    both = await client.put("/v1/relaciones-confianza")
    assert both.status_code == 405 and both.headers["allow"] == "GET, POST"


async def test_request_id_on_every_response(client):
    generated = await client.get("/livez")
    assert uuid.UUID(generated.headers["x-request-id"])
    given = str(uuid.uuid4())
    echoed = await client.get("/v1/no-existe", headers={"X-Request-ID": given})
    assert echoed.headers["x-request-id"] == given
    assert echoed.json()["request_id"] == given


async def test_unexpected_error_is_a_problem_without_internals(app, client):
    @app.get("/boom")
    async def boom():
        raise RuntimeError("secreto interno")

    response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = response.json()
    assert body["code"] == "error_interno"
    assert "secreto" not in response.text
    assert response.headers["x-request-id"] == body["request_id"]


async def test_readyz_503_when_database_unreachable(settings):
    import httpx2
    from asgi_lifespan import LifespanManager

    from app.main import create_app

    app = create_app(settings.model_copy(update={"database_url": "postgresql://nadie@127.0.0.1:1/nada"}))
    async with LifespanManager(app) as manager:
        transport = httpx2.ASGITransport(app=manager.app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json()["code"] == "base_de_datos_no_disponible"
