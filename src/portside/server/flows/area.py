"""Mounts flows: services, the engine, flow files and the ``/v1/flows`` + ``/v1/executions`` routes.

Services registered in ``ctx.services``: ``flows`` (FlowService), ``executions`` (ExecutionService),
``flow_engine`` (Engine, absent with ``PORTSIDE_FLOWS_ENGINE=false``) and ``flow_executors``
(ExecutorRegistry: other areas register the ``python`` and ``skill`` node kinds there).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from portside.server.agents.service import AgentService
from portside.server.context import AppContext
from portside.server.flows.config import FlowSettings
from portside.server.flows.engine import Engine
from portside.server.flows.events import ExecutionHub
from portside.server.flows.executors import default_registry
from portside.server.flows.loader import load_directory
from portside.server.flows.service import ExecutionService, FlowService

log = logging.getLogger("portside.flows")


def install(app: FastAPI, ctx: AppContext) -> None:
    from portside.server.api.v1 import executions as executions_door
    from portside.server.api.v1 import flows as flows_door

    settings = FlowSettings()
    agents = ctx.services.get("agents")
    if not isinstance(agents, AgentService):
        agents = ctx.services["agents"] = AgentService(ctx.db)
    hub = ExecutionHub()
    flows = FlowService(ctx.db, agents)
    executions = ExecutionService(ctx.db, flows, agents, hub)
    executors = default_registry(agents, ctx.services)
    ctx.services.update(flows=flows, executions=executions, flow_executors=executors, flow_settings=settings)
    engine: Engine | None = None
    if settings.engine:
        engine = Engine(ctx.db, flows, executors, hub, settings, ctx.services)
        ctx.services["flow_engine"] = engine

    flows_dir = settings.dir or (ctx.settings.data_dir / "flows")
    ctx.services["flows_dir"] = flows_dir

    async def start() -> None:
        report = await load_directory(flows_dir, flows, agents)
        if report.loaded:
            log.info("loaded %d flow file(s) from %s", len(report.loaded), flows_dir)
        for err in report.errors:
            ctx.warnings.append(f"flow file {err['file']} rejected: {err['message']}")
        if engine is not None:
            await engine.start()
            executions.engine = engine
        ctx.readiness["flows"] = {"ok": True, "engine": engine.owner if engine else None}

    async def stop() -> None:
        executions.engine = None
        if engine is not None:
            await engine.stop()

    ctx.on_start.append(start)
    ctx.on_stop.append(stop)
    app.include_router(flows_door.router)
    app.include_router(executions_door.router)
