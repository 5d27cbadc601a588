"""The route table is derived from google.api.http options; templates outside the supported
subset fail at startup, and lookups answer 404 or 405 as grpc-gateway's router does."""

from __future__ import annotations

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor

from payments_service.transport.http.routes import RouteTable
from payments_service.transport.http.server import PAYMENT_SERVICE
from payments_service.transport.http.status import HttpRefusalError
from payments_service.transport.http.transcoding import decode_request

Field = descriptor_pb2.FieldDescriptorProto


def service_with(*rules: http_pb2.HttpRule) -> ServiceDescriptor:
    """A service `t.S` whose methods `Call0`, `Call1`, ... carry `rules`; the request type has
    a string field `id` and an int64 field `n`."""
    pool = descriptor_pool.DescriptorPool()
    for dependency in (descriptor_pb2, http_pb2, annotations_pb2):
        pool.AddSerializedFile(dependency.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="t.proto", package="t", syntax="proto3", dependency=["google/api/annotations.proto"]
    )
    request = file.message_type.add(name="Req")
    request.field.add(name="id", json_name="id", number=1, type=Field.TYPE_STRING, label=1)
    request.field.add(name="n", json_name="n", number=2, type=Field.TYPE_INT64, label=1)
    service = file.service.add(name="S")
    for index, rule in enumerate(rules):
        method = service.method.add(name=f"Call{index}", input_type=".t.Req", output_type=".t.Req")
        method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    pool.Add(file)
    found: ServiceDescriptor = pool.FindServiceByName("t.S")
    return found


def test_the_payment_service_routes_come_from_its_options() -> None:
    table = RouteTable.from_services(PAYMENT_SERVICE)
    assert [(r.verb, r.template, r.method.name, r.body) for r in table.routes] == [
        ("POST", "/v1/payments", "RequestPayment", True),
        ("GET", "/v1/payments/{payment_id}", "GetPayment", False),
        ("GET", "/v1/health", "Health", False),
    ]
    match = table.match("GET", "/v1/payments/pay_1")
    assert (match.route.method.name, match.params) == ("GetPayment", {"payment_id": "pay_1"})


@pytest.mark.parametrize(
    "rule",
    [
        http_pb2.HttpRule(get="/v1/things/{n}"),  # not a string field
        http_pb2.HttpRule(get="/v1/things/{missing}"),
        http_pb2.HttpRule(get="/v1/things/{id=**}"),
        http_pb2.HttpRule(get="/v1/things/*"),
        http_pb2.HttpRule(get="v1/things"),
        http_pb2.HttpRule(post="/v1/things", body="id"),
        http_pb2.HttpRule(get="/v1/things", response_body="id"),
        http_pb2.HttpRule(custom=http_pb2.CustomHttpPattern(kind="HEAD", path="/v1/things")),
    ],
    ids=str,
)
def test_a_rule_outside_the_supported_subset_fails_at_startup(rule: http_pb2.HttpRule) -> None:
    with pytest.raises(ValueError, match=r"google\.api\.http"):
        RouteTable.from_services(service_with(rule))


def test_two_routes_for_one_method_and_path_fail_at_startup() -> None:
    rule = http_pb2.HttpRule(get="/v1/things")
    with pytest.raises(ValueError, match="two routes for GET /v1/things"):
        RouteTable.from_services(service_with(rule, rule))


def test_lookups_answer_the_route_404_or_405_with_the_allowed_methods() -> None:
    table = RouteTable.from_services(
        service_with(
            http_pb2.HttpRule(
                get="/v1/things/{id=*}",
                additional_bindings=[http_pb2.HttpRule(delete="/v1/things/{id}")],
            ),
            http_pb2.HttpRule(post="/v1/things", body="*"),
        )
    )
    assert table.templates == ["/v1/things/{id}", "/v1/things"]
    assert table.match("DELETE", "/v1/things/a").params == {"id": "a"}
    assert table.match("POST", "/v1/things").route.body
    for verb, path, status in (
        ("PUT", "/v1/things/a", 405),
        ("GET", "/v1/things", 405),
        ("GET", "/v1/things/a/b", 404),
        ("GET", "/v2/things", 404),
    ):
        with pytest.raises(HttpRefusalError) as refused:
            table.match(verb, path)
        assert refused.value.status == status
    assert table.allowed("/v1/things/a") == ["DELETE", "GET"]
    assert table.allowed("/v1/things") == ["POST"]


@pytest.mark.parametrize(
    ("header", "key"),
    [("plain-1", "plain-1"), ('"quoted-2"', "quoted-2"), ('"a\\"b\\\\c"', 'a"b\\c'), ('"', '"')],
)
def test_the_idempotency_key_header_may_be_a_structured_field_string(header: str, key: str) -> None:
    route = RouteTable.from_services(PAYMENT_SERVICE).match("POST", "/v1/payments").route
    message = decode_request(route, b"{}", {}, [header])
    assert message.idempotency_key == key  # type: ignore[attr-defined]
