"""The textbook implementation of GET /v1/avisos, for comparison only: ORM objects -> Pydantic models ->
one JSON array (FastAPI's response_model). It lives here, not in the app."""

import datetime as dt
import os
from decimal import Decimal

from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.db import async_url
from app.models import Aviso


class AvisoOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    folio: str
    tipo_aviso: str
    clase: str
    rfc_patron: str
    nrp: str
    nss: str
    rfc_trabajador: str
    curp: str
    nombre_trabajador: str
    numero_credito: str
    tipo_credito: str
    estatus_credito: str
    tipo_descuento: str
    valor_descuento: Decimal
    fecha_emision: dt.date
    fecha_inicio_descuento: dt.date
    publicado_en: dt.datetime


engine = create_async_engine(async_url(os.environ["DATABASE_URL"]))
sessions = async_sessionmaker(engine, expire_on_commit=False)
app = FastAPI()


@app.get("/avisos", response_model=list[AvisoOut])
async def avisos(rfc_patron: str, despues_de: str | None = None, limite: int = Query(1000, le=100_000)):
    async with sessions() as session:
        query = select(Aviso).where(Aviso.rfc_patron == rfc_patron)
        if despues_de:
            last = await session.scalar(select(Aviso.id).where(Aviso.folio == despues_de))
            query = query.where(Aviso.id > last)
        return list(await session.scalars(query.order_by(Aviso.id).limit(limite)))
