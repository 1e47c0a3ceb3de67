"""`/admin/deployments`: `wave deploy` over HTTP, on the gateway of `wave up` (admin key only).

    GET    /admin/deployments                     what is deployed, each engine's state
    POST   /admin/deployments                     deploy a store model under a name, or swap it
    POST   /admin/deployments/{name}/rollback     swap back to the revision before
    DELETE /admin/deployments/{name}              drain and stop its engine, forget it

POST and DELETE wait until the old engine has drained (`"wait": false` / `?wait=false` answer as
soon as the new one takes requests). Each action is written to the audit log (principal `admin`,
endpoint `admin:deploy NAME`, `admin:rollback NAME` or `admin:undeploy NAME`, the answer's status).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from waveidp.deploy.records import DEFAULT_LOAD_TIMEOUT_S, NAME_PATTERN, Residence, Revision
from waveidp.errors import ApiError, InputError, NotFoundError
from waveidp.run.deployer import Deployer, Outcome
from waveidp.security.admin_api import check_admin
from waveidp.security.audit import AuditEntry
from waveidp.security.secrets import Secret


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, max_length=200, description="the model name clients send")
    model: str = Field(min_length=1, max_length=200, description="a model of this machine's store")
    device: str | None = Field(default=None, max_length=200)
    flags: dict[str, int | str] = Field(default_factory=dict, description="llama-server flags from sizing")
    on_demand: bool = False
    idle_unload_s: float | None = Field(default=None, gt=0, le=86_400 * 30)
    load_timeout_s: float = Field(default=DEFAULT_LOAD_TIMEOUT_S, gt=0, le=3600)
    wait: bool = Field(default=True, description="answer once the old engine has drained")


def outcome_body(o: Outcome) -> dict[str, Any]:
    d = o.deployment
    return {
        "object": "deployment",
        **d.model_dump(mode="json"),
        "engine": o.engine.view(time.monotonic()),
        "created": o.created,
        "started_s": None if o.started_s is None else round(o.started_s, 3),
        "replaced": o.replaced,
        "drain": o.drain.to_dict() if o.drain else None,
    }


def deployments_router(deployer: Deployer, admin_key: Secret | None) -> APIRouter:
    def require_admin(request: Request) -> None:
        check_admin(admin_key, request.headers)

    router = APIRouter(prefix="/deployments", tags=["admin"], dependencies=[Depends(require_admin)])

    async def audited(action: str, model: str | None, call: Any) -> Any:
        started = time.monotonic()
        status, backend = 500, None
        try:
            result = await call()
            status = 201 if isinstance(result, Outcome) and result.created else 200
            if isinstance(result, Outcome):
                backend = result.engine.backend.name
                model = result.deployment.revision.model
            return result, status
        except ApiError as err:
            status = err.status
            raise
        except NotFoundError as exc:
            status = 404
            raise ApiError(404, str(exc), code="deployment_not_found", param="name") from None
        except InputError as exc:
            status = 409
            raise ApiError(409, str(exc), code="no_previous_revision", param="name") from None
        finally:
            audit = deployer.gw.guard.audit if deployer.gw is not None else None
            if audit is not None:
                audit.record(
                    AuditEntry(
                        principal="admin",
                        status=status,
                        ts=time.time(),
                        endpoint=action,
                        model=model,
                        backend=backend,
                        latency_s=time.monotonic() - started,
                    )
                )

    @router.get("")
    async def list_deployments() -> Any:
        return {"object": "list", "data": deployer.view()}

    @router.post("")
    async def deploy(body: DeployRequest) -> Any:
        try:
            revision = Revision(model=body.model, device=body.device, flags=body.flags)
        except ValueError as exc:
            raise ApiError(400, _first_error(exc), code="invalid_request", param="flags") from None
        residence = Residence(
            on_demand=body.on_demand, idle_unload_s=body.idle_unload_s, load_timeout_s=body.load_timeout_s
        )
        result, status = await audited(
            f"admin:deploy {body.name}",
            body.model,
            lambda: deployer.deploy(body.name, revision, residence, wait=body.wait),
        )
        return JSONResponse(outcome_body(result), status_code=status)

    @router.post("/{name}/rollback")
    async def rollback(name: str, wait: bool = True) -> Any:
        result, status = await audited(
            f"admin:rollback {name}", None, lambda: deployer.rollback(name, wait=wait)
        )
        return JSONResponse(outcome_body(result), status_code=status)

    @router.delete("/{name}")
    async def undeploy(name: str, wait: bool = True) -> Any:
        drain, _ = await audited(f"admin:undeploy {name}", None, lambda: deployer.remove(name, wait=wait))
        return {"object": "deployment.deleted", "name": name, "drain": drain.to_dict()}

    return router


def _first_error(exc: ValueError) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return str(first.get("msg", exc)).removeprefix("Value error, ")
    return str(exc)
