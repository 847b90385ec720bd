import asyncio
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.db import unavailable_problem
from app.deps import DatabaseDep, NotifierDep, RateLimiterDep
from app.migrations import head_revision, probe_revision
from app.problems import Problem, problem_responses

router = APIRouter(tags=["Monitoreo"])


class Estado(BaseModel):
    estado: str

    model_config = ConfigDict(json_schema_extra={"examples": [{"estado": "vivo"}]})


class Preparacion(Estado):
    migracion: str
    limites_de_tasa: Literal["compartido", "local", "local_por_falla"] = Field(
        description="Dónde se cuentan los límites de tasa: en el almacén compartido (SIA_RATE_LIMIT_STORAGE), "
        "en este proceso porque no hay uno configurado, o en este proceso porque el compartido no responde."
    )
    notificaciones: Literal["escuchando", "reconectando"] = Field(
        description="La conexión LISTEN que despierta a las consultas con `espera`. Mientras se reconecta, "
        "esas consultas siguen funcionando, pero responden con hasta un segundo de retraso."
    )
    lecturas: Literal["primaria", "replica"] = Field(
        description="De dónde se leen los avisos: la base de datos principal, o la réplica que nombra "
        "DATABASE_READ_URL (credenciales, autorización y auditoría siempre van a la principal)."
    )
    replica_retraso_bytes: int | None = Field(
        description="Bytes de WAL escritos en la principal que la réplica aún no aplica (0: al día); nulo sin "
        "réplica o si DATABASE_READ_URL no es un servidor en recuperación."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "estado": "listo",
                    "migracion": "20261124_sandbox",
                    "limites_de_tasa": "compartido",
                    "notificaciones": "escuchando",
                    "lecturas": "replica",
                    "replica_retraso_bytes": 0,
                }
            ]
        }
    )


@router.get(
    "/livez",
    summary="Vivacidad del proceso",
    operation_id="livez",
    response_model=Estado,
    response_description="El proceso está vivo.",
)
async def livez() -> JSONResponse:
    """Responde sin tocar dependencias: sirve para saber si el proceso vive."""
    return JSONResponse({"estado": "vivo"})


@router.get(
    "/readyz",
    summary="Preparación para recibir tráfico",
    operation_id="readyz",
    response_description="Listo: base de datos accesible y migraciones al día.",
    responses=problem_responses("base_de_datos_no_disponible", "migraciones_pendientes"),
)
async def readyz(database: DatabaseDep, limiter: RateLimiterDep, notifier: NotifierDep) -> Preparacion:
    """200 cuando la base de datos responde y sus migraciones están al día; 503 en otro caso, en menos de un
    segundo (`SIA_READYZ_TIMEOUT_SECONDS`), aunque la base esté bloqueada o el pool de conexiones agotado.
    Con `DATABASE_READ_URL`, la réplica también debe responder (de ella se leen los avisos), y se informa cuánto
    WAL le falta aplicar. Informa además dónde se cuentan los límites de tasa y si la escucha de notificaciones
    está activa: ninguno de los dos impide estar listo (sin ellos el servicio es correcto, solo menos estricto o
    más lento en despertar)."""
    engine = database.probe_engine or database.engine
    try:
        async with asyncio.timeout(database.probe_timeout):  # both servers within the one bound
            revision = await probe_revision(engine, database.probe_timeout)
            lag = await database.replica_lag()  # the avisos are read there: a replica that does not answer is a 503
    except Exception as e:  # any database failure or a probe too slow means "not ready", never a 500
        raise unavailable_problem(database.retry_after) from e
    if revision != head_revision():
        raise Problem(
            "migraciones_pendientes",
            f"La base de datos está en la migración {revision}; se espera {head_revision()}. Ejecute `sia db upgrade`.",
        )
    return Preparacion(
        estado="listo",
        migracion=revision,
        limites_de_tasa=limiter.store,
        notificaciones=notifier.state,
        lecturas="replica" if database.read_engine else "primaria",
        replica_retraso_bytes=lag,
    )
