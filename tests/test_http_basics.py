import uuid

import pytest
from sqlalchemy import text

from app.problems import PROBLEM_MEDIA_TYPE


async def test_livez(client):
    response = await client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"estado": "vivo"}


async def test_readyz_when_migrated(client):
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["estado"] == "listo"


async def test_readyz_503_when_migrations_pending(client, connection):
    await connection.execute(text("UPDATE alembic_version SET version_num = 'antigua'"))
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
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from app.db import get_session
    from app.main import create_app

    app = create_app(settings)
    engine = create_async_engine("postgresql+asyncpg://nadie@127.0.0.1:1/nada", connect_args={"timeout": 2})

    async def unreachable():
        async with AsyncSession(engine) as session:
            yield session

    app.dependency_overrides[get_session] = unreachable
    import httpx2
    from asgi_lifespan import LifespanManager

    async with (
        LifespanManager(app) as manager,  # readyz also reports the lifespan's rate limiter and listener
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=manager.app), base_url="http://t") as client,
    ):
        response = await client.get("/readyz")
    await engine.dispose()
    assert response.status_code == 503
    assert response.json()["code"] == "base_de_datos_no_disponible"
