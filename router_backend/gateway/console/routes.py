"""The console's HTTP routes on the gateway: the page at /ui, and /ui/api/* as thin adapters.

    add_console(app)          # app.state.link (TritonLink) and app.state.decisions (DecisionLog)
    GET  /ui/api/models       catalog -> one row per model, with its state
    GET  /ui/api/decisions    the decisions this gateway saw (?mode=auto&model=gpt2)
    GET  /ui/api/experiments  every experiment's report, with the plot of its primary metric
    POST /ui/api/experiments/{name}/{pause|resume|stop}   header pointsman-admin-key
    GET  /ui/api/usage        usage summary of one window, and requests per time slice

Every figure comes from Triton's catalog, usage and experiments models: the routes only
reshape (views.py). A Triton that cannot be reached is a 503 naming it, so the page can
say so; the page itself says when the gateway cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from pointsman.gateway.console import views
from pointsman.gateway.console.decisions import MODES, DecisionLog
from pointsman.gateway.errors import ApiError
from pointsman.gateway.triton_link import CATALOG_MODEL, EXPERIMENTS_MODEL, USAGE_MODEL
from pointsman.policy.admin import ADMIN_HEADER, ADMIN_PARAMETER

LOGGER = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
ACTIONS = ("pause", "resume", "stop")
DAY_S = 86_400.0


async def _retention_days(link) -> float | None:
    """The usage model's retention_days, or None when its config cannot be read (an admin key guards it)."""
    try:
        config = await link.model_config(USAGE_MODEL)
    except ApiError as exc:
        LOGGER.info("console: usage retention unreadable (%s); previews keep the gateway's limit", exc.message)
        return None
    value = ((config.get("parameters") or {}).get("retention_days") or {}).get("string_value")
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


async def _bound_retention(app: FastAPI) -> None:
    """Once: keep previews no longer than the usage store keeps its records (0 there keeps all)."""
    if getattr(app.state, "decision_retention_checked", False):
        return
    app.state.decision_retention_checked = True
    days = await _retention_days(app.state.link)
    if days:
        app.state.decisions.limit_retention(days * DAY_S)


def _choice(name: str, value: str | None, accepted: tuple[str, ...]) -> str | None:
    if value in (None, ""):
        return None
    if value not in accepted:
        raise ApiError.invalid(name, f"invalid '{name}': must be one of {', '.join(accepted)} (got {value!r})")
    return value


def _window(value: str | None) -> float:
    accepted = tuple(str(w) for w in views.USAGE_WINDOWS)
    return float(_choice("window_s", value, accepted) or 3600)


async def _experiments(app: FastAPI, action: str, payload: dict | None = None, key: str | None = None) -> Any:
    fields = {"action": action, **({"payload": json.dumps(payload)} if payload is not None else {})}
    outputs = await app.state.link.infer(EXPERIMENTS_MODEL, fields, parameters={ADMIN_PARAMETER: key} if key else None)
    return json.loads(outputs.get("result") or "null")


def _forbidden_or(exc: ApiError) -> ApiError:
    """The experiments model refuses a missing key as a bad request (Triton allows it no 403); here it is one."""
    if "admin key" in exc.message:
        return ApiError(403, exc.message, param=ADMIN_HEADER, code="admin_key_required")
    return exc


def add_console(app: FastAPI) -> None:
    """Serve the console at /ui and its data at /ui/api/*."""
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="console-static")

    @app.get("/ui", include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/ui/", include_in_schema=False)
    async def ui_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/ui/api/health")
    async def ui_health() -> dict[str, Any]:
        link = app.state.link
        live, ready = await asyncio.gather(link.is_live(), link.is_ready())
        down = []
        if live:  # every view's banner names the models that are down
            try:
                rows = views.model_rows(json.loads((await link.infer(CATALOG_MODEL, {})).get("models") or "[]"))
                down = [{"name": row["name"], "state": row["state"]} for row in rows if row["down"]]
            except ApiError as exc:
                LOGGER.info("console: catalog unavailable for the health line (%s)", exc.message)
        return {"gateway": "up", "triton": link.url, "triton_live": live, "triton_ready": ready, "models_down": down}

    @app.get("/ui/api/models")
    async def ui_models() -> dict[str, Any]:
        outputs = await app.state.link.infer(CATALOG_MODEL, {})
        return {"models": views.model_rows(json.loads(outputs.get("models") or "[]"))}

    @app.get("/ui/api/decisions")
    async def ui_decisions(mode: str | None = None, model: str | None = None, limit: int = 100) -> dict[str, Any]:
        await _bound_retention(app)
        log: DecisionLog = app.state.decisions
        picked = log.recent(mode=_choice("mode", mode, MODES), model=model or None, limit=max(1, min(limit, 500)))
        # the log is the gateway's own: say whether new decisions can come at all
        return {"decisions": [d.to_dict() for d in picked], "retention_s": log.retention_s,
                "triton": app.state.link.url, "triton_live": await app.state.link.is_live()}

    @app.get("/ui/api/experiments")
    async def ui_experiments() -> dict[str, Any]:
        listed = (await _experiments(app, "list")).get("experiments", [])
        reports = await asyncio.gather(*(_experiments(app, "report", {"name": e["name"]}) for e in listed))
        return {"experiments": [views.experiment_view(report) | {"source": e.get("source"),
                                                                 "created_at": e.get("created_at")}
                                for e, report in zip(listed, reports, strict=True)]}

    @app.post("/ui/api/experiments/{name}/{action}")
    async def ui_experiment_action(name: str, action: str, request: Request) -> dict[str, Any]:
        _choice("action", action, ACTIONS)
        try:
            result = await _experiments(app, action, {"name": name}, key=request.headers.get(ADMIN_HEADER) or None)
        except ApiError as exc:
            raise _forbidden_or(exc) from None
        return {"experiment": result}

    @app.get("/ui/api/usage")
    async def ui_usage(window_s: str | None = None) -> dict[str, Any]:
        window = _window(window_s)
        windows = sorted(set(views.USAGE_WINDOWS) | {window})
        answers = await asyncio.gather(*(app.state.link.infer(USAGE_MODEL, {"window_s": w}) for w in windows))
        summaries = {w: json.loads(a.get("summary") or "{}") for w, a in zip(windows, answers, strict=True)}
        return {"window_s": window, "summary": summaries[window], "slices": views.usage_buckets(summaries)}
