"""openapi.yaml as the tests read it: with libyaml's C loader, which parses it in a fraction of the seconds the
pure-Python loader takes (a dozen tests read it); each call returns a fresh document that a test may change."""

from typing import Any

import yaml

from app.cli import OPENAPI_PATH

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def committed() -> dict[str, Any]:
    return yaml.load(OPENAPI_PATH.read_text(encoding="utf-8"), Loader=_LOADER)
