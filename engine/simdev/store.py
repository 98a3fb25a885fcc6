"""A plain Modbus datastore for simulated devices and test peers.

pymodbus 3.16 deprecates its old contexts and its SimDevice model is awkward to update from a
process model, so this subclass keeps four sparse tables per device id in dictionaries, counts
the requests it serves and tells the owner about writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException

from engine.hw.base import ScalarValue
from engine.hw.modbus_codec import ModbusRegister, Table, decode_value, encode_value

# function code -> (table, is_write)
_FUNCTIONS: dict[int, tuple[Table, bool]] = {
    1: ("coil", False),
    2: ("discrete_input", False),
    3: ("holding", False),
    4: ("input", False),
    5: ("coil", True),
    15: ("coil", True),
    6: ("holding", True),
    16: ("holding", True),
    23: ("holding", True),
}

WriteHook = Callable[[int, Table, int, list[int] | list[bool]], "ExcCodes | None"]


class RegisterStore(ModbusServerContext):
    """Tables keyed by (device id, table name) -> {address: word or bit}.

    Only addresses that were defined exist; reading outside them answers "illegal data address"
    as a real device would. `on_write` runs after a write is stored and may refuse it by
    returning an exception code (the owner then restores what it wants the device to hold).
    """

    def __init__(self, device_ids: Iterable[int] = (1,), on_write: WriteHook | None = None):
        self.old_simulator = True
        self.simdevices = []
        self.tables: dict[tuple[int, Table], dict[int, int | bool]] = {}
        self._ids = sorted(set(device_ids))
        for dev in self._ids:
            for table in ("holding", "input", "coil", "discrete_input"):
                self.tables[(dev, table)] = {}
        self.on_write = on_write
        self.requests: Counter[int] = Counter()

    def device_ids(self) -> list[int]:
        return list(self._ids)

    def define(self, reg: ModbusRegister, value: ScalarValue) -> None:
        self.set_raw(reg.device_id, reg.table, reg.address, encode_value(reg, value))

    def set_value(self, reg: ModbusRegister, value: ScalarValue) -> None:
        self.define(reg, value)

    def get_value(self, reg: ModbusRegister) -> ScalarValue:
        table = self.tables[(reg.device_id, reg.table)]
        raw = [table[a] for a in range(reg.address, reg.address + reg.width)]
        return decode_value(reg, raw)

    def set_raw(
        self, device_id: int, table: Table, address: int, values: Sequence[int] | Sequence[bool]
    ) -> None:
        block = self.tables[(device_id, table)]
        for i, v in enumerate(values):
            block[address + i] = v

    def read_requests(self) -> int:
        return sum(n for fc, n in self.requests.items() if fc in (1, 2, 3, 4))

    def write_requests(self) -> int:
        return sum(n for fc, n in self.requests.items() if fc in (5, 6, 15, 16))

    def _block(self, device_id: int, func_code: int) -> tuple[Table, dict[int, int | bool]]:
        if device_id not in self._ids:
            raise NoSuchIdException(f"device_id {device_id} does not exist")
        table, _ = _FUNCTIONS[func_code]
        return table, self.tables[(device_id, table)]

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        if func_code not in _FUNCTIONS:
            return ExcCodes.ILLEGAL_FUNCTION
        if not _FUNCTIONS[func_code][1]:
            self.requests[func_code] += 1
        table, block = self._block(device_id, func_code)
        try:
            values = [block[a] for a in range(address, address + count)]
        except KeyError:
            return ExcCodes.ILLEGAL_ADDRESS
        if table in ("coil", "discrete_input"):
            return [bool(v) for v in values]
        return [int(v) for v in values]

    async def async_setValues(
        self,
        device_id: int,
        func_code: int,
        address: int,
        values: Sequence[int] | Sequence[bool],
    ) -> ExcCodes | None:
        if func_code not in _FUNCTIONS or not _FUNCTIONS[func_code][1]:
            return ExcCodes.ILLEGAL_FUNCTION
        self.requests[func_code] += 1
        table, block = self._block(device_id, func_code)
        if any(address + i not in block for i in range(len(values))):
            return ExcCodes.ILLEGAL_ADDRESS
        stored: list[int] | list[bool] = (
            [bool(v) for v in values] if table == "coil" else [int(v) for v in values]
        )
        for i, v in enumerate(stored):
            block[address + i] = v
        if self.on_write is not None:
            return self.on_write(device_id, table, address, stored)
        return None
