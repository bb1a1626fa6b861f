"""Admin API: ``POST /explain`` — the decision a request *would* get, without calling a
provider, reserving budget or journaling anything (``Governor.plan(..., explain=True)`` is pure:
it reads the in-memory config, prices, policies, counters and provider health).

An admin explains for any scopes it names; any other key explains only as itself (its own
project, principal and key, its model allow-list and its mode permission).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from spendgate.admin.auth import Viewer
from spendgate.admin.context import AdminContext
from spendgate.admin.deps import get_context, get_viewer
from spendgate.admin.errors import AdminError
from spendgate.admin.views import PlannedDecision, planned_decision
from spendgate.domain.planner import ModelNotAllowedError, ModelNotFoundError
from spendgate.domain.requests import ChatRequest, RequestError
from spendgate.domain.routing import RoutingMode, TaskClass
from spendgate.domain.scopes import RequestScopes

__all__ = ["ExplainRequest", "router"]

router = APIRouter(tags=["explain"])
_PARSERS = {
    "openai": ChatRequest.from_openai,
    "anthropic": ChatRequest.from_anthropic,
    "responses": ChatRequest.from_responses,
}

_EXAMPLE: JsonDict = {
    "request": {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Summarise this paragraph: ..."}],
        "max_tokens": 300,
    },
    "protocol": "openai",
    "project": "acme",
    "principal": "alice",
    "task_class": "auxiliary_summary",
}


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    request: dict[str, Any] = Field(
        description=(
            "An OpenAI chat completions body, an Anthropic messages body or an OpenAI "
            "Responses API body."
        )
    )
    protocol: Literal["openai", "anthropic", "responses"] = "openai"
    project: str | None = None
    principal: str | None = None
    api_key: str | None = Field(default=None, description="The API key id the request uses.")
    agent: str | None = None
    session: str | None = None
    task_class: TaskClass = TaskClass.PRIMARY_INTERACTIVE
    routing_mode: RoutingMode | None = Field(
        default=None,
        description="The mode the request would ask for (x-spendgate-routing-mode): it may "
        "only make the mode stricter unless the key may relax it.",
    )


def _scopes(
    viewer: Viewer, body: ExplainRequest
) -> tuple[RequestScopes, bool, frozenset[str] | None]:
    """The request's scopes, whether it may relax the mode, and its model allow-list."""
    asked = {
        "project": body.project,
        "principal": body.principal,
        "api_key": body.api_key,
        "agent": body.agent,
        "session": body.session,
    }
    scopes = viewer.request_scopes(asked, "body")
    key = viewer.key
    if viewer.is_admin or key is None:
        # An admin explains for a request without the override permission: what a client
        # can do by itself.
        return scopes, False, None
    return scopes, key.may_relax_mode, key.models


@router.post("/explain", summary="The routing decision a request would get (nothing is spent)")
async def explain(
    ctx: Annotated[AdminContext, Depends(get_context)],
    viewer: Annotated[Viewer, Depends(get_viewer)],
    body: Annotated[ExplainRequest, Body()],
) -> PlannedDecision:
    # async on purpose: planning reads the ledger's in-memory counters, which the event loop
    # mutates; on the loop it sees them consistently (and it does no I/O).
    scopes, may_relax, allowed = _scopes(viewer, body)
    try:
        chat = _PARSERS[body.protocol](body.request)
        decision = ctx.governor.plan(
            chat,
            scopes,
            task_class=body.task_class,
            requested_mode=body.routing_mode,
            may_relax_mode=may_relax,
            allowed_models=allowed,
            decision_id=f"explain-{uuid.uuid4().hex[:16]}",
            explain=True,
            health=ctx.upstreams.health.states(time.monotonic()),
        )
    except RequestError as error:
        param = f"body.request.{error.param}" if error.param else "body.request"
        raise AdminError(422, "invalid_request", str(error), param=param) from None
    except ModelNotFoundError as error:
        raise AdminError(404, "model_not_found", str(error), param="body.request.model") from None
    except ModelNotAllowedError as error:
        raise AdminError(403, "model_not_allowed", str(error), param="body.request.model") from None
    return planned_decision(decision)
