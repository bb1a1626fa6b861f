"""The proxy pipeline of one chat request:

auth → parse → plan → reserve → upstream call (failover before the first byte, budgets
re-checked at each fallback's price) → settle → response with ``x-spendgate-*`` headers.

Every path that reaches a provider is metered: usage comes from the provider, or is
estimated from the text when the provider reports none; a client that disconnects mid-stream
is charged for the input and the output streamed so far.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NoReturn

import orjson

from spendgate.config.schema import DEFAULT_MAX_BODY_BYTES
from spendgate.domain.approvals import ApprovalScope, ApprovalState, Grant, requester_of
from spendgate.domain.budgets import (
    BudgetEvaluation,
    BudgetStatus,
    Metric,
    OverrideGrant,
    most_severe,
)
from spendgate.domain.endpoints import parse_completion, parse_embeddings
from spendgate.domain.estimates import output_ceiling, worst_case_note
from spendgate.domain.keys import ApiKey
from spendgate.domain.models import Model
from spendgate.domain.planner import (
    AUTO_MODEL,
    EMBEDDINGS_BLOCKED,
    EMBEDDINGS_NOT_DEGRADED,
    ModelNotAllowedError,
    ModelNotFoundError,
    ModelUnsuitedError,
)
from spendgate.domain.pricing import Usage
from spendgate.domain.rate_limits import RateVerdict
from spendgate.domain.requests import ChatRequest, Protocol, RequestError
from spendgate.domain.routing import (
    REFUSED,
    RoutingAction,
    RoutingDecision,
    RoutingMode,
    UpstreamAttempt,
)
from spendgate.domain.tokens import estimate_text_tokens
from spendgate.domain.translate import (
    RESPONSES_TERMINAL_EVENTS,
    AnthropicToOpenAIStream,
    AnthropicToResponsesStream,
    OpenAIToAnthropicStream,
    TranslationError,
    anthropic_request_to_openai,
    anthropic_response_to_openai,
    anthropic_response_to_responses,
    encode_sse,
    openai_request_to_anthropic,
    openai_response_to_anthropic,
    responses_request_to_anthropic,
)
from spendgate.gateway import access
from spendgate.gateway.approvals import ApprovalDesk, ApprovalNeeded
from spendgate.gateway.asgi import (
    ClientDisconnectedError,
    DisconnectWatch,
    Receive,
    Scope,
    Send,
    respond,
    start_response,
)
from spendgate.gateway.auth import KeyRing
from spendgate.gateway.endpoints import (
    OPENAI_ONLY,
    embeddings_usage,
    openai_only_body,
    unserved,
)
from spendgate.gateway.errors import (
    GatewayError,
    approval_required,
    bad_request,
    budget_exceeded,
    ledger_unavailable,
    model_not_allowed,
    model_not_found,
    model_unsuited,
    upstream_error,
)
from spendgate.gateway.headers import (
    HeaderError,
    RequestHeaders,
    decision_headers,
    mode_headers,
)
from spendgate.gateway.intake import read_request
from spendgate.gateway.metrics import GatewayMetrics
from spendgate.gateway.rate_limits import rate_headers, rate_limited
from spendgate.governor import Governor
from spendgate.ledger.base import LedgerUnavailableError
from spendgate.providers.base import HttpUpstream, UpstreamCall, UpstreamResponse
from spendgate.providers.errors import UpstreamError
from spendgate.providers.failover import Attempt, FailoverError, MeteredStream, Target
from spendgate.providers.registry import UpstreamRegistry
from spendgate.store.records import Approval

__all__ = ["ChatProxy"]

_SSE_HEADERS = ((b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"))


class ChatProxy:
    def __init__(
        self,
        governor: Governor,
        keys: KeyRing,
        upstreams: UpstreamRegistry,
        metrics: GatewayMetrics,
        *,
        max_body: int = DEFAULT_MAX_BODY_BYTES,
        approvals: ApprovalDesk | None = None,
    ) -> None:
        self.governor = governor
        self.approvals = approvals or ApprovalDesk(None)
        self.keys = keys
        self.upstreams = upstreams
        self.metrics = metrics
        self.max_body = max_body
        # Admitted requests still running: their reservations are kept alive (``in_flight``).
        self._running: set[_ProxiedRequest] = set()
        # Per request shape that cannot be translated: the models whose provider speaks it
        # (worked out again when the governance state's models change).
        self._served: dict[Protocol, tuple[Mapping[str, Model], frozenset[str]]] = {}

    def served_models(self, protocol: Protocol) -> frozenset[str]:
        models = self.governor.state.models
        known = self._served.get(protocol)
        if known is not None and known[0] is models:
            return known[1]
        served = frozenset(
            model.id
            for model in models.values()
            if protocol in self.upstreams[model.provider].protocols
        )
        self._served[protocol] = (models, served)
        return served

    def in_flight(self) -> list[str]:
        """The reservation (decision) ids of every request still running."""
        return [rid for request in self._running for rid in request.reservation_ids()]

    async def handle(self, scope: Scope, receive: Receive, send: Send, protocol: Protocol) -> None:
        started = time.perf_counter()
        route = scope["path"]
        status = 500
        request: _ProxiedRequest | None = None  # authenticated and parsed
        admitted = False  # its budget reserved
        refusal: GatewayError | None = None
        try:
            request = await self._parse(scope, receive, protocol)
            await self._admit(request, receive)
            admitted = True
            self._running.add(request)
            await request.run(send, receive)
            status = 200
            if request.upstream_s is not None:
                added = time.perf_counter() - started - request.upstream_s
                self.metrics.added_latency.observe(max(added, 0.0))
        except GatewayError as error:
            status, refusal = error.status, error
            await respond(send, status, error.body(protocol), error.response_headers())
        except ClientDisconnectedError:
            status = 499  # gone before its body was complete: nobody to answer, nothing spent
        except BaseException:
            # A bug (or a cancellation) after admission: never leave budget reserved, and
            # journal the request. Usage the provider already billed was settled where it
            # arrived (reply, relay_stream).
            if admitted and request is not None:
                request.fail("gateway_error")
            self.metrics.requests.labels(route, "500").inc()
            raise
        finally:
            if request is not None:
                self._running.discard(request)
            if access.enabled():
                _log_access(route, status, time.perf_counter() - started, request, refusal)
        self.metrics.requests.labels(route, str(status)).inc()

    async def _admit(self, request: _ProxiedRequest, receive: Receive) -> None:
        """Plan and reserve; a request that needs an approval asks for it and, when it may
        wait (``x-spendgate-approval-wait``), waits for it and tries again once granted.
        Raises GatewayError to refuse."""
        desk = self.approvals
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(request.options.approval_wait, desk.max_wait_s)
        while True:
            try:
                await request.admit()
            except _ApprovalRequiredError as ask:
                approval = await desk.ask(ask.needed)
                if approval is None:
                    raise ask.error from None
                left = deadline - loop.time()
                if left <= 0:
                    raise ask.error.with_approval(
                        approval.id, f"Approval request {approval.id} is pending."
                    ) from None
                decided = await _until_decided(desk.wait(approval.id, left), receive)
                if decided is None or decided.state is not ApprovalState.APPROVED:
                    raise ask.error.with_approval(
                        approval.id, _outcome(approval, decided)
                    ) from None
                grant = decided.grant()
                if grant is not None:  # decided elsewhere: this process learns it now
                    self.governor.grants.put(grant)
                continue
            await request.use_once_grants()
            return

    async def _parse(self, scope: Scope, receive: Receive, protocol: Protocol) -> _ProxiedRequest:
        """Authenticate and parse: everything before the budget; raises GatewayError to
        refuse."""
        headers, key, payload = await read_request(scope, receive, self.keys, self.max_body)
        try:
            chat = _PARSERS[protocol](payload)
            options = RequestHeaders.parse(headers, key.tenant)
            allowed = key.models
            # Embeddings need no such filter: they keep an embeddings model, which the config
            # only allows on providers with an embeddings API.
            if protocol is Protocol.COMPLETIONS:
                allowed = self._only_served(chat, allowed)
        except RequestError as error:
            raise bad_request(str(error), error.param) from None
        except HeaderError as error:
            raise bad_request(str(error), error.header) from None
        return _ProxiedRequest(self, key, protocol, payload, chat, options, allowed)

    def _only_served(self, chat: ChatRequest, allowed: frozenset[str] | None) -> frozenset[str]:
        """The models a request that cannot be translated may be planned on: those whose
        provider speaks it (and the key allows). Raises RequestError when the model asked for
        is not one of them, so the client learns why rather than reading "not allowed"."""
        served = self.served_models(chat.protocol)
        state = self.governor.state
        name = state.settings.default_model if chat.model == AUTO_MODEL else chat.model
        model = state.models.get(name)
        if model is not None and model.id not in served:
            kind = self.upstreams[model.provider].provider.kind
            raise unserved(model, kind, chat.protocol)
        return served if allowed is None else served & allowed


_PARSERS = {
    Protocol.OPENAI: ChatRequest.from_openai,
    Protocol.ANTHROPIC: ChatRequest.from_anthropic,
    Protocol.RESPONSES: ChatRequest.from_responses,
    Protocol.EMBEDDINGS: parse_embeddings,
    Protocol.COMPLETIONS: parse_completion,
}


class _ApprovalRequiredError(Exception):
    """Admission refused a request that an approval would let through."""

    def __init__(self, error: GatewayError, needed: ApprovalNeeded) -> None:
        super().__init__(error.message)
        self.error = error
        self.needed = needed


_NO_GRANTS: Mapping[str, OverrideGrant] = {}


def _needing_approval(decision: RoutingDecision) -> BudgetEvaluation | None:
    if decision.routing_action is not RoutingAction.APPROVAL_REQUIRED:
        return None
    for evaluation in decision.budget_evaluations:
        if evaluation.status is BudgetStatus.APPROVAL_REQUIRED:
            return evaluation
    return None


def _outcome(asked: Approval, decided: Approval | None) -> str:
    if decided is None:
        return f"Approval request {asked.id} is still pending: no decision came in time."
    note = f" ({decided.note})" if decided.note else ""
    return f"Approval request {asked.id} was {decided.state.value}{note}."


def _is_once(grant: Grant | None) -> bool:
    return grant is not None and grant.scope is ApprovalScope.ONCE


async def _until_decided(
    waiting: Coroutine[Any, Any, Approval | None], receive: Receive
) -> Approval | None:
    """``waiting``'s result; raises ClientDisconnectedError if the client leaves first."""
    wait = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(_disconnect(receive))
    try:
        await asyncio.wait({wait, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (wait, gone):
            if not task.done():
                task.cancel()
    if not wait.done() or wait.cancelled():
        raise ClientDisconnectedError
    return wait.result()


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _ProxiedRequest:
    """One request, from parsed to finished: its decision(s), the upstream call and the
    settlement."""

    def __init__(
        self,
        proxy: ChatProxy,
        key: ApiKey,
        protocol: Protocol,
        payload: dict[str, Any],
        chat: ChatRequest,
        options: RequestHeaders,
        allowed: frozenset[str] | None,
    ) -> None:
        self.proxy = proxy
        self.governor = proxy.governor
        self.key = key
        self.protocol = protocol
        self.payload = payload
        self.chat = chat
        self.options = options
        self.allowed = allowed  # the models it may be planned on (None: any)
        self.decision: RoutingDecision
        self.planned: RoutingDecision | None = None  # ``decision``, once planned
        # The last settlement (the decision the request ended with), for the access log.
        self.settled: tuple[RoutingDecision, Usage, Decimal | None] | None = None
        self.decisions: dict[Target, RoutingDecision] = {}
        self.journaled: set[str] = set()  # ids of this request's settled or abandoned decisions
        self.upstream_s: float | None = None  # non-stream upstream latency, for the metric
        self.grants: Mapping[str, OverrideGrant] = _NO_GRANTS  # the overrides covering it
        self.once_grants: list[str] = []  # ``once`` grants it took
        self.rates: RateVerdict | None = None  # the rate limits' state, when any applied
        self.rate_holder = ""  # the decision carrying its rate-limit hold (failover moves it)

    # -- governance ----------------------------------------------------------------------

    async def admit(self) -> None:
        """Plan and reserve (with the approved overrides that cover the request); raises
        GatewayError to refuse, ``_ApprovalRequiredError`` when an approval would let it through."""
        requester = requester_of(self.key.principal, self.key.id)
        book = self.governor.grants
        self.grants = book.for_request(requester, self.options.session_id, datetime.now(UTC))
        # The ``once`` grants among them as planning sees them: one that another request
        # takes while this one reserves (an await) is gone for this one, whatever it planned.
        once: dict[str, Grant] = {}
        for override in self.grants.values():
            grant = book.get(override.approval_id)
            if grant is not None and _is_once(grant):
                once[override.approval_id] = grant
        planned = self.plan(self.chat, self.allowed)
        self.decision = self.planned = await self.governor.recheck(
            planned, lambda: self.plan(self.chat, self.allowed)
        )
        self.rate_holder = self.decision.id
        try:
            await self.reserve(self.decision)
        except GatewayError as error:
            needs = _needing_approval(self.decision)
            if needs is None or error.code != "approval_required":
                raise
            raise _ApprovalRequiredError(
                error, ApprovalNeeded(self.key, self.options.session_id, self.decision, needs)
            ) from None
        self.once_grants = self._take_once_grants(once) if once else []

    def _take_once_grants(self, once: Mapping[str, Grant]) -> list[str]:
        """Take the ``once`` grants the reserved decision uses: now, before any await, so no
        other request of this process plans with them. One that another request took while
        this one reserved was not this request's to use: it is refused as if another process
        had used the grant first (``use_once_grants``), and gives back the others it took."""
        book = self.governor.grants
        used: list[str] = []
        for evaluation in self.decision.budget_evaluations:
            approval_id = evaluation.approval_id
            if approval_id is None or evaluation.status is not BudgetStatus.OVERRIDE_APPLIED:
                continue
            if approval_id in once:
                used.append(approval_id)
        taken = [approval_id for approval_id in used if book.take(approval_id)]
        if len(taken) == len(used):
            return taken
        for approval_id in taken:
            book.put(once[approval_id])
        self.governor.abandon(self.decision, REFUSED)
        lost = next(approval_id for approval_id in used if approval_id not in taken)
        raise approval_required(
            f"The approval {lost} was already used by another request.",
            self.decision.id,
            None,
            lost,
        )

    async def use_once_grants(self) -> None:
        """Record the ``once`` grants this request used (in the database: across processes
        and restarts, one request only). One another process used first refuses it."""
        repository = self.proxy.approvals.repository
        if not self.once_grants or repository is None:
            return
        for approval_id in self.once_grants:
            if not await asyncio.to_thread(repository.consume, approval_id):
                self.governor.abandon(self.decision, REFUSED)
                raise approval_required(
                    f"The approval {approval_id} was already used by another request.",
                    self.decision.id,
                    None,
                    approval_id,
                )

    def plan(
        self, chat: ChatRequest, allowed: frozenset[str] | None, provider: str | None = None
    ) -> RoutingDecision:
        try:
            return self.governor.plan(
                chat,
                self.key.scopes(self.options.agent_id, self.options.session_id),
                task_class=self.options.task_class,
                requested_mode=self.options.routing_mode,
                may_relax_mode=self.key.may_relax_mode,
                allowed_models=allowed,
                health=self.proxy.upstreams.health.states(time.monotonic()),
                grants=self.grants,
                provider=provider,
            )
        except ModelNotFoundError as error:
            raise model_not_found(error.model) from None
        except ModelNotAllowedError as error:
            raise model_not_allowed(error.model) from None
        except ModelUnsuitedError as error:
            raise model_unsuited(str(error)) from None

    async def reserve(self, decision: RoutingDecision, takes_over: str | None = None) -> None:
        """Reserve the decision's upper bound, or refuse with the contract's error (a
        failover ``takes_over`` the rate-limit hold of the decision it replaces)."""
        try:
            outcome = await self.governor.reserve_async(
                decision, grants=self.grants, takes_over=takes_over
            )
        except LedgerUnavailableError:
            # Journaled like any refusal: the audit trail shows what was turned away.
            self.governor.abandon(decision, "ledger_unavailable")
            self.journaled.add(decision.id)
            raise ledger_unavailable(decision.id) from None
        self.proxy.metrics.decisions.labels(decision.routing_action.value).inc()
        if outcome.rate is not None:
            self.rates = outcome.rate
            if outcome.rate.refused is not None:
                self.proxy.metrics.rate_limited.labels(outcome.rate.refused.limit_id).inc()
                raise rate_limited(outcome.rate, decision.id)
        if outcome.ok:
            return
        worst = most_severe(decision.budget_evaluations)
        message = (
            worst.message
            if worst is not None and decision.blocked
            else f"Budget {outcome.refused_policy} has no room left for this request."
        )
        if decision.blocked and EMBEDDINGS_NOT_DEGRADED in decision.reason_codes:
            message += " " + EMBEDDINGS_BLOCKED
        policy_id = outcome.refused_policy or (worst.policy_id if worst else None)
        metrics = {e.metric for e in decision.budget_evaluations if e.policy_id == policy_id}
        if metrics - {Metric.REQUESTS}:  # a count of requests has no worst case
            message += " " + worst_case_note(
                decision.estimate, self.chat.max_tokens, self.chat.choices
            )
        error = (
            approval_required(message, decision.id, policy_id, None)
            if decision.routing_action is RoutingAction.APPROVAL_REQUIRED
            else budget_exceeded(message, decision.id, policy_id)
        )
        raise replace(error, headers=(*error.headers, *mode_headers(decision)))

    def headers(self, decision: RoutingDecision) -> list[tuple[bytes, bytes]]:
        """The answer's headers: the decision's, and the rate limits' when any applied."""
        headers = decision_headers(decision)
        if self.rates is not None:
            headers += [(k.encode(), v.encode()) for k, v in rate_headers(self.rates)]
        return headers

    def reservation_ids(self) -> list[str]:
        """The decisions that may hold a reservation: the planned one and any fallback's."""
        return list(dict.fromkeys((self.decision.id, *(d.id for d in self.decisions.values()))))

    def failover_targets(self) -> list[Target]:
        """The planned deployment, then the decision's route: the same model's other healthy
        deployments, then the fallback models' ones."""
        decision = self.decision
        return [
            Target(decision.target_model, decision.target_provider),
            *(Target(step.model, step.provider) for step in decision.route),
        ]

    def decision_for(self, target: Target) -> RoutingDecision | None:
        """The decision ``target`` was (or would be) called under, once known."""
        found = self.decisions.get(target)
        if found is None and target == Target(
            self.decision.target_model, self.decision.target_provider
        ):
            return self.decision
        return found

    async def prepare(self, target: Target, tried: Sequence[Attempt]) -> UpstreamCall | None:
        decision = self.decision_for(target) or self.carried_over(target, tried)
        if decision is None:
            # Another model, or a deployment the previous decision cannot cover: plan and
            # reserve again, on that deployment, at that model's price.
            try:
                decision = self.as_failover(
                    self.plan(
                        replace(self.chat, model=target.model),
                        frozenset({target.model}),
                        target.provider,
                    ),
                    tried,
                )
            except GatewayError:
                return None
            # Kept even when its budget refuses it: it is journaled, the attempts name it.
            self.decisions[target] = decision
            try:
                await self.reserve(decision, takes_over=self.rate_holder)
            except GatewayError:
                return None
            self.rate_holder = decision.id
        self.decisions[target] = decision
        try:
            return self.upstream_call(self.governor.state.models[target.model], decision)
        except RequestError as error:
            # The request cannot be expressed in this provider's protocol (e.g. n > 1 for
            # Anthropic): a 400 for the model asked for, a candidate skipped for a fallback.
            if decision is self.decision:
                raise bad_request(str(error), error.param) from None
            del self.decisions[target]
            if decision.id not in self.reservation_ids():  # not carried over from another
                self.governor.release(decision.id)
            return None

    def carried_over(self, target: Target, tried: Sequence[Attempt]) -> RoutingDecision | None:
        """The decision of the same model's deployment that just failed, moved to
        ``target``: same model, same price, so its reservation covers this call too — unless
        a call under it may have been billed (its reservation pays for that one), or other
        budgets apply on ``target``'s provider (policies filtered by provider)."""
        if not tried or tried[-1].target.model != target.model:
            return None
        failed = tried[-1]
        if failed.outcome == "skipped_by_caller":  # its decision holds no reservation
            return None
        previous = self.decision_for(failed.target)
        if previous is None or previous.blocked:
            return None
        for attempt in tried:
            under = self.decision_for(attempt.target)
            billed = attempt.error is not None and attempt.error.may_have_billed
            if billed and under is not None and under.id == previous.id:
                return None
        state = self.governor.state
        task = previous.task_class.value
        if state.applicable(previous.scopes, target.model, target.provider, task) != (
            state.applicable(previous.scopes, target.model, previous.target_provider, task)
        ):
            return None
        deployment = state.models[target.model].deployment_on(target.provider)
        weight = f" (weight {deployment.weight})" if deployment is not None else ""
        return replace(
            previous,
            target_provider=target.provider,
            health=self.proxy.upstreams.health.get(target.provider).state(time.monotonic()),
            routing_action=RoutingAction.FAILOVER,
            reason_codes=tuple(dict.fromkeys((*previous.reason_codes, "deployment_failover"))),
            explanation=(
                *previous.explanation,
                f"{failed.target.model} on {failed.target.provider} failed ({failed.outcome}): "
                f"failover to its deployment on {target.provider}{weight}; same model and "
                "price, so its reservation carries over.",
            ),
        )

    def as_failover(self, decision: RoutingDecision, tried: Sequence[Attempt]) -> RoutingDecision:
        """A fallback's decision is planned as if its model had been asked for: record what
        the client really asked for, and that this is a failover (not a plain proceed)."""
        failed = tried[-1] if tried else None
        why = (
            f"{failed.target.model} on {failed.target.provider} failed ({failed.outcome})"
            if failed is not None
            else "The planned candidate was unavailable"
        )
        return replace(
            decision,
            requested_model=self.decision.requested_model,
            routing_action=decision.routing_action if decision.blocked else RoutingAction.FAILOVER,
            reason_codes=(*decision.reason_codes, "provider_failed_failover"),
            explanation=(
                *decision.explanation,
                f"{why}: failover to {decision.target_model} on {decision.target_provider}, "
                "budgets re-checked at its price.",
            ),
        )

    def upstream_call(self, model: Model, decision: RoutingDecision) -> UpstreamCall:
        provider = decision.target_provider
        upstream = self.proxy.upstreams[provider]
        upstream_model = model.upstream_model_on(provider)
        # Enforced, the provider is held to the output ceiling this model's reservation was
        # made for: otherwise a request without max_tokens (or above the model's maximum) may
        # generate, and be billed, far beyond it. suggest and dry_run send the request as is.
        ceiling = output_ceiling(model, self.chat.max_tokens)
        enforced = decision.mode is RoutingMode.ENFORCED
        if self.protocol in OPENAI_ONLY:
            if self.protocol not in upstream.protocols:
                raise unserved(model, upstream.provider.kind, self.protocol)
            body = openai_only_body(
                self.payload, self.chat, upstream_model, ceiling=ceiling if enforced else None
            )
            return UpstreamCall(self.protocol, body=body)
        body = dict(self.payload)
        if self.protocol is Protocol.RESPONSES and self.protocol not in upstream.protocols:
            return self._responses_elsewhere(upstream, body, model, ceiling, enforced)
        if self.protocol in upstream.protocols:
            body["model"] = upstream_model
            if self.chat.stream and self.protocol is Protocol.OPENAI:
                # Ask for the usage chunk so the stream can be settled exactly.
                body["stream_options"] = {
                    **(body.get("stream_options") or {}),
                    "include_usage": True,
                }
            if enforced:
                _limit_output(body, self.protocol, ceiling)
            return UpstreamCall(self.protocol, body=body)
        if self.protocol is Protocol.OPENAI:
            translated = openai_request_to_anthropic(
                body, model=upstream_model, default_max_tokens=ceiling
            )
            if enforced:
                _limit_output(translated, Protocol.ANTHROPIC, ceiling)
            return UpstreamCall(Protocol.ANTHROPIC, body=translated)
        translated = anthropic_request_to_openai(
            body, model=upstream_model, max_tokens_field=_OPENAI_OUTPUT_LIMIT
        )
        if enforced:
            _limit_output(translated, Protocol.OPENAI, ceiling)
        return UpstreamCall(Protocol.OPENAI, body=translated)

    def _responses_elsewhere(
        self,
        upstream: HttpUpstream,
        body: dict[str, Any],
        model: Model,
        ceiling: int,
        enforced: bool,
    ) -> UpstreamCall:
        """A Responses request for a provider that does not speak the Responses API: an
        Anthropic one gets it translated; any other cannot take it (a 400, or skipped)."""
        provider = upstream.provider.id
        if Protocol.ANTHROPIC not in upstream.protocols:
            raise TranslationError(
                f"The Responses API is not available for {model.id} (provider "
                f"{provider}): use /v1/chat/completions"
            )
        translated = responses_request_to_anthropic(
            body, model=model.upstream_model_on(provider), default_max_tokens=ceiling
        )
        if enforced:
            _limit_output(translated, Protocol.ANTHROPIC, ceiling)
        return UpstreamCall(Protocol.ANTHROPIC, body=translated)

    @property
    def client_wants_usage(self) -> bool:
        """Did an OpenAI client ask for the stream's usage chunk itself? (The gateway always
        asks the provider for it, to settle exactly.)"""
        options = self.payload.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    def release_unused(self, used: Target | None) -> None:
        """Release the reservations of candidates that did not serve the request (releasing
        one that was never made, or twice, is a no-op)."""
        served = self.decision_for(used) if used is not None else None
        # By id: a deployment failover carries the planned decision (and its id) over.
        for decision_id in self.reservation_ids():
            if served is None or decision_id != served.id:
                self.governor.release(decision_id)

    def settle(
        self,
        decision: RoutingDecision,
        usage: Usage | None,
        output_text: str,
        latency_s: float,
        status: str,
        reported: Usage | None = None,
    ) -> Decimal | None:
        """Settle ``decision`` on the provider's usage or, when it reported none, on an
        estimate (marked as such): the input it ``reported`` before stopping (Anthropic's
        ``message_start``) or else the decision's input upper bound, and the output counted
        from ``output_text``."""
        estimated = usage is None
        if usage is None:
            usage = Usage(
                input_tokens=(
                    reported.input_tokens if reported else decision.estimate.input_tokens_upper
                ),
                output_tokens=estimate_text_tokens(output_text),
                cached_input_tokens=reported.cached_input_tokens if reported else 0,
            )
        cost = self.governor.settle(
            decision,
            usage,
            latency_ms=latency_s * 1000,
            status=status,
            usage_estimated=estimated,
        )
        self.journaled.add(decision.id)
        self.settled = (decision, usage, cost)
        self.proxy.metrics.record_usage(decision.target_model, usage, cost)
        return cost

    def fail(self, status: str) -> None:
        """The request ends without an answer: release every reservation and journal the
        planned decision with ``status``, unless a decision of this request was journaled."""
        self.release_unused(None)
        if not self.journaled:
            self.governor.abandon(self.decision, status)
            self.journaled.add(self.decision.id)

    def conclude_attempts(
        self, attempts: Sequence[Attempt], final: RoutingDecision
    ) -> RoutingDecision:
        """After failover, return ``final`` (the decision the request ends with) carrying what
        happened to each attempt, and settle every failed attempt the provider may have
        billed on its estimated input (marked estimated), each under its own decision —
        ``final`` included, carrying the attempts. Costs nothing in the common case (the
        first candidate answered)."""
        if len(attempts) == 1 and attempts[0].error is None:
            return final
        records = []
        billed_calls: list[tuple[RoutingDecision, Attempt]] = []
        for attempt in attempts:
            decision = self.decision_for(attempt.target)
            error = attempt.error
            billed = error is not None and error.may_have_billed and decision is not None
            usage = cost = None
            if billed and decision is not None:
                usage = Usage(input_tokens=decision.estimate.input_tokens_upper)
                cost = self.governor.cost(decision, usage).upper_usd
                billed_calls.append((decision, attempt))
            # Whether its decision has a row of its own: settled, refused (a fallback the
            # budget could not afford: "skipped_by_caller"), or ``final`` itself.
            journaled = billed or attempt.outcome == "skipped_by_caller"
            journaled = journaled or (decision is not None and decision.id == final.id)
            records.append(
                UpstreamAttempt(
                    model=attempt.target.model,
                    provider=attempt.target.provider,
                    outcome=attempt.outcome,
                    may_have_billed=billed,
                    decision_id=decision.id if journaled and decision is not None else None,
                    usage=usage,
                    cost_usd=cost,
                )
            )
        concluded = replace(final, attempts=tuple(records))
        for decision, attempt in billed_calls:
            self.settle(
                replace(decision, attempts=concluded.attempts)
                if decision.id == final.id
                else decision,
                None,
                "",
                attempt.latency_s or 0.0,
                f"upstream_{attempt.outcome}",
            )
        return concluded

    # -- the call ------------------------------------------------------------------------

    async def run(self, send: Send, receive: Receive) -> None:
        failover = self.proxy.upstreams.failover
        targets = self.failover_targets()
        try:
            if self.chat.stream:
                streamed = await failover.stream(targets, self.prepare)
                target, stream, attempts = streamed.target, streamed.response, streamed.attempts
            else:
                completed = await failover.send(targets, self.prepare)
                target, response = completed.target, completed.response
                attempts = completed.attempts
        except FailoverError as error:
            self.fail_over_nowhere(error)
        except GatewayError as error:  # the request cannot be sent to the model asked for
            self.fail("invalid_request")
            raise replace(error, references={"decision_id": self.decision.id}) from None
        decision = self.conclude_attempts(attempts, self.decisions[target])
        self.release_unused(target)
        if self.chat.stream:
            await self.relay_stream(send, receive, decision, stream)
        else:
            await self.reply(send, decision, response)

    def fail_over_nowhere(self, error: FailoverError) -> NoReturn:
        """Every candidate failed: settle what the providers may have billed, journal the
        planned decision (``upstream_error``, unless its own call may have been billed and
        was settled as such) and answer 502."""
        decision = self.conclude_attempts(error.attempts, self.decision)
        self.release_unused(None)
        if decision.id not in self.journaled:
            self.governor.abandon(decision, "upstream_error")
            self.journaled.add(decision.id)
        failure = upstream_error(f"Every candidate provider failed: {error}", decision.id)
        if error.status < 500:
            # The provider refused the request itself (a 4xx): sending it again cannot
            # help, so tell the SDKs not to retry the 502 (they retry every 5xx).
            failure = replace(failure, headers=(("x-should-retry", "false"),))
        raise failure from None

    async def reply(
        self, send: Send, decision: RoutingDecision, response: UpstreamResponse
    ) -> None:
        # Settled right after the answer is written: settling (ledger, journal, metrics) is off
        # the latency the client sees, and what it sends next is read only once this returns
        # (no await in between), so a client that has the whole answer still finds it
        # counted. While a slow reader holds the write back, the reservation (an upper bound)
        # counts in its place.
        status = "gateway_error"  # the provider answered (and billed) whatever happens next
        try:
            if response.protocol is self.protocol:
                body = response.raw
            elif self.protocol is Protocol.RESPONSES:
                body = orjson.dumps(
                    anthropic_response_to_responses(
                        response.body,
                        created=int(time.time()),
                        model=decision.target_model,
                        request=self.payload,
                    )
                )
            elif self.protocol is Protocol.OPENAI:
                body = orjson.dumps(
                    anthropic_response_to_openai(
                        response.body, created=int(time.time()), model=decision.target_model
                    )
                )
            else:
                body = orjson.dumps(
                    openai_response_to_anthropic(response.body, model=decision.target_model)
                )
            status = "ok"
            self.upstream_s = response.latency_s
            await respond(send, 200, body, self.headers(decision))
        finally:
            usage = response.usage
            if usage is None and self.protocol is Protocol.EMBEDDINGS:
                usage = embeddings_usage(response.body)
            # The text is only needed to estimate output tokens when the provider gave none.
            text = _response_text(response) if usage is None else ""
            self.settle(decision, usage, text, response.latency_s, status)
            latency = self.proxy.metrics.upstream_latency
            latency.labels(response.provider).observe(response.latency_s)

    async def relay_stream(
        self, send: Send, receive: Receive, decision: RoutingDecision, stream: MeteredStream
    ) -> None:
        translator: _Relay | None = None
        if stream.stream.protocol is not self.protocol:
            translator = self.stream_translator(decision)
        elif self.protocol in _USAGE_CHUNKS and not self.client_wants_usage:
            translator = _UsageChunkFilter()
        watch = DisconnectWatch(receive)
        status = "gateway_error"  # unless the relay ends in one of the ways below
        end = _StreamEnd(stream.stream.protocol)
        held = b""
        try:
            await start_response(
                send, 200, [*self.headers(decision), *_SSE_HEADERS], b"text/event-stream"
            )
            gone = False
            try:
                async for chunk in stream:
                    if watch.gone.is_set():
                        gone = True
                        break
                    out = translator.feed(chunk) if translator is not None else chunk
                    # The stream's terminal event (and anything after it) is held back until
                    # the request is settled: a client that has the whole answer must find it
                    # counted.
                    if end.feed(chunk):
                        held += out
                    elif out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
            except UpstreamError:
                pass  # broken off: told below, unless its end had already arrived
            if gone:
                status, tail = "client_disconnected", held
            elif end.seen:
                # A Responses stream may end in ``response.failed``: billed, but no answer.
                status = "ok" if stream.stream.observer.error is None else "upstream_error"
                tail = held + (translator.close() if translator is not None else b"")
            else:
                # Cut (or ended) before its terminal event: the client must not take the
                # partial answer for a whole one. An error the upstream sent was relayed.
                status = "upstream_broke_mid_stream"
                tail = b"" if stream.stream.observer.error is not None else self.broken(decision)
        finally:
            # Settled whatever happened (the provider billed what it streamed so far), and
            # before the client sees the end: once it has the whole answer, it is counted.
            watch.stop()
            await stream.aclose()
            observer = stream.stream.observer
            elapsed = stream.stream.elapsed_s
            self.settle(
                decision,
                stream.usage,
                observer.output_text,
                elapsed,
                status,
                reported=observer.input_usage,
            )
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        self.proxy.metrics.upstream_latency.labels(stream.stream.provider).observe(
            stream.stream.elapsed_s
        )

    def stream_translator(self, decision: RoutingDecision) -> _Relay:
        """The translator of an upstream stream of the other protocol into the client's."""
        created = int(time.time())
        if self.protocol is Protocol.RESPONSES:
            return AnthropicToResponsesStream(
                created=created, model=decision.target_model, request=self.payload
            )
        if self.protocol is Protocol.OPENAI:
            return AnthropicToOpenAIStream(
                created=created,
                model=decision.target_model,
                include_usage=self.client_wants_usage,
            )
        return OpenAIToAnthropicStream(model=decision.target_model)

    def broken(self, decision: RoutingDecision) -> bytes:
        """The error event that ends a stream the upstream broke off, in the client's
        protocol, as the providers send theirs (the official SDKs raise it)."""
        error = upstream_error(
            "The upstream provider's stream broke off before its end: the answer is incomplete.",
            decision.id,
        ).body(self.protocol)
        if self.protocol is Protocol.RESPONSES:  # its events name themselves, as OpenAI's do
            return encode_sse({"type": "error", **orjson.loads(error)}, "error")
        return encode_sse(error, "error" if self.protocol is Protocol.ANTHROPIC else None)


class _StreamEnd:
    """Finds a stream's terminal event (OpenAI's ``data: [DONE]``, Anthropic's
    ``event: message_stop``, the Responses API's ``event: response.completed`` and its two
    siblings) in its raw bytes, as they arrive: only as a line of its own
    (generated text travels JSON-encoded inside a data line, where a line break is always
    escaped, so no content can end the stream), also when cut across two chunks. A plain
    ``find`` per chunk: a regular expression measured ~10 times slower on the hot path."""

    __slots__ = ("_last", "_lines", "seen")

    def __init__(self, protocol: Protocol) -> None:
        self._lines = _STREAM_END[protocol]
        self._last = b"\n"  # the end of the previous chunk: the stream starts a line
        self.seen = False

    def feed(self, chunk: bytes) -> bool:
        """Whether the terminal event has arrived, in this chunk or before."""
        if not self.seen:
            boundary = self._last + chunk[:_END_SPAN]  # a line cut across the two chunks
            for line in self._lines:
                if _has_line(chunk, *line) or _has_line(boundary, *line):
                    self.seen = True
                    break
            last = chunk if len(chunk) >= _END_SPAN else self._last + chunk
            self._last = last[-_END_SPAN:]
        return self.seen


def _has_line(data: bytes, field: bytes, value: bytes) -> bool:
    """Whether ``data`` holds ``field: value`` (the space optional) right after a line
    break (the first byte of ``data`` only counts as what precedes a line)."""
    at = data.find(value)
    while at >= 0:
        start = at - 1 if data[at - 1 : at] == b" " else at
        begin = start - len(field)
        if begin > 0 and data[begin:start] == field and data[begin - 1] in b"\r\n":
            return True
        at = data.find(value, at + 1)
    return False


# The terminal events' lines, as ``field:`` and value.
_STREAM_END = {
    Protocol.OPENAI: ((b"data:", b"[DONE]"),),
    Protocol.ANTHROPIC: ((b"event:", b"message_stop"),),
    Protocol.RESPONSES: tuple((b"event:", name.encode()) for name in RESPONSES_TERMINAL_EVENTS),
    Protocol.COMPLETIONS: ((b"data:", b"[DONE]"),),
}
# Streams the gateway asks a usage chunk for (``stream_options.include_usage``).
_USAGE_CHUNKS = frozenset({Protocol.OPENAI, Protocol.COMPLETIONS})
_END_SPAN = 32  # longer than any terminal line

# The field the gateway writes when an OpenAI-protocol request carries no output limit:
# OpenAI's current one, the only one its reasoning models accept (they reject max_tokens), and
# it counts their hidden reasoning tokens too. A field the client sent is kept (lowered).
_OPENAI_OUTPUT_LIMIT = "max_completion_tokens"
_OPENAI_LIMIT_FIELDS = ("max_completion_tokens", "max_tokens")


def _limit_output(body: dict[str, Any], protocol: Protocol, ceiling: int) -> None:
    """Hold an upstream body to ``ceiling`` output tokens (per choice): lower the limit the
    client set when it is above, or add one when there is none."""
    if protocol is Protocol.ANTHROPIC:
        body["max_tokens"] = ceiling  # required there, and never above what the client set
        thinking = body.get("thinking")
        if isinstance(thinking, dict):
            # Thinking is part of max_tokens, and Anthropic refuses a budget that is not
            # below it: a lowered ceiling lowers the budget with it.
            budget = thinking.get("budget_tokens")
            if isinstance(budget, int) and budget >= ceiling:
                body["thinking"] = {**thinking, "budget_tokens": ceiling - 1}
        return
    if protocol is Protocol.RESPONSES:  # its one limit, reasoning tokens included
        asked = body.get("max_output_tokens")
        body["max_output_tokens"] = ceiling if asked is None else min(asked, ceiling)
        return
    present = False
    for field in _OPENAI_LIMIT_FIELDS:
        value = body.get(field)
        if value is not None:
            body[field] = min(value, ceiling)
            present = True
    if not present:
        body[_OPENAI_OUTPUT_LIMIT] = ceiling


_EVENT_END = re.compile(rb"(\r\n\r\n|\n\n|\r\r)")
_EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')


class _UsageChunkFilter:
    """Drops the usage-only chunk (``"choices": []``) of an OpenAI stream whose client did not
    ask for it: the gateway asked on its behalf, and clients that did not ask index
    ``chunk.choices[0]``. Complete events are passed on unchanged; an event cut across
    upstream chunks waits for its end."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._tail + chunk if self._tail else chunk
        ends = [m.end() for m in _EVENT_END.finditer(data, max(0, len(data) - len(chunk) - 3))]
        if not ends:
            self._tail = data
            return b""
        complete, self._tail = data[: ends[-1]], data[ends[-1] :]
        if _EMPTY_CHOICES.search(complete) is None:
            return complete
        parts = _EVENT_END.split(complete)  # event, separator, event, separator, ..., b""
        kept = [
            parts[i] + parts[i + 1]
            for i in range(0, len(parts) - 1, 2)
            if not _is_usage_only(parts[i])
        ]
        return b"".join(kept)

    def close(self) -> bytes:
        tail, self._tail = self._tail, b""
        return tail


# What stands between an upstream stream and the client: a translator or a filter.
_Relay = (
    AnthropicToOpenAIStream
    | OpenAIToAnthropicStream
    | AnthropicToResponsesStream
    | _UsageChunkFilter
)


def _is_usage_only(event: bytes) -> bool:
    if _EMPTY_CHOICES.search(event) is None:
        return False
    data = b"".join(line[5:].strip() for line in event.splitlines() if line.startswith(b"data:"))
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and obj.get("choices") == [] and "usage" in obj


def _log_access(
    route: str,
    status: int,
    elapsed_s: float,
    request: _ProxiedRequest | None,
    refusal: GatewayError | None,
) -> None:
    """The access log's line for a finished request (only called when the log is on)."""
    decision = usage = cost = served = requested = None
    if request is not None:
        requested = request.chat.model
        decision = request.planned
        if request.settled is not None:
            decision, usage, cost = request.settled
            served = decision.actual_model
    decision_id = action = None
    if decision is not None:
        decision_id, requested = decision.id, decision.requested_model
        action = decision.routing_action.value
    if refusal is not None:
        decision_id = refusal.references.get("decision_id", decision_id)
    access.log_request(
        route=route,
        status=status,
        latency_s=elapsed_s,
        decision_id=decision_id,
        key_id=request.key.id if request is not None else None,
        requested=requested,
        actual=served,
        action=action,
        usage=usage,
        cost_usd=cost,
    )


def _response_text(response: UpstreamResponse) -> str:
    """The generated text, to estimate output tokens when the provider reports no usage."""
    body: Mapping[str, Any] = response.body
    if response.protocol is Protocol.ANTHROPIC:
        blocks = body.get("content") or []
        return "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))
    if response.protocol is Protocol.RESPONSES:
        return _responses_output_text(body.get("output"))
    choices = body.get("choices") or []
    texts = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            texts.append(str(message.get("content") or ""))
        elif isinstance(choice.get("text"), str):  # a legacy completion
            texts.append(choice["text"])
    return "".join(texts)


def _responses_output_text(output: object) -> str:
    """The text of a Responses API ``output``: message parts, and the name and arguments of
    each function call."""
    texts: list[str] = []
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        for key in ("name", "arguments"):
            if isinstance(item.get(key), str):
                texts.append(item[key])
        for part in item.get("content") or ():
            if isinstance(part, dict):
                texts.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(texts)
