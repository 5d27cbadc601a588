"""Hostile HTTP requests against the real JSON/HTTP listener, sent as raw bytes on a socket.

Every case is one connection: the request's bytes exactly as drawn (a client library would
refuse or repair most of them), then whatever the server answers until it closes. The property
of every case: an answer comes within the timeout, it is never a 5xx, it is either the listener's
JSON (a `google.rpc.Status` whose code maps to the HTTP status, or a 200 response) or the HTTP
parser's own 400 before any handler, and a valid request right after it still succeeds.

Three properties (`fuzzing.properties`): byte mutations of valid raw requests (request line,
headers and body alike), hostile header sets, and hostile methods and paths. Field-level JSON
cases go through the harness's oracle instead (`Harness.request_payment(transport="http")`).
"""

from __future__ import annotations

import asyncio
import json
import string
from dataclasses import dataclass, field
from urllib.parse import quote

import grpc
from hypothesis import strategies as st

from payments_service.transport.http.status import REFUSALS, http_status

TIMEOUT_SECONDS = 10.0
PAYMENTS = "/v1/payments"
VALID_BODY = (
    b'{"amountMinor": "1250", "currency": "EUR", "orderId": "order-42", '
    b'"idempotencyKey": "fuzz-http-1", "metadata": {"customer": "cus_1"}}'
)


def raw_head(method: bytes, path: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request line and headers, without the final line break."""
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: fuzz"]
    return b"\r\n".join(lines + [name + b": " + value for name, value in headers])


def assemble(head: bytes, body: bytes = b"") -> bytes:
    """A complete request: `head`, then the body's `Content-Length` and `Connection: close`,
    so however the head was mutated the server never waits for bytes that will not come."""
    length = str(len(body)).encode()
    return head + b"\r\nContent-Length: " + length + b"\r\nConnection: close\r\n\r\n" + body


def raw_request(
    method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> bytes:
    return assemble(raw_head(method, path, headers), body)


# Valid requests (head, body) the byte mutations start from.
VALID_REQUESTS = (
    (raw_head(b"POST", PAYMENTS.encode(), [(b"Content-Type", b"application/json")]), VALID_BODY),
    (raw_head(b"GET", b"/v1/payments/pay_" + b"0" * 32, [(b"x-request-id", b"fuzz-1")]), b""),
    (
        raw_head(
            b"GET",
            b"/v1/health",
            [(b"traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")],
        ),
        b"",
    ),
)


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


async def exchange(port: int, data: bytes) -> RawAnswer:
    """Send `data` on a new connection and read the first final answer (an interim
    `100 Continue` is skipped), within the timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        head_only = data.startswith(b"HEAD ")
        return await asyncio.wait_for(_read_answer(reader, head_only=head_only), TIMEOUT_SECONDS)
    finally:
        writer.close()


async def _read_answer(reader: asyncio.StreamReader, *, head_only: bool) -> RawAnswer:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as closed:
            raise AssertionError(f"closed without an answer: {closed.partial[:200]!r}") from None
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise AssertionError(f"not an HTTP answer: {head[:200]!r}")
        status = int(parts[1])
        if 100 <= status < 200:
            continue
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.decode("latin-1").lower()] = value.strip().decode("latin-1")
        length = 0 if head_only else int(headers.get("content-length", "0"))
        return RawAnswer(status, headers, await reader.readexactly(length))


# Every status the listener answers: a code's (by the mapping) or a refusal's.
_LISTENER_STATUSES = {http_status(code) for code in grpc.StatusCode} | {r.status for r in REFUSALS}
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def code_of(number: int) -> grpc.StatusCode:
    """The gRPC code numbered `number` (a `google.rpc.Status` code); KeyError if none is."""
    return _CODES[number]


def check_answer(answer: RawAnswer) -> str:
    """The answer is never a server fault, and is the listener's JSON or the parser's 400.
    Returns what answered: the gRPC code's name, or `PARSER_400`."""
    if answer.status >= 500:
        raise AssertionError(f"a server fault: {answer}")
    if answer.headers.get("content-type", "").startswith("text/plain"):
        if answer.status != 400:
            raise AssertionError(f"the parser answered {answer.status}: {answer}")
        return "PARSER_400"
    if answer.status not in _LISTENER_STATUSES or "x-request-id" not in answer.headers:
        raise AssertionError(f"not the listener's answer: {answer}")
    if not answer.body:  # the answer to a HEAD request: the status alone
        return f"HEAD_{answer.status}"
    document = json.loads(answer.body)
    if answer.status == 200:
        return "OK"
    code = code_of(document["code"])
    expected = {http_status(code)} | {r.status for r in REFUSALS if r.code is code}
    if answer.status not in expected:
        raise AssertionError(f"{code.name} answered {answer.status}: {answer}")
    return code.name


# --- strategies --------------------------------------------------------------------------------

byte_edits = st.lists(
    st.tuples(
        st.sampled_from(("flip", "set", "insert", "delete", "truncate")),
        st.integers(0, 10_000),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=6,
)


def mutate_bytes(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    """`data` with each edit applied at its position modulo the length."""
    buffer = bytearray(data)
    for kind, position, value in edits:
        if not buffer:
            buffer.append(value)
            continue
        at = position % len(buffer)
        if kind == "flip":
            buffer[at] ^= 1 << (value % 8)
        elif kind == "set":
            buffer[at] = value
        elif kind == "insert":
            buffer.insert(at, value)
        elif kind == "delete":
            del buffer[at]
        else:
            del buffer[at:]
    return bytes(buffer)


INTERESTING_HEADERS = (
    b"Authorization",
    b"Idempotency-Key",
    b"x-request-id",
    b"traceparent",
    b"tracestate",
    b"Content-Type",
    b"Content-Length",
    b"Transfer-Encoding",
    b"Expect",
    b"Connection",
    b"Upgrade",
    b"User-Agent",
    b"Content-Encoding",
)
# Mostly names and values the parser takes, so most cases reach the listener; some that it
# refuses, so the refusal is exercised too.
_TOKEN = st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=20)
_VISIBLE = st.text(string.printable.strip("\t\n\r\x0b\x0c") + " ", max_size=200)
header_names = st.one_of(
    st.sampled_from(INTERESTING_HEADERS),
    st.sampled_from(INTERESTING_HEADERS),
    _TOKEN.map(str.encode),
    st.binary(min_size=1, max_size=20),
)
header_values = st.one_of(
    st.sampled_from(
        (
            b"Bearer k",
            b"Bearer " + b"k" * 600,
            b'"quoted-key"',
            b"chunked",
            b"gzip",
            b"100-continue",
            b"-1",
            b"99999999999999999999",
            b"00-" + b"f" * 32 + b"-" + b"0" * 16 + b"-01",
            b"application/json; charset=utf-16",
        )
    ),
    _VISIBLE.map(str.encode),
    _VISIBLE.map(str.encode),
    st.binary(max_size=300),
    st.text(max_size=100).map(lambda text: text.encode("utf-8")),
)
header_lists = st.lists(st.tuples(header_names, header_values), max_size=4)
_METHODS = st.sampled_from((b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS"))
methods = st.one_of(_METHODS, _METHODS, _METHODS, st.binary(min_size=1, max_size=10))
segments = st.one_of(
    st.sampled_from(
        (b"v1", b"payments", b"health", b"openapi.json", b"..", b".", b"", b"%2F", b"%FF")
    ),
    st.text(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@", max_size=12).map(
        str.encode
    ),
    st.text(max_size=12).map(lambda text: quote(text, safe="").encode()),  # any character, escaped
    st.binary(max_size=12).map(lambda raw: quote(raw, safe="").encode()),  # any byte, escaped
)
paths = st.one_of(
    st.lists(segments, max_size=6).map(lambda parts: b"/" + b"/".join(parts)),
    st.lists(segments, max_size=6).map(lambda parts: b"/v1/" + b"/".join(parts)),
    st.builds(lambda tail: b"/v1/payments/" + tail, segments),
    st.builds(lambda tail: b"/v1/payments/" + tail, st.binary(max_size=80)),
    st.binary(max_size=60),
)
