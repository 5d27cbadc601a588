"""The served proto keeps the brief's contract: every message, field (name, number, type,
label, message type), enum value and RPC of `fixtures/brief_payments.proto` (a copy of the
brief's spec, see fixtures/README.md) is served unchanged by `proto/`. Never skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
BRIEF = Path(__file__).resolve().parent / "fixtures" / "brief_payments.proto"
SERVED = ROOT / "proto" / "payments" / "v1" / "payments.proto"
# The google.api.http options' imports, as googleapis-common-protos ships them.
GOOGLEAPIS = Path(annotations_pb2.__file__).resolve().parents[2]


def compile_proto(path: Path, out: Path) -> descriptor_pb2.FileDescriptorProto:
    """The proto file's descriptor, as protoc (grpcio-tools) compiles it."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={path.parent}",
            f"--proto_path={GOOGLEAPIS}",
            f"--descriptor_set_out={out}",
            path.name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (descriptor,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return descriptor


@pytest.fixture(scope="module")
def brief(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorProto:
    return compile_proto(BRIEF, tmp_path_factory.mktemp("brief") / "brief.pb")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorProto:
    return compile_proto(SERVED, tmp_path_factory.mktemp("served") / "served.pb")


def fields(message: descriptor_pb2.DescriptorProto) -> dict[str, tuple[int, int, int, str]]:
    return {f.name: (f.number, f.type, f.label, f.type_name) for f in message.field}


def test_the_package_is_the_briefs(
    brief: descriptor_pb2.FileDescriptorProto, served: descriptor_pb2.FileDescriptorProto
) -> None:
    assert served.package == brief.package == "payments.v1"


def test_every_message_keeps_every_field_name_number_type_and_label(
    brief: descriptor_pb2.FileDescriptorProto, served: descriptor_pb2.FileDescriptorProto
) -> None:
    served_messages = {m.name: m for m in served.message_type}
    assert len(brief.message_type) >= 6
    for message in brief.message_type:
        assert message.name in served_messages, message.name
        assert fields(served_messages[message.name]) == fields(message), message.name
        # map fields are nested entry messages: compare those too
        nested = {n.name: fields(n) for n in served_messages[message.name].nested_type}
        assert nested == {n.name: fields(n) for n in message.nested_type}, message.name


def test_every_enum_keeps_every_value(
    brief: descriptor_pb2.FileDescriptorProto, served: descriptor_pb2.FileDescriptorProto
) -> None:
    served_enums = {e.name: {v.name: v.number for v in e.value} for e in served.enum_type}
    for enum in brief.enum_type:
        assert served_enums[enum.name] == {v.name: v.number for v in enum.value}, enum.name


def test_every_rpc_keeps_its_name_and_message_types(
    brief: descriptor_pb2.FileDescriptorProto, served: descriptor_pb2.FileDescriptorProto
) -> None:
    def rpcs(file: descriptor_pb2.FileDescriptorProto) -> dict[str, tuple[str, str, bool, bool]]:
        (service,) = file.service
        return {
            m.name: (m.input_type, m.output_type, m.client_streaming, m.server_streaming)
            for m in service.method
        }

    assert rpcs(served) == rpcs(brief)
    assert list(rpcs(served)) == ["RequestPayment", "GetPayment", "Health"]


def test_the_check_catches_a_renumbered_field(
    tmp_path: Path, brief: descriptor_pb2.FileDescriptorProto
) -> None:
    """The comparison can fail: a copy with one field number changed is told apart."""
    changed = tmp_path / "changed.proto"
    changed.write_text(BRIEF.read_text().replace("amount_minor = 1", "amount_minor = 9", 1))
    drifted = compile_proto(changed, tmp_path / "changed.pb")
    before = {m.name: fields(m) for m in brief.message_type}
    after = {m.name: fields(m) for m in drifted.message_type}
    assert before != after
