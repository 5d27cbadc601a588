"""Generate the OpenAPI 3 document of a proto file's JSON/HTTP mapping, from the proto itself.

protoc compiles the file with its source info (`--include_source_info`), so the document's
descriptions are the proto's own comments: the service's and each RPC's, each message's, field's
and enum's. The paths, methods and path parameters are the `google.api.http` options; the
schemas follow the proto3 JSON mapping as the listener speaks it (`transport.http.transcoding`):
lowerCamelCase names, 64-bit integers as strings, enums by name, Timestamps as RFC 3339 strings,
maps as objects. Every error is a `google.rpc.Status`. `GET /openapi.json` (the document itself)
is listed too, so the paths in the document are exactly the paths the listener serves.

Called by `scripts/gen_proto.py` for every proto file with an HTTP rule; the result is written
beside the generated stubs (`<name>.openapi.json`) and `make proto-check` keeps it current.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from payments_service.transport.http.routes import OPENAPI_PATH, VARIABLE, VERBS
from payments_service.transport.http.transcoding import (
    IDEMPOTENCY_KEY_FIELD,
    IDEMPOTENCY_KEY_HEADER,
)
from payments_service.transport.interceptors.auth import PUBLIC_METHODS

Field = descriptor_pb2.FieldDescriptorProto
OPENAPI_VERSION = "3.0.3"
STATUS_SCHEMA = "google.rpc.Status"
_SCALARS: dict[int, dict[str, str]] = {
    Field.TYPE_STRING: {"type": "string"},
    Field.TYPE_BOOL: {"type": "boolean"},
    Field.TYPE_BYTES: {"type": "string", "format": "byte"},
    Field.TYPE_DOUBLE: {"type": "number", "format": "double"},
    Field.TYPE_FLOAT: {"type": "number", "format": "float"},
    **{
        t: {"type": "integer", "format": "int32"}
        for t in (Field.TYPE_INT32, Field.TYPE_SINT32, Field.TYPE_SFIXED32)
    },
    **{t: {"type": "integer", "format": "int64"} for t in (Field.TYPE_UINT32, Field.TYPE_FIXED32)},
    # proto3 JSON writes 64-bit integers as strings (a JSON number is accepted on input).
    **{
        t: {"type": "string", "format": "int64"}
        for t in (
            Field.TYPE_INT64,
            Field.TYPE_SINT64,
            Field.TYPE_SFIXED64,
            Field.TYPE_UINT64,
            Field.TYPE_FIXED64,
        )
    },
}
_WELL_KNOWN: dict[str, dict[str, str]] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
}


def write_openapi(proto: str, include: list[Path], out_dir: Path) -> None:
    """Compile `proto` (a path under an `include` root) with its comments and, if it has HTTP
    rules, write `<out_dir>/<proto without .proto>.openapi.json`."""
    with tempfile.TemporaryDirectory() as tmp:
        descriptor_set = Path(tmp) / "set.pb"
        args = [
            "protoc",
            *(f"-I{root}" for root in include),
            "--include_source_info",
            "--include_imports",
            f"--descriptor_set_out={descriptor_set}",
            proto,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()).file
    by_name = {file.name: file for file in files}
    document = openapi(by_name[proto], files)
    if document["paths"]:
        target = out_dir / proto.removesuffix(".proto")
        target.with_suffix(".openapi.json").write_text(json.dumps(document, indent=2) + "\n")


def openapi(file: descriptor_pb2.FileDescriptorProto, every: Any) -> dict[str, Any]:
    """The OpenAPI document of the HTTP rules in `file` (`every`: it and its imports)."""
    comments = _comments(file)
    types = {
        f".{proto.package}.{message.name}": message
        for proto in every
        for message in proto.message_type
    }
    enums = {f".{proto.package}.{enum.name}": enum for proto in every for enum in proto.enum_type}
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    titles = []
    for s, service in enumerate(file.service):
        titles.append(f"{file.package}.{service.name}")
        for m, method in enumerate(service.method):
            if not method.options.HasExtension(annotations_pb2.http):
                continue
            rule = method.options.Extensions[annotations_pb2.http]
            full_method = f"/{file.package}.{service.name}/{method.name}"
            for binding in (rule, *rule.additional_bindings):
                verb = binding.WhichOneof("pattern")
                if verb not in VERBS:
                    raise SystemExit(f"{full_method}: unsupported pattern {verb!r}")
                template = getattr(binding, verb)
                operation = _operation(
                    full_method,
                    method,
                    binding.body == "*",
                    template,
                    comments.get((6, s, 2, m), ""),
                    types,
                )
                paths.setdefault(template, {})[verb] = operation
    methods = [m for s in file.service for m in s.method]
    for roots in ([m.input_type for m in methods], [m.output_type for m in methods]):
        for name in _reachable(roots, types):
            schemas[name.lstrip(".")] = _message_schema(
                name, types, enums, _comments_of(name, every)
            )
    for name, enum in enums.items():
        if name.startswith(f".{file.package}."):
            index = list(file.enum_type).index(enum)
            schemas[name.lstrip(".")] = {
                "type": "string",
                "enum": [value.name for value in enum.value],
                "description": comments.get((5, index), "") or f"{enum.name}, by name.",
            }
    schemas[STATUS_SCHEMA] = _status_schema()
    paths[OPENAPI_PATH] = {
        "get": {
            "operationId": "OpenAPI",
            "summary": "This document: the OpenAPI description of the JSON/HTTP API.",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI 3 document.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": ", ".join(titles),
            "version": file.package.rsplit(".", 1)[-1],
            "description": " ".join(
                comments.get((6, s), "") for s in range(len(file.service))
            ).strip()
            or f"The JSON/HTTP mapping of {file.name}.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <api key>` (docs/security.md).",
                }
            },
        },
        "security": [{"apiKey": []}],
    }


def _operation(  # noqa: PLR0917 - one operation's facts, each from another descriptor
    full_method: str,
    method: descriptor_pb2.MethodDescriptorProto,
    body: bool,
    template: str,
    description: str,
    types: dict[str, descriptor_pb2.DescriptorProto],
) -> dict[str, Any]:
    request = types[method.input_type]
    parameters: list[dict[str, Any]] = []
    for name in _path_variables(template):
        parameters.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": f"The request's `{name}`.",
            }
        )
    if body and any(f.name == IDEMPOTENCY_KEY_FIELD for f in request.field):
        parameters.append(
            {
                "name": IDEMPOTENCY_KEY_HEADER,
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "The idempotency key, when the body has no `idempotencyKey`; "
                "if both are sent they must be equal (else 400).",
            }
        )
    operation: dict[str, Any] = {
        "operationId": method.name,
        "summary": description.split(". ", maxsplit=1)[0].rstrip(".") + "."
        if description
        else method.name,
        "description": f"{description}\n\nThe RPC `{full_method}`.".strip(),
    }
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(method.input_type)}},
        }
    if full_method in PUBLIC_METHODS:
        operation["security"] = []
    operation["responses"] = {
        "200": {
            "description": "The RPC's response.",
            "content": {"application/json": {"schema": _ref(method.output_type)}},
        },
        "default": {
            "description": "An error: the google.rpc.Status, its HTTP status from its gRPC code "
            "(docs/http-api.md).",
            "content": {"application/json": {"schema": _ref(f".{STATUS_SCHEMA}")}},
        },
    }
    return operation


def _message_schema(
    name: str,
    types: dict[str, descriptor_pb2.DescriptorProto],
    enums: dict[str, descriptor_pb2.EnumDescriptorProto],
    comments: dict[tuple[int, ...], str],
) -> dict[str, Any]:
    message = types[name]
    properties: dict[str, Any] = {}
    for index, field in enumerate(message.field):
        schema = _field_schema(field, message, enums)
        described = comments.get((2, index), "")
        if described:
            schema = (
                {**schema, "description": described}
                if "$ref" not in schema
                else {
                    "allOf": [schema],
                    "description": described,
                }
            )
        properties[field.json_name] = schema
    result: dict[str, Any] = {"type": "object", "properties": properties}
    result["additionalProperties"] = False  # unknown fields are refused (400)
    described = comments.get((), "")
    if described:
        result["description"] = described
    return result


def _field_schema(
    field: descriptor_pb2.FieldDescriptorProto,
    message: descriptor_pb2.DescriptorProto,
    enums: dict[str, descriptor_pb2.EnumDescriptorProto],
) -> dict[str, Any]:
    if field.type == Field.TYPE_MESSAGE:
        entry = next(
            (n for n in message.nested_type if field.type_name.endswith(f".{n.name}")), None
        )
        if entry is not None and entry.options.map_entry:
            value = entry.field[1]
            return {"type": "object", "additionalProperties": _SCALARS[value.type]}
        single = _WELL_KNOWN.get(field.type_name) or _ref(field.type_name)
    elif field.type == Field.TYPE_ENUM:
        single = _ref(field.type_name)
    else:
        single = dict(_SCALARS[field.type])
    if field.label == Field.LABEL_REPEATED:
        return {"type": "array", "items": single}
    return single


def _status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "google.rpc.Status: the error model of every failure (docs/http-api.md).",
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "The gRPC code."},
            "message": {"type": "string", "description": "What went wrong, for a developer."},
            "details": {
                "type": "array",
                "description": "google.rpc error details (BadRequest, ErrorInfo, RetryInfo, "
                "ResourceInfo), each with its `@type`.",
                "items": {
                    "type": "object",
                    "properties": {"@type": {"type": "string"}},
                    "additionalProperties": True,
                },
            },
        },
    }


def _reachable(roots: list[str], types: dict[str, descriptor_pb2.DescriptorProto]) -> list[str]:
    """The message types reachable from `roots`, well-known types and map entries excluded."""
    seen: dict[str, None] = {}
    pending = list(roots)
    while pending:
        name = pending.pop(0)
        if name in seen or name in _WELL_KNOWN or name not in types:
            continue
        seen[name] = None
        pending += [f.type_name for f in types[name].field if f.type == Field.TYPE_MESSAGE]
    return list(seen)


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Each commented element's comment, by its source-info path."""
    found = {}
    for location in file.source_code_info.location:
        text = location.leading_comments or location.trailing_comments
        if text.strip():
            found[tuple(location.path)] = " ".join(text.split())
    return found


def _comments_of(name: str, every: Any) -> dict[tuple[int, ...], str]:
    """The comments of message `name`, by path relative to the message."""
    for file in every:
        for index, message in enumerate(file.message_type):
            if f".{file.package}.{message.name}" == name:
                prefix = (4, index)
                return {
                    path[2:]: text for path, text in _comments(file).items() if path[:2] == prefix
                }
    return {}


def _path_variables(template: str) -> list[str]:
    """The names of the template's variables, as the listener reads them (`routes.VARIABLE`)."""
    return [found[1] for found in map(VARIABLE.fullmatch, template.split("/")) if found]


def _ref(type_name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{type_name.lstrip('.')}"}
