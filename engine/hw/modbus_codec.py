"""Pure Modbus data handling: register declarations, value encoding and request grouping.

No I/O here, so the exact byte layouts and the grouping rules are tested without a device.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.hw.base import ScalarValue

Table = Literal["holding", "input", "coil", "discrete_input"]
DataType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32", "float64", "string"]
Order = Literal["big", "little"]

MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000
WRITABLE_TABLES: frozenset[str] = frozenset({"holding", "coil"})
BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete_input"})

_STRUCT: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "float32": ("f", 2),
    "float64": ("d", 4),
}


class ModbusRegister(BaseModel):
    """One tag mapped onto a Modbus table; `scale`/`offset` give value = raw * scale + offset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tag: str = Field(min_length=1)
    table: Table
    address: int = Field(ge=0, le=65535)
    data_type: DataType = "uint16"
    length: int | None = Field(default=None, ge=1, le=125, description="registers, strings only")
    device_id: int = Field(default=1, ge=0, le=247)
    word_order: Order = "big"
    byte_order: Order = "big"
    scale: float = 1.0
    offset: float = 0.0
    safe_value: ScalarValue | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModbusRegister:
        if self.table in BIT_TABLES and self.data_type != "bool":
            raise ValueError(
                f"table {self.table!r} holds single bits: data_type must be 'bool', "
                f"not {self.data_type!r}"
            )
        if self.data_type == "string" and self.length is None:
            raise ValueError("data_type 'string' needs length (number of registers)")
        if self.data_type != "string" and self.length is not None:
            raise ValueError(f"length is only for data_type 'string', not {self.data_type!r}")
        if self.scale == 0 or not math.isfinite(self.scale):
            raise ValueError("scale must be a finite non-zero number")
        if self.safe_value is not None:
            if self.table not in WRITABLE_TABLES:
                raise ValueError(
                    f"safe_value given but table {self.table!r} cannot be written "
                    "(only 'holding' and 'coil' can)"
                )
            encode_value(self, self.safe_value)
        if self.address + self.width > 65536:
            raise ValueError(
                f"register spans {self.address}..{self.address + self.width - 1}, beyond 65535"
            )
        return self

    @property
    def width(self) -> int:
        """Registers (or bits) the value occupies."""
        if self.data_type == "string":
            assert self.length is not None
            return self.length
        if self.data_type == "bool":
            return 1
        return _STRUCT[self.data_type][1]

    @property
    def writable(self) -> bool:
        return self.table in WRITABLE_TABLES


def _to_words(data: bytes, reg: ModbusRegister, *, strings: bool = False) -> list[int]:
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if reg.byte_order == "little":
        words = [w[::-1] for w in words]
    if reg.word_order == "little" and not strings:
        words.reverse()
    return [int.from_bytes(w, "big") for w in words]


def _from_words(words: list[int], reg: ModbusRegister, *, strings: bool = False) -> bytes:
    parts = [w.to_bytes(2, "big") for w in words]
    if reg.word_order == "little" and not strings:
        parts.reverse()
    if reg.byte_order == "little":
        parts = [p[::-1] for p in parts]
    return b"".join(parts)


def decode_value(reg: ModbusRegister, raw: list[int] | list[bool]) -> ScalarValue:
    """Engineering value from the registers (or one bit) the device returned."""
    if reg.table in BIT_TABLES:
        return bool(raw[0])
    words = [int(w) for w in raw]
    if reg.data_type == "bool":
        return words[0] != 0
    if reg.data_type == "string":
        text = _from_words(words, reg, strings=True).decode("latin-1")
        return text.rstrip("\x00 ")
    code, _ = _STRUCT[reg.data_type]
    number: float | int = struct.unpack(">" + code, _from_words(words, reg))[0]
    if reg.scale == 1.0 and reg.offset == 0.0:
        return number
    return number * reg.scale + reg.offset


def encode_value(reg: ModbusRegister, value: ScalarValue) -> list[int] | list[bool]:
    """Registers (or one bit) to send for an engineering value; ValueError names the problem."""
    if reg.table == "coil":
        return [_as_bool(reg, value)]
    if reg.data_type == "bool":
        return [1 if _as_bool(reg, value) else 0]
    if reg.data_type == "string":
        assert reg.length is not None
        data = str(value).encode("latin-1", errors="replace")
        if len(data) > 2 * reg.length:
            raise ValueError(
                f"{reg.tag}: string of {len(data)} bytes does not fit {reg.length} registers"
            )
        return _to_words(data.ljust(2 * reg.length, b"\x00"), reg, strings=True)
    if isinstance(value, str | bool):
        raise ValueError(f"{reg.tag}: {reg.data_type} needs a number, got {value!r}")
    raw = (float(value) - reg.offset) / reg.scale
    code, _ = _STRUCT[reg.data_type]
    packed: float | int
    if code in "fd":
        packed = raw
    else:
        if not math.isfinite(raw):
            raise ValueError(f"{reg.tag}: {value!r} is not a finite number")
        packed = round(raw)
    try:
        data = struct.pack(">" + code, packed)
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"{reg.tag}: {value!r} does not fit {reg.data_type} ({exc})") from None
    return _to_words(data, reg)


def _as_bool(reg: ModbusRegister, value: ScalarValue) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    text = value.strip().lower()
    if text in ("1", "true", "on", "yes"):
        return True
    if text in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{reg.tag}: {value!r} is not a boolean")


@dataclass(frozen=True)
class ReadRequest:
    """One read covering several declared registers of one table of one device."""

    device_id: int
    table: Table
    address: int
    count: int
    registers: tuple[ModbusRegister, ...]


def plan_reads(registers: list[ModbusRegister], max_gap: int) -> list[ReadRequest]:
    """Fewest reads that cover every register, reading through gaps of at most `max_gap`."""
    by_block: dict[tuple[int, str], list[ModbusRegister]] = {}
    for reg in registers:
        by_block.setdefault((reg.device_id, reg.table), []).append(reg)
    plan: list[ReadRequest] = []
    for (device_id, table), regs in sorted(by_block.items()):
        limit = MAX_BITS_PER_READ if table in BIT_TABLES else MAX_REGISTERS_PER_READ
        regs.sort(key=lambda r: (r.address, r.width))
        start = regs[0].address
        end = start + regs[0].width
        members = [regs[0]]
        for reg in regs[1:]:
            new_end = max(end, reg.address + reg.width)
            if reg.address - end <= max_gap and new_end - start <= limit:
                end = new_end
                members.append(reg)
                continue
            plan.append(ReadRequest(device_id, table, start, end - start, tuple(members)))  # type: ignore[arg-type]
            start, end, members = reg.address, reg.address + reg.width, [reg]
        plan.append(ReadRequest(device_id, table, start, end - start, tuple(members)))  # type: ignore[arg-type]
    return plan
