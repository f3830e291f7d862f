#!/usr/bin/env python3
"""A small fault-injecting TCP proxy for the reliability tests: pass-through, refuse, drop, reset, HTTP error,
delay. No Toxiproxy server installs from the registries here (PyPI only has clients), so this stands in.

Faults (`Fault`):
  none     pass bytes both ways
  refuse   the listening socket is closed: new connections are refused (a server that is down)
  drop     accept, then close at once without a byte (a crashing server)
  reset    accept, then abort with a TCP RST (SO_LINGER 0)
  error    answer HTTP requests with `error_status` and an S3-style XML error (each request of a passed
           connection is sent with `Connection: close`, so every request meets the fault's odds)
  delay    pass through after waiting `delay_s` before each chunk forwarded to the upstream
`rate` (0..1) applies a fault to that fraction of new connections only (seeded, reproducible); switching
faults cuts the connections already open so the new fault applies to the client's next request.

Python: `with FaultProxy(upstream_port=9000) as proxy: proxy.set_fault(Fault.error)`.
Command line: `python scripts/faultproxy.py --upstream 127.0.0.1:9000 --listen 127.0.0.1:9100`, then type
`refuse`, `error 0.5`, `delay 2`, `none` on stdin (one command a line) to change the fault.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import random
import socket
import struct
import sys
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

CHUNK_BYTES = 64 * 1024
MAX_DRAIN = 64 * 1024 * 1024


class Fault(str, enum.Enum):
    none = "none"
    refuse = "refuse"
    drop = "drop"
    reset = "reset"
    error = "error"
    delay = "delay"


@dataclass
class ProxyCounters:
    connections: int = 0
    faulted: int = 0
    refused_windows: int = 0


def _s3_error_response(status: int) -> bytes:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
        b"<Message>injected by faultproxy</Message></Error>"
    )
    head = (
        f"HTTP/1.1 {status} Injected Fault\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return 0


def _close_after_response(head: bytes) -> bytes:
    """The request head with `Connection: close`, so the server ends the connection after its answer."""
    lines = [line for line in head[:-4].split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.fileno() >= 0:  # the peer may have closed it already
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 running in its own thread and event loop; faults change at any time."""

    def __init__(
        self,
        upstream_port: int,
        upstream_host: str = "127.0.0.1",
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        seed: int = 0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listen_host = listen_host
        self.port = listen_port
        self.fault = Fault.none
        self.rate = 1.0
        self.delay_s = 0.0
        self.error_status = 503
        self.counters = ProxyCounters()
        self._random = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"{self.listen_host}:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_fault(
        self, fault: Fault | str, *, rate: float = 1.0, delay_s: float = 0.0, error_status: int = 503
    ) -> None:
        """Switch the fault; open connections are cut so the client's next request meets it."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate: {rate} is not within [0, 1]")
        self._call(self._apply(Fault(fault), rate, delay_s, error_status))

    def _call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.listen_host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _cut_open_connections(self) -> None:
        for writer in list(self._open):
            _abort_with_rst(writer)
        self._open.clear()

    async def _shutdown(self) -> None:
        await self._close_listener()
        await self._cut_open_connections()

    async def _apply(self, fault: Fault, rate: float, delay_s: float, error_status: int) -> None:
        self.rate, self.delay_s, self.error_status = rate, delay_s, error_status
        previous, self.fault = self.fault, fault
        await self._cut_open_connections()
        if fault == Fault.refuse and previous != Fault.refuse:
            await self._close_listener()
            self.counters.refused_windows += 1
        elif fault != Fault.refuse and self._server is None:
            await self._listen()

    def _faulted(self) -> bool:
        return self.fault != Fault.none and self._random.random() < self.rate

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters.connections += 1
        fault = self.fault if self._faulted() else Fault.none
        if fault != Fault.none:
            self.counters.faulted += 1
        if fault == Fault.drop:
            writer.close()
            return
        if fault == Fault.reset:
            _abort_with_rst(writer)
            return
        if fault == Fault.error:
            await self._answer_error(reader, writer)
            return
        head = b""
        if self.fault == Fault.error:
            head = await self._read_head(reader)
            if head is None:
                writer.close()
                return
            head = _close_after_response(head)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort_with_rst(writer)
            return
        delay = self.delay_s if fault == Fault.delay else 0.0
        self._open.update((writer, up_writer))
        up_writer.write(head)
        try:
            await asyncio.gather(self._pipe(reader, up_writer, delay), self._pipe(up_reader, writer, 0.0))
        finally:
            self._open.discard(writer)
            self._open.discard(up_writer)

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
        try:
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            return None

    async def _answer_error(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await self._read_head(reader)
        if head is None:
            writer.close()
            return
        try:
            # drain the request body so the client reads the error instead of a reset
            await asyncio.wait_for(reader.readexactly(min(_content_length(head), MAX_DRAIN)), timeout=10)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        writer.write(_s3_error_response(self.error_status))
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, delay_s: float) -> None:
        try:
            while chunk := await source.read(CHUNK_BYTES):
                if delay_s:
                    await asyncio.sleep(delay_s)
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not sink.is_closing():
                sink.close()


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the real server")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to listen on (port 0: any free)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    upstream_host, upstream_port = _host_port(args.upstream)
    listen_host, listen_port = _host_port(args.listen)
    with FaultProxy(upstream_port, upstream_host, listen_host, listen_port, args.seed) as proxy:
        print(f"listening on {proxy.address} -> {args.upstream}", flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            try:
                fault = Fault(words[0])
                number = float(words[1]) if len(words) > 1 else None
                if fault == Fault.delay:
                    proxy.set_fault(fault, delay_s=number or 1.0)
                else:
                    proxy.set_fault(fault, rate=1.0 if number is None else number)
            except ValueError as exc:
                print(f"error: {exc}; faults: {[f.value for f in Fault]}", flush=True)
                continue
            print(f"fault {fault.value}: {proxy.counters}", flush=True)


if __name__ == "__main__":
    main()
