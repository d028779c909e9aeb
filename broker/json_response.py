"""Starlette's ``JSONResponse`` with the body written by ``adapters.json_writer`` (orjson,
falling back to the standard library for what orjson refuses). Same media type, same compact
UTF-8 output; every ``JSONResponse`` the broker builds is one of these."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse as _StarletteJSONResponse

from adapters.json_writer import dumps


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
