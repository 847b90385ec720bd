"""What routes take from the app's lifespan state (no globals): settings and key rings."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.security.keys import KeyRing
from app.settings import Settings


@dataclass
class Keys:
    tokens: KeyRing
    sellos: KeyRing


def get_settings(request: Request) -> Settings:
    return request.state.settings


def get_keys(request: Request) -> Keys:
    return request.state.keys


SettingsDep = Annotated[Settings, Depends(get_settings)]
KeysDep = Annotated[Keys, Depends(get_keys)]
