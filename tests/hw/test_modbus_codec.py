"""Exact register layouts, declaration validation and read grouping (pure, no device)."""

import struct

import pytest
from pydantic import ValidationError

from engine.hw.modbus_codec import ModbusRegister, decode_value, encode_value, plan_reads


def reg(**kw: object) -> ModbusRegister:
    base: dict[str, object] = {"tag": "t", "table": "holding", "address": 0}
    base.update(kw)
    return ModbusRegister.model_validate(base)


@pytest.mark.parametrize(
    ("word_order", "byte_order", "expected"),
    [
        ("big", "big", [0x3FC0, 0x0000]),  # ABCD
        ("little", "big", [0x0000, 0x3FC0]),  # CDAB
        ("big", "little", [0xC03F, 0x0000]),  # BADC
        ("little", "little", [0x0000, 0xC03F]),  # DCBA
    ],
)
def test_float32_layouts(word_order: str, byte_order: str, expected: list[int]) -> None:
    r = reg(data_type="float32", word_order=word_order, byte_order=byte_order)
    assert encode_value(r, 1.5) == expected
    assert decode_value(r, expected) == 1.5


def test_int_types_and_limits() -> None:
    assert encode_value(reg(data_type="int16"), -2) == [0xFFFE]
    assert decode_value(reg(data_type="int16"), [0xFFFE]) == -2
    assert decode_value(reg(data_type="uint16"), [0xFFFE]) == 65534
    assert encode_value(reg(data_type="int32"), -70000) == list(
        struct.unpack(">HH", struct.pack(">i", -70000))
    )
    assert encode_value(reg(data_type="uint32", word_order="little"), 0x12345678) == [
        0x5678,
        0x1234,
    ]
    with pytest.raises(ValueError, match="does not fit uint16"):
        encode_value(reg(data_type="uint16"), 70000)
    with pytest.raises(ValueError, match="needs a number"):
        encode_value(reg(data_type="int16"), "x")


def test_float64_word_order() -> None:
    r = reg(data_type="float64", word_order="little")
    words = encode_value(r, 3.141592653589793)
    assert words == list(reversed(struct.unpack(">4H", struct.pack(">d", 3.141592653589793))))
    assert decode_value(r, words) == 3.141592653589793


def test_scale_and_offset() -> None:
    r = reg(data_type="int16", scale=0.1, offset=-50.0)
    assert encode_value(r, 20.0) == [700]
    assert decode_value(r, [700]) == pytest.approx(20.0)


def test_string_and_bool() -> None:
    r = reg(data_type="string", length=3)
    assert encode_value(r, "ABC") == [0x4142, 0x4300, 0x0000]
    assert decode_value(r, [0x4142, 0x4300, 0]) == "ABC"
    swapped = reg(data_type="string", length=2, byte_order="little")
    assert encode_value(swapped, "ABCD") == [0x4241, 0x4443]
    with pytest.raises(ValueError, match="does not fit 3 registers"):
        encode_value(r, "ABCDEFG")
    assert decode_value(reg(data_type="bool"), [2]) is True
    c = reg(table="coil", data_type="bool")
    assert encode_value(c, "on") == [True]
    with pytest.raises(ValueError, match="not a boolean"):
        encode_value(c, "maybe")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"address": 70000}, "address"),
        ({"address": -1}, "address"),
        ({"data_type": "string"}, "needs length"),
        ({"data_type": "int16", "length": 2}, "length is only for"),
        ({"table": "coil", "data_type": "int16"}, "data_type must be 'bool'"),
        ({"table": "input", "safe_value": 0}, "cannot be written"),
        ({"table": "discrete_input", "data_type": "bool", "safe_value": 0}, "cannot be written"),
        ({"table": "registers"}, "table"),
        ({"data_type": "float16"}, "data_type"),
        ({"scale": 0}, "scale"),
        ({"address": 65535, "data_type": "float32"}, "beyond 65535"),
        ({"data_type": "uint16", "safe_value": -1}, "does not fit"),
        ({"word_order": "middle"}, "word_order"),
        ({"device_id": 300}, "device_id"),
    ],
)
def test_bad_declarations_name_the_problem(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        reg(**fields)


def test_grouping_reads_through_small_gaps_only() -> None:
    regs = [
        reg(tag="a", address=0, data_type="float32"),
        reg(tag="b", address=4),  # gap of 2: read through
        reg(tag="c", address=20),  # gap of 15: new request
        reg(tag="d", table="input", address=0),
        reg(tag="e", address=0, device_id=2),
        reg(tag="f", table="coil", address=0, data_type="bool"),
        reg(tag="g", table="coil", address=5, data_type="bool"),
    ]
    plan = plan_reads(regs, max_gap=8)
    summary = {(p.device_id, p.table, p.address, p.count) for p in plan}
    assert summary == {
        (1, "holding", 0, 5),
        (1, "holding", 20, 1),
        (1, "input", 0, 1),
        (2, "holding", 0, 1),
        (1, "coil", 0, 6),
    }
    assert len(plan_reads(regs, max_gap=0)) == 7  # a+b and f+g no longer merge


def test_grouping_respects_2000_bit_limit() -> None:
    regs = [reg(tag=f"c{a}", table="coil", address=a, data_type="bool") for a in (0, 1999, 2000)]
    plan = plan_reads(regs, max_gap=2000)
    assert [(p.address, p.count) for p in plan] == [(0, 2000), (2000, 1)]


def test_grouping_respects_125_register_limit() -> None:
    regs = [reg(tag=f"r{i}", address=i * 2, data_type="float32") for i in range(100)]
    plan = plan_reads(regs, max_gap=0)
    assert [p.count for p in plan] == [124, 76]
    assert sum(len(p.registers) for p in plan) == 100
