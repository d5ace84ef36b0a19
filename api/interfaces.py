"""A read interface, described once: what follows from the description, and its guarded read.

Each read interface (statistics, failcategorystatistics, statistics/history, statistics/stream,
statistics/progress) is one ``ReadInterface`` in its route module: its path, its parameters and
their limits (api/parameters.py), its flow-control budget, its 400s with example messages, its
summary and its answer. From it follow

- the parser of a raw request (``parse``: the checks of api/parameters.py, in their order),
- the route with its OpenAPI entry (``route``: parameters, the 200 and the error examples),
- the guarded read (``guard``, a FastAPI dependency), the one way a route reads.

The guarded read keeps the order of checks every interface answers in (docs/api.md, "Errors"):
the signature (401, api/auth.py), the parameters (400), the key's VDN scope (401, as a bad
signature), then what the route checks itself with the VDN's settings (the days kept), then
admission, that is replay and flow control (401, 429: api/admission.py), decided by the API in
the same round trip as the read: ``GuardedRead.read`` queues the admission ahead of the
engine's read (engine/reads.py) on one pipeline. Only well-formed requests authenticated for
their VDN count toward a caller's budget.

A module of ``isales_stats.api.routes`` that describes its interface as ``INTERFACE`` is served
with its ``router`` (api/routes/__init__.py): a new read interface is its route module, its
reader in the engine, its path in core/interface.py and, for Python callers, the client.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from isales_stats.api.admission import Admission
from isales_stats.api.auth import Caller, authorize_vdn
from isales_stats.api.dependencies import CallerDep
from isales_stats.api.errors import ErrorCode
from isales_stats.api.parameters import VDN_PARAMETER, Parameter, check_request, vdn_route
from isales_stats.api.responses import error_responses
from isales_stats.core.settings import Settings
from isales_stats.core.signing import decode_query
from isales_stats.engine.reads import PipelinedRead

T = TypeVar("T")
RouteFunction = TypeVar("RouteFunction", bound=Callable[..., Any])


class VdnQuery(Protocol):
    """What every interface's query holds: the VDN it reads (its scope and budget are per VDN)."""

    @property
    def vdn_id(self) -> int: ...


Query = TypeVar("Query", bound=VdnQuery)


@dataclass(frozen=True)
class ReadInterface(Generic[Query]):
    """One read interface of the API.

    ``query`` is built with ``vdn_id`` and each parameter's value by its ``attribute``.
    ``errors`` are the 400s it answers, one example message each, as the OpenAPI document
    shows them (the checks themselves follow from ``parameters``). ``budget`` names its own
    flow-control budget per caller and VDN (KeyLayout.flow_control). ``content_type``: whether
    the request must carry the JSON Content-Type iSales signs (an EventSource cannot send one).
    """

    path: str  # a core/interface.py template, {vdn_id}
    summary: str
    budget: str
    parameters: tuple[Parameter, ...]
    query: Callable[..., Query]
    errors: tuple[tuple[ErrorCode, str], ...]
    answer: str  # what a 200 holds, for the OpenAPI document
    response_model: type[BaseModel] | None = None
    # Without a response model: the media types a 200 may have (an export has two).
    media_types: tuple[str, ...] = ("application/json",)
    content_type: bool = True
    tags: tuple[str, ...] = ("statistics",)

    def parse(
        self, vdn_text: str, query: Sequence[tuple[str, str]], content_types: Sequence[str]
    ) -> Query:
        """The request's query, or ``ParameterError`` with the iSales code of the first check
        that fails (api/parameters.py says their order)."""
        vdn_id, values = check_request(
            self.parameters, vdn_text, query, content_types if self.content_type else None
        )
        return self.query(vdn_id=vdn_id, **values)

    def openapi_parameters(self) -> list[dict[str, Any]]:
        return [VDN_PARAMETER, *(parameter.openapi() for parameter in self.parameters)]

    def responses(self) -> dict[int | str, dict[str, Any]]:
        """The 200 and every error the interface answers, with the 400s' examples."""
        success: dict[str, Any] = {"description": self.answer}
        if self.response_model is None:
            success["content"] = {
                media_type: {"schema": {"type": "string"}} for media_type in self.media_types
            }
        return {200: success, **error_responses(self.errors)}

    def route(self, router: APIRouter) -> Callable[[RouteFunction], RouteFunction]:
        """Serves the decorated function at the interface's path, described by it."""
        return router.get(
            vdn_route(self.path),
            response_model=self.response_model,
            # Without a model the answer is no JSON document (a stream of events).
            response_class=JSONResponse if self.response_model else Response,
            responses=self.responses(),
            summary=self.summary,
            tags=list(self.tags),
            openapi_extra={"parameters": self.openapi_parameters()},
        )

    async def guard(self, request: Request, caller: CallerDep) -> GuardedRead[Query]:
        """The dependency of the interface's route: the caller authenticated (401, declared
        first so it is checked first), the parameters parsed (400), the VDN in the key's scope
        (401); what remains, admission, goes with the read."""
        query = self.parse(
            request.path_params["vdnId"],
            decode_query(request.scope["query_string"]),
            request.headers.getlist("content-type"),
        )
        authorize_vdn(request, caller, query.vdn_id)
        return GuardedRead(self, query, caller, request)


@dataclass(frozen=True)
class GuardedRead(Generic[Query]):
    """A request of ``interface`` that passed its signature, its parameters and its scope:
    what a route reads with. Admission (replay and flow control) is decided by ``read``, in the
    read's first round trip, or by ``admit`` on its own."""

    interface: ReadInterface[Query]
    query: Query
    caller: Caller
    request: Request

    @property
    def settings(self) -> Settings:
        settings: Settings = self.request.app.state.settings
        return settings

    async def read(self, read: PipelinedRead[T]) -> T:
        """``read``'s answer once the request is admitted; raises the 401 of a replay or the
        429 of a spent budget, in which case nothing past the read's first round trip ran."""
        admission, gate = self._admission()
        return await admission.read_admitted(gate, read)

    async def admit(self) -> None:
        """Admission alone, in a round trip of its own (a push subscription, which reads once
        its subscriber is registered); raises as ``read`` does."""
        admission, gate = self._admission()
        await admission.check(gate)

    def _admission(self) -> tuple[Admission, Any]:
        admission: Admission = self.request.app.state.admission
        gate = admission.gate(
            self.request, self.caller, self.query.vdn_id, interface=self.interface.budget
        )
        return admission, gate
