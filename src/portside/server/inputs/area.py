"""Mounts HTTP inputs: ``ctx.services["inputs"]``, ``/v1/inputs`` and the public ``/hooks/{input_id}``."""

from __future__ import annotations

from fastapi import FastAPI

from portside.server.context import AppContext
from portside.server.inputs.service import InputService
from portside.server.secrets.service import cipher_of


def install(app: FastAPI, ctx: AppContext) -> None:
    from portside.server.api.v1 import inputs as door

    data_dir = ctx.settings.ensure_data_dir()
    ctx.services["inputs"] = InputService(
        ctx.db, cipher_of(ctx.services, ctx.settings.secret_key, data_dir), ctx.services
    )
    app.include_router(door.router)
    app.include_router(door.hooks)
