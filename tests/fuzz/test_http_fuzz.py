"""Hostile HTTP against the real JSON/HTTP listener, with the suite's small derandomized budget
(`make fuzz` runs the long campaign): RequestPayment fields as JSON held to the same oracle as
gRPC, and raw requests with mutated bytes, hostile headers, methods and paths never answered
with a 5xx, never left unanswered, and the server still serving after each."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fuzzing.harness import Harness
from fuzzing.http import RawAnswer, check_answer, mutate_bytes
from fuzzing.properties import Property, http_bytes, http_fields, http_headers, http_paths
from tests.fuzz.conftest import budget


@pytest.mark.parametrize(
    ("prop", "source", "reached"),
    [
        (http_fields, "http-fields", {"OK", "INVALID_ARGUMENT"}),
        (http_bytes, "http-bytes", {"PARSER_400", "OK", "INVALID_ARGUMENT"}),
        (http_headers, "http-headers", {"PARSER_400", "OK", "INVALID_ARGUMENT"}),
        (http_paths, "http-paths", {"PARSER_400", "NOT_FOUND"}),
    ],
    ids=["fields", "bytes", "headers", "paths"],
)
def test_hostile_http_is_never_a_server_fault(
    prop: Callable[[Harness], Property], source: str, reached: set[str]
) -> None:
    with Harness() as harness:
        budget(80)(prop(harness))()
        harness.assert_no_error_logs()
    answered = {code for (src, _, code) in harness.histogram if src == source}
    assert reached <= answered  # the cases reach both the parser and the listener
    assert not {"INTERNAL", "UNKNOWN"} & answered


def test_byte_edits_apply_at_their_position_modulo_the_length() -> None:
    assert mutate_bytes(b"abc", [("set", 4, ord("x"))]) == b"axc"
    assert mutate_bytes(b"abc", [("insert", 0, ord("x")), ("delete", 3, 0)]) == b"xab"
    assert mutate_bytes(b"abc", [("truncate", 1, 0), ("flip", 0, 0)]) == b"`"
    assert mutate_bytes(b"", [("delete", 0, 7)]) == b"\x07"


@pytest.mark.parametrize(
    "answer",
    [
        RawAnswer(500, {"content-type": "application/json", "x-request-id": "r"}, b"{}"),
        RawAnswer(404, {"content-type": "text/plain"}, b"nope"),  # only the parser's 400
        RawAnswer(404, {"content-type": "application/json"}, b'{"code": 5}'),  # no request id
        RawAnswer(
            400, {"content-type": "application/json", "x-request-id": "r"}, b'{"code": 5}'
        ),  # NOT_FOUND is 404
    ],
    ids=["5xx", "plain-404", "no-request-id", "wrong-status"],
)
def test_the_answer_check_can_fail(answer: RawAnswer) -> None:
    with pytest.raises(AssertionError):
        check_answer(answer)
