"""The upload size limit is enforced by the app itself while the body streams in: a chunked upload with no
Content-Length, far beyond the limit, is answered 413 long before it ends, and the server does not hold it."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from reliability_support import UvicornServer, service_environment, vm_high_water_bytes

from store.settings import Settings

CHUNK = 64 * 1024
TOTAL = 64 * 1024 * 1024  # 256 × the 256 KiB limit


@pytest.fixture
def server(settings: Settings, clean: None) -> Iterator[UvicornServer]:
    with UvicornServer(service_environment(settings)) as server:
        yield server


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def stream_until_answered(port: int, head: bytes, body_start: bytes) -> tuple[bytes, int]:
    """Send the request head, then the body in chunks until the server answers; returns (answer, body bytes
    sent before it came)."""
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + chunk(body_start))
        sent += len(body_start)
        payload = bytes(CHUNK)
        while sent < TOTAL:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk(payload))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
        sock.settimeout(30)
        deadline = time.monotonic() + 30
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data or time.monotonic() > deadline:
                break
            answer += data
    return answer, sent


def test_chunked_upload_beyond_the_limit_is_cut_off_while_streaming(
    server: UvicornServer, settings: Settings, make_key: Callable[[str], dict[str, str]]
) -> None:
    assert server.process is not None
    authorization = make_key("limits")["Authorization"]
    head = (
        "POST /v1/assets HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: {authorization}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    body_start = (
        b'--x\r\nContent-Disposition: form-data; name="kind"\r\n\r\nimage_prior\r\n'
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
    )
    rss_before = vm_high_water_bytes(server.process.pid)
    answer, sent = stream_until_answered(server.port, head, body_start)
    rss_growth = vm_high_water_bytes(server.process.pid) - rss_before
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:200]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["detail"][0]["loc"] == ["body", "file"]
    assert "upload exceeds the limit of" in body["detail"][0]["msg"]
    assert sent < TOTAL // 8, f"the server read {sent} bytes before answering"
    assert rss_growth < TOTAL // 4, f"server peak RSS grew by {rss_growth / 2**20:.1f} MiB"
    growth = rss_growth / 2**20
    print(f"limit {settings.max_upload_bytes} B: answered 413 after {sent} B sent; RSS +{growth:.1f} MiB")
