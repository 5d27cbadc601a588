"""JSON to proto and back, with protobuf's own `json_format` (the proto3 JSON mapping).

grpc-gateway's conventions: field names in lowerCamelCase on output and either spelling on
input; int64 written as a string (a JSON number is accepted too); enums as their names; fields
at their default value written out (`EmitUnpopulated`); unknown fields refused. A body that is
not UTF-8, not JSON, not an object, names one field twice (in either spelling), or does not fit
the message is `UndecodableRequestError`: INVALID_ARGUMENT with a fixed message through the one
error table, exactly as undecodable gRPC bytes are. The parser's own message is never sent: it
can quote the request's values (metadata values among them).

The `Idempotency-Key` request header (the IETF httpapi draft's name; its value may be a quoted
structured-field string) gives the idempotency key when the body has none; a header that
disagrees with the body's key, or two such headers, is a validation failure of
`idempotency_key`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson
from google.protobuf import json_format

from payments_service.domain.errors import FieldViolation, ValidationError
from payments_service.transport.errors import UndecodableRequestError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from google.protobuf.message import Message

    from payments_service.transport.http.routes import Route

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_FIELD = "idempotency_key"
CONTENT_TYPE = "application/json"


def decode_request(
    route: Route, body: bytes, params: Mapping[str, str], idempotency_keys: Sequence[str]
) -> Message:
    """The request message of `route` from its JSON body, path parameters and headers."""
    message = route.request_type()
    if route.body:
        try:
            _parse(body, message)
        except Exception:  # any failure of the body is the client's: a fixed answer
            raise UndecodableRequestError(message.DESCRIPTOR.full_name) from None
    for name, value in params.items():  # as sent: a segment is unescaped on its own, so an
        try:  # escaped "/" stays in the value instead of splitting the path
            setattr(message, name, unquote(value, errors="strict"))
        except (UnicodeDecodeError, ValueError):  # not UTF-8, or a character no string holds
            raise UndecodableRequestError(message.DESCRIPTOR.full_name) from None
    if idempotency_keys and IDEMPOTENCY_KEY_FIELD in message.DESCRIPTOR.fields_by_name:
        _apply_idempotency_key(message, idempotency_keys)
    return message


def encode_message(message: Message) -> bytes:
    """The proto3 JSON of `message`, every field written (grpc-gateway's default)."""
    return orjson.dumps(
        json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    )


def _parse(body: bytes, message: Message) -> None:
    loaded = json.loads(body.decode("utf-8"), object_pairs_hook=_object)
    if not isinstance(loaded, dict):
        raise TypeError("the body is not a JSON object")
    fields = message.DESCRIPTOR.fields_by_camelcase_name
    named = message.DESCRIPTOR.fields_by_name
    seen = set()
    for key in loaded:
        found = fields.get(key) or named.get(key)
        if found is not None and found.name in seen:
            raise ValueError("one field given twice")
        seen.add(key if found is None else found.name)
    json_format.ParseDict(loaded, message, ignore_unknown_fields=False)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are distinct (json.loads keeps the last of a repeated key)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a key given twice")
    return result


def _apply_idempotency_key(message: Message, headers: Sequence[str]) -> None:
    violation = None
    if len(headers) > 1:
        violation = f"send at most one {IDEMPOTENCY_KEY_HEADER} header"
    else:
        key = _unquoted(headers[0])
        current = getattr(message, IDEMPOTENCY_KEY_FIELD)
        if not current:
            setattr(message, IDEMPOTENCY_KEY_FIELD, key)
        elif current != key:
            violation = f"the {IDEMPOTENCY_KEY_HEADER} header and the body's key differ"
    if violation is not None:
        raise ValidationError([FieldViolation(IDEMPOTENCY_KEY_FIELD, violation)])


def _unquoted(value: str) -> str:
    """A structured-field string (`"abc"`, with `\\"` and `\\\\` escapes) unquoted; a bare
    value as it is."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        return inner.replace('\\"', '"').replace("\\\\", "\\")
    return value
