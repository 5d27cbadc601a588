"""The route table, derived at startup from the proto's `google.api.http` options.

Each RPC of a service that carries a `google.api.http` rule (and each of its
`additional_bindings`) becomes a `Route`: the HTTP method, the path template, the RPC it maps to
(so both transports report the same `rpc.method`), the request message type, and whether the
JSON body fills the request (`body: "*"`). Nothing here is written by hand: change the proto,
run `make proto`, and the listener serves the new mapping (the OpenAPI document is generated
from the same options, and a test checks that both list the same paths).

Supported templates are grpc-gateway's common subset: literal segments and single-segment
variables (`{payment_id}` or `{payment_id=*}`) naming string fields of the request. Anything
else fails at startup, never at the first request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from google.api import annotations_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor

from payments_service.observability.record import MethodInfo
from payments_service.transport.http.status import method_not_allowed, not_found

if TYPE_CHECKING:
    from google.api import http_pb2
    from google.protobuf.descriptor import Descriptor, ServiceDescriptor
    from google.protobuf.message import Message

OPENAPI_PATH = "/openapi.json"  # where the listener serves the generated OpenAPI document
VERBS = ("get", "put", "post", "delete", "patch")  # the `google.api.http` patterns supported
VARIABLE = re.compile(r"\{([a-z_][a-z0-9_]*)(?:=\*)?\}")  # a path variable: group 1 its name
_LITERAL = re.compile(r"[A-Za-z0-9._~-]+")


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP binding of one RPC."""

    verb: str  # "POST"
    template: str  # "/v1/payments/{payment_id}": the `http.route` of its requests
    method: MethodInfo  # the RPC: "/payments.v1.PaymentService/GetPayment"
    request_type: type[Message]
    body: bool  # the JSON body fills the request (`body: "*"`)
    params: tuple[str, ...] = ()  # the request fields bound by the path, in order
    pattern: re.Pattern[str] | None = field(default=None, compare=False)  # with variables


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: dict[str, str]


class RouteTable:
    """The routes of one or more services, looked up by HTTP method and path."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = tuple(routes)
        self._literal: dict[str, dict[str, Route]] = {}
        self._templated: list[Route] = []
        for route in routes:
            if route.pattern is None:
                verbs = self._literal.setdefault(route.template, {})
                if route.verb in verbs:
                    raise ValueError(f"two routes for {route.verb} {route.template}")
                verbs[route.verb] = route
            else:
                self._templated.append(route)

    @classmethod
    def from_services(cls, *services: ServiceDescriptor) -> RouteTable:
        return cls([route for service in services for route in service_routes(service)])

    @property
    def templates(self) -> list[str]:
        """Every path template served, once each, in declaration order."""
        return list(dict.fromkeys(route.template for route in self.routes))

    def match(self, verb: str, path: str) -> Match:
        """The route and path parameters for `verb path`; HttpRefusalError 404 (no route has this
        path) or 405 (routes have it, none for this method)."""
        verbs = self._literal.get(path)
        if verbs is not None:
            route = verbs.get(verb)
            if route is None:
                raise method_not_allowed()
            return Match(route, {})
        path_known = False
        for route in self._templated:
            assert route.pattern is not None  # noqa: S101 - templated routes have one
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if route.verb == verb:
                return Match(route, found.groupdict())
            path_known = True
        raise method_not_allowed() if path_known else not_found()

    def allowed(self, path: str) -> list[str]:
        """The methods `path` is served with (the `Allow` header of a 405)."""
        verbs = [route.verb for route in self._literal.get(path, {}).values()]
        verbs += [r.verb for r in self._templated if r.pattern and r.pattern.fullmatch(path)]
        return sorted(set(verbs))


def service_routes(service: ServiceDescriptor) -> list[Route]:
    """The routes of every RPC of `service` that has a `google.api.http` rule."""
    routes = []
    for method in service.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
        info = MethodInfo.parse(f"/{service.full_name}/{method.name}")
        for binding in (rule, *rule.additional_bindings):
            routes.append(_route(info, method.input_type, binding))
    return routes


def _route(info: MethodInfo, request: Descriptor, rule: http_pb2.HttpRule) -> Route:
    where = f"{info.full_method}: google.api.http"
    kind = rule.WhichOneof("pattern")
    if kind not in VERBS:
        raise ValueError(f"{where}: unsupported pattern {kind!r}")
    template: str = getattr(rule, kind)
    if rule.body not in ("", "*") or rule.response_body:
        raise ValueError(f'{where}: only body "*" or none is supported')
    params: list[str] = []
    regex: list[str] = []
    canonical: list[str] = []
    if not template.startswith("/"):
        raise ValueError(f"{where}: the path {template!r} must start with /")
    for segment in template[1:].split("/"):
        variable = VARIABLE.fullmatch(segment)
        if variable is not None:
            name = variable[1]
            fields = request.fields_by_name
            if name not in fields or fields[name].type != FieldDescriptor.TYPE_STRING:
                raise ValueError(f"{where}: {{{name}}} is not a string field of the request")
            params.append(name)
            regex.append(f"(?P<{name}>[^/]+)")
            canonical.append(f"{{{name}}}")
        elif _LITERAL.fullmatch(segment):
            regex.append(re.escape(segment))
            canonical.append(segment)
        else:
            raise ValueError(f"{where}: unsupported path segment {segment!r}")
    return Route(
        verb=kind.upper(),
        template="/" + "/".join(canonical),
        method=info,
        request_type=message_factory.GetMessageClass(request),
        body=rule.body == "*",
        params=tuple(params),
        pattern=re.compile("/" + "/".join(regex)) if params else None,
    )
