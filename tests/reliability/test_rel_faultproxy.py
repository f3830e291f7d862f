"""scripts/faultproxy.py in front of a small HTTP server: each fault does what the fault tests rely on."""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from reliability_support import load_faultproxy

faultproxy = load_faultproxy()


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        reply = b"stored " + body + b" " + self.headers.get("Connection", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections the proxy cuts on purpose end here; no traceback on stderr."""


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = QuietServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def proxy(upstream: int) -> Iterator[Any]:
    with faultproxy.FaultProxy(upstream_port=upstream, seed=7) as proxy:
        yield proxy


def put(port: int, body: bytes = b"abc") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("PUT", "/bucket/key", body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_pass_through(proxy: Any) -> None:
    assert put(proxy.port) == (200, b"stored abc ")
    assert proxy.counters.connections == 1 and proxy.counters.faulted == 0


def test_error_answers_an_s3_error_and_passes_the_rest_with_connection_close(proxy: Any) -> None:
    proxy.set_fault("error", rate=1.0, error_status=503)
    status, body = put(proxy.port, bytes(100_000))
    assert status == 503 and b"<Code>ServiceUnavailable</Code>" in body
    proxy.set_fault("error", rate=0.5)
    statuses = [put(proxy.port)[0] for _ in range(30)]
    assert {200, 503} == set(statuses)
    assert proxy.counters.faulted == 1 + statuses.count(503)
    proxy.set_fault("error", rate=0.0)
    assert put(proxy.port) == (200, b"stored abc close")


def test_refuse_closes_the_port_until_the_fault_ends(proxy: Any) -> None:
    port = proxy.port
    proxy.set_fault("refuse")
    with pytest.raises(ConnectionRefusedError):
        put(port)
    proxy.set_fault("none")
    assert proxy.port == port
    assert put(port) == (200, b"stored abc ")
    assert proxy.counters.refused_windows == 1


@pytest.mark.parametrize("fault", ["drop", "reset"])
def test_drop_and_reset_break_the_connection(proxy: Any, fault: str) -> None:
    proxy.set_fault(fault)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
        put(proxy.port)
    assert proxy.counters.faulted == 1


def test_delay_slows_every_forwarded_chunk(proxy: Any) -> None:
    proxy.set_fault("delay", delay_s=0.3)
    started = time.monotonic()
    assert put(proxy.port) == (200, b"stored abc ")
    assert time.monotonic() - started >= 0.3


def test_rate_outside_zero_to_one_is_refused(proxy: Any) -> None:
    with pytest.raises(ValueError, match="rate: 1.5 is not within"):
        proxy.set_fault("error", rate=1.5)
