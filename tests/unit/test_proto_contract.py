"""The served proto keeps every message, field number and enum value of the brief's spec."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor

from payments_service.gen.payments.v1 import payments_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT.parent / "shared" / "spec" / "payments.proto"
FIELD = re.compile(r"^\s*(?:map<\w+,\s*\w+>|[\w.]+)\s+(\w+)\s*=\s*(\d+);", re.MULTILINE)
BLOCK = re.compile(r"(message|enum)\s+(\w+)\s*\{(.*?)\}", re.DOTALL)
ENUM_VALUE = re.compile(r"^\s*(\w+)\s*=\s*(\d+);", re.MULTILINE)


def spec_blocks(text: str) -> dict[str, tuple[str, dict[str, int]]]:
    blocks = {}
    for kind, name, body in BLOCK.findall(text):
        pattern = ENUM_VALUE if kind == "enum" else FIELD
        blocks[name] = (kind, {n: int(num) for n, num in pattern.findall(body)})
    return blocks


@pytest.mark.skipif(not SPEC.exists(), reason="the brief's spec sits beside the repo in ../shared")
def test_every_spec_field_and_enum_value_keeps_its_number() -> None:
    blocks = spec_blocks(SPEC.read_text())
    assert len(blocks) == 7
    for name, (kind, numbers) in blocks.items():
        if kind == "enum":
            enum: EnumDescriptor = pb.DESCRIPTOR.enum_types_by_name[name]
            assert {v.name: v.number for v in enum.values} == numbers, name
        else:
            message: Descriptor = pb.DESCRIPTOR.message_types_by_name[name]
            served = {f.name: f.number for f in message.fields}
            assert served.items() >= numbers.items(), name


def test_the_service_keeps_its_three_rpcs() -> None:
    service = pb.DESCRIPTOR.services_by_name["PaymentService"]
    assert service.full_name == "payments.v1.PaymentService"
    assert [m.name for m in service.methods] == ["RequestPayment", "GetPayment", "Health"]
