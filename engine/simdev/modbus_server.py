"""Start and stop a real pymodbus TCP server around a `RegisterStore`."""

from __future__ import annotations

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.base import ModbusBaseServer

from engine.simdev.store import RegisterStore


async def serve_tcp(
    store: RegisterStore, host: str = "127.0.0.1", port: int = 5020
) -> ModbusTcpServer:
    """Listening when this returns; stop it with `await server.shutdown()`."""
    server = ModbusTcpServer(store, address=(host, port))
    try:
        await server.serve_forever(background=True)
    except RuntimeError:
        raise OSError(f"cannot listen on {host}:{port} (address in use or not local?)") from None
    return server


async def serve_rtu_socket(store: RegisterStore, host: str, port: int) -> ModbusSerialServer:
    """RTU framing over TCP, as an RS-485 gateway does; clients use socket://host:port."""
    server = ModbusSerialServer(store, framer=FramerType.RTU, port=f"socket://{host}:{port}")
    await server.serve_forever(background=True)
    return server


async def stop_server(server: ModbusBaseServer) -> None:
    """Closes the listener and every client connection, as pulling the cable would."""
    await server.shutdown()  # type: ignore[no-untyped-call]
