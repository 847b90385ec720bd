"""What routes take from the app's lifespan state (no globals): settings and key rings."""

from typing import Annotated

from fastapi import Depends, Request

from app.db import Database
from app.notify import Notifier
from app.ocsp import OcspChecker
from app.security.keys import Keys
from app.security.passwords import VerificationGate
from app.security.rate_limit import RateLimiter
from app.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.state.settings


async def get_keys(request: Request) -> Keys:
    return request.state.keys


async def get_database(request: Request) -> Database:
    return request.state.database


async def get_notifier(request: Request) -> Notifier:
    return request.state.notifier


async def get_rate_limiter(request: Request) -> RateLimiter:
    return request.state.rate_limiter


async def get_password_gate(request: Request) -> VerificationGate:
    return request.state.password_gate


async def get_ocsp(request: Request) -> OcspChecker | None:
    return request.state.ocsp


SettingsDep = Annotated[Settings, Depends(get_settings)]
KeysDep = Annotated[Keys, Depends(get_keys)]
DatabaseDep = Annotated[Database, Depends(get_database)]
NotifierDep = Annotated[Notifier, Depends(get_notifier)]
RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]
PasswordGateDep = Annotated[VerificationGate, Depends(get_password_gate)]
OcspDep = Annotated[OcspChecker | None, Depends(get_ocsp)]
