"""The hostile-inputs corpus (tests/data/hostile/make_corpus.py) against the API: each file gets its 4xx
naming the field, in bounded memory and time, and leaves no row and no object behind."""

from __future__ import annotations

import json
import resource
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import RecordingSender, still_motion
from fastapi.testclient import TestClient
from reliability_support import bucket_keys, load_corpus, row_counts
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from store.models import Asset
from store.objects import S3ObjectStore
from store.settings import Settings

CORPUS = load_corpus()
# Python-level allocations while one request is served; the upload limit is 256 KiB, so 32 MiB leaves room for
# the multipart parsing and the decoders' headers but not for a decoded bomb (20,000² pixels = 400 MB).
MAX_TRACED_BYTES = 32 * 1024 * 1024
# Whole-process high-water mark growth (C allocations included: Pillow, FFmpeg, zlib).
MAX_RSS_GROWTH_BYTES = 128 * 1024 * 1024
MAX_SECONDS = 10.0


LIMITS = ("max_upload_bytes", "max_image_pixels", "max_clip_frames", "max_clip_voxels")


LIMIT_SETS = ("small-limits", "default-limits")
# Beyond the small limits only: under the defaults these are ordinary files (≤ 64 MiB, frames ≤ 4096², an NPZ
# whose central directory lies but whose data is an 8×32×32 clip), stored in bounded memory (tested below).
WITHIN_DEFAULTS = (
    "dicom-oversized",
    "mp4-huge-dimensions",
    "mp4-oversized",
    "nifti-gzip-bomb",
    "nifti-oversized",
    "npz-bomb",
    "npz-lying-member-size",
)
REFUSED_CASES = [
    (limits, name)
    for limits in LIMIT_SETS
    for name in sorted(CORPUS.CASES)
    if limits == "small-limits" or name not in WITHIN_DEFAULTS
]


@pytest.fixture
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Limits 256× smaller than the defaults (256 KiB, 512² pixels, 64 frames), or with `default-limits`
    (indirect parametrization) every limit at its default, as a deployment runs."""
    if getattr(request, "param", "small-limits") == "small-limits":
        return settings
    return settings.model_copy(update={name: Settings.model_fields[name].default for name in LIMITS})


@pytest.fixture
def headers(client: TestClient, make_key: Callable[[str], dict[str, str]]) -> dict[str, str]:
    return make_key("hostile")


@pytest.fixture
def nothing_left(
    client: TestClient, headers: dict[str, str], sessions: sessionmaker[Session], s3_store: S3ObjectStore
) -> Iterator[None]:
    before = (row_counts(sessions), bucket_keys(s3_store))
    yield
    assert (row_counts(sessions), bucket_keys(s3_store)) == before


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measured(send: Callable[[], Any]) -> tuple[Any, int, int, float]:
    """(response, traced peak bytes, RSS high-water growth bytes, seconds) of one request."""
    rss_before = max_rss_bytes()
    tracemalloc.start()
    started = time.monotonic()
    try:
        response = send()
        seconds = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return response, peak, max_rss_bytes() - rss_before, seconds


def assert_error(response: Any, status: int, loc: list[Any], fragment: str) -> None:
    assert response.status_code == status, response.text
    errors = response.json()["detail"]
    assert any(e["loc"][: len(loc)] == loc and fragment in e["msg"] for e in errors), errors


@pytest.mark.parametrize(("settings", "name"), REFUSED_CASES, indirect=["settings"])
def test_hostile_upload_is_refused_in_bounded_memory_and_time(
    name: str, client: TestClient, headers: dict[str, str], nothing_left: None
) -> None:
    case = CORPUS.CASES[name]
    data = case.build()
    response, traced, rss_growth, seconds = measured(
        lambda: client.post(
            "/v1/assets", headers=headers, files={"file": (case.filename, data)}, data={"kind": case.kind}
        )
    )
    print(
        f"hostile {name}: {response.status_code}, {len(data)} bytes, traced peak {traced / 2**20:.2f} MiB, "
        f"RSS growth {rss_growth / 2**20:.1f} MiB, {seconds:.2f} s"
    )
    assert_error(response, case.status, ["body", "file"], case.fragment)
    assert traced < MAX_TRACED_BYTES, f"{name}: {traced / 2**20:.1f} MiB traced"
    assert rss_growth < MAX_RSS_GROWTH_BYTES, f"{name}: RSS grew {rss_growth / 2**20:.1f} MiB"
    assert seconds < MAX_SECONDS, f"{name}: {seconds:.1f} s"


@pytest.mark.parametrize("settings", ["default-limits"], indirect=True)
@pytest.mark.parametrize("name", WITHIN_DEFAULTS)
def test_corpus_files_within_the_default_limits_are_stored_in_bounded_memory(
    name: str, settings: Settings, client: TestClient, headers: dict[str, str]
) -> None:
    case = CORPUS.CASES[name]
    data = case.build()
    response, traced, rss_growth, seconds = measured(
        lambda: client.post(
            "/v1/assets", headers=headers, files={"file": (case.filename, data)}, data={"kind": case.kind}
        )
    )
    print(
        f"default limits, {name}: {response.status_code}, traced peak {traced / 2**20:.2f} MiB, "
        f"RSS growth {rss_growth / 2**20:.1f} MiB, {seconds:.2f} s"
    )
    assert response.status_code == 201, response.text
    shape = response.json()["shape"]  # image prior (H, W); reference clip's motion field (F, 2, H, W)
    frames, sides = (1, shape) if case.kind == "image_prior" else (shape[0], shape[2:])
    assert frames <= settings.condition_max_frames and max(sides) <= settings.condition_max_side, shape
    assert traced < 2 * MAX_TRACED_BYTES, f"{name}: {traced / 2**20:.1f} MiB traced"
    assert rss_growth < MAX_RSS_GROWTH_BYTES, f"{name}: RSS grew {rss_growth / 2**20:.1f} MiB"


@pytest.mark.parametrize("filename", CORPUS.TRAVERSAL_NAMES)
def test_traversal_file_name_with_a_bomb_is_refused(
    filename: str, client: TestClient, headers: dict[str, str], nothing_left: None
) -> None:
    response = client.post(
        "/v1/assets",
        headers=headers,
        files={"file": (filename, CORPUS.png_bomb())},
        data={"kind": "image_prior"},
    )
    assert_error(response, 413, ["body", "file"], "bomb")


def test_traversal_file_names_never_become_paths(
    client: TestClient, headers: dict[str, str], sessions: sessionmaker[Session], s3_store: S3ObjectStore
) -> None:
    """A valid image under a hostile name is stored under its content address; the name is only shown,
    reduced to a harmless base name (docs/decisions.md, reliability)."""
    shown = []
    for seed, filename in enumerate(CORPUS.TRAVERSAL_NAMES):
        response = client.post(
            "/v1/assets",
            headers=headers,
            files={"file": (filename, CORPUS.png_image(32, seed=seed))},
            data={"kind": "image_prior"},
        )
        assert response.status_code == 201, response.text
        shown.append(response.json()["filename"])
    assert shown[:3] == ["passwd.png", "win.ini.png", "shadow.png"]
    for name in shown:
        assert "/" not in name and "\\" not in name and "\x00" not in name and not name.startswith(".")
    with sessions() as session:
        assets = session.scalars(select(Asset)).all()
        assert sorted(a.filename for a in assets) == sorted(shown)
        expected = {key for a in assets for key in (a.object_key, a.array_object_key)}
    keys = bucket_keys(s3_store)
    assert set(keys) == expected
    for key in keys:
        assert key.startswith("projects/") and ".." not in key.split("/")


def raw_multipart(fields: list[tuple[bytes, bytes | None, bytes]]) -> tuple[bytes, str]:
    """A multipart body built byte by byte (`(name, filename or None, value)`), so fields can hold bytes
    that are not UTF-8."""
    boundary = b"hostileboundary"
    parts = []
    for name, filename, value in fields:
        disposition = b'Content-Disposition: form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        parts.append(b"--" + boundary + b"\r\n" + disposition + b"\r\n\r\n" + value + b"\r\n")
    body = b"".join(parts) + b"--" + boundary + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary.decode()}"


def test_non_utf8_kind_field_is_refused(
    client: TestClient, headers: dict[str, str], nothing_left: None
) -> None:
    body, content_type = raw_multipart(
        [(b"kind", None, b"\xff\xfeimage_prior"), (b"file", b"a.png", CORPUS.png_image())]
    )
    response = client.post("/v1/assets", headers={**headers, "Content-Type": content_type}, content=body)
    assert response.status_code in (400, 422), response.text
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_non_utf8_file_name_is_stored_as_a_harmless_name(client: TestClient, headers: dict[str, str]) -> None:
    body, content_type = raw_multipart(
        [(b"kind", None, b"image_prior"), (b"file", b"\xff\xfe../../scan\xc3.png", CORPUS.png_image())]
    )
    response = client.post("/v1/assets", headers={**headers, "Content-Type": content_type}, content=body)
    assert response.status_code == 201, response.text
    name = response.json()["filename"]
    assert name.endswith(".png") and "/" not in name and ".." not in name


def test_non_utf8_dataset_name_is_refused(
    client: TestClient, headers: dict[str, str], nothing_left: None
) -> None:
    body, content_type = raw_multipart([(b"name", None, b"\xc3\x28set"), (b"file", b"d.zip", b"PK\x05\x06")])
    response = client.post("/v1/datasets", headers={**headers, "Content-Type": content_type}, content=body)
    assert response.status_code in (400, 422), response.text
    assert response.json()["detail"][0]["loc"][0] == "body"


HOSTILE_JOB_BODIES: dict[str, tuple[bytes, int, list[Any]]] = {
    "not UTF-8": (b'{"model": "\xff\xfe", "banks": [{"samples": 1}]}', 400, ["body"]),
    "nested 50,000 deep": (b"[" * 50_000 + b"]" * 50_000, 400, ["body"]),
    "infinite number": (b'{"model": "m", "banks": [{"samples": 1}], "seed": 1e999}', 422, ["body", "seed"]),
    "NaN threshold": (
        b'{"model": "m", "banks": [{"samples": 1}], "filter": {"alpha": NaN}}',
        422,
        ["body", "filter", "alpha"],
    ),
    "infinite alpha": (
        b'{"model": "m", "banks": [{"samples": 1}], "filter": {"alpha": Infinity}}',
        422,
        ["body", "filter", "alpha"],
    ),
    "NUL in model name": (
        json.dumps({"model": "a\x00b", "banks": [{"samples": 1}]}).encode(),
        422,
        ["body", "model"],
    ),
    "NUL in text": (
        json.dumps({"model": "m", "banks": [{"text": "heart\x00", "samples": 1}]}).encode(),
        422,
        ["body", "banks", 0, "text"],
    ),
    "huge integer": (
        json.dumps({"model": "m", "banks": [{"samples": 10**40}]}).encode(),
        422,
        ["body", "banks", 0, "samples"],
    ),
}


@pytest.mark.parametrize("settings", LIMIT_SETS, indirect=True)
@pytest.mark.parametrize("case", sorted(HOSTILE_JOB_BODIES))
def test_hostile_job_body_is_refused(
    case: str, client: TestClient, headers: dict[str, str], tiny_model: str, nothing_left: None
) -> None:
    body, status, loc = HOSTILE_JOB_BODIES[case]
    response = client.post("/v1/jobs", headers={**headers, "Content-Type": "application/json"}, content=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"][0]["loc"] == loc


def test_nul_in_dataset_name_is_refused(
    client: TestClient, headers: dict[str, str], nothing_left: None
) -> None:
    response = client.post(
        "/v1/datasets", headers=headers, data={"name": "a\x00b"}, files={"file": ("d.zip", b"PK\x05\x06")}
    )
    assert_error(response, 422, ["body", "name"], "")


def test_an_upload_over_its_time_budget_is_refused(
    settings: Settings, s3_store: S3ObjectStore, headers: dict[str, str], nothing_left: None
) -> None:
    """`max_upload_seconds` bounds decoding: checked before every frame (and every inflated megabyte)."""
    app = create_app(
        settings.model_copy(update={"max_upload_seconds": 1e-6}),
        object_store=s3_store,
        send_task=RecordingSender(),
        check_broker=lambda: None,
        extract_motion=still_motion,
    )
    with TestClient(app) as slow:
        response = slow.post(
            "/v1/assets",
            headers=headers,
            files={"file": ("c.npz", CORPUS.npz_zeros_clip(frames=8, side=32))},
            data={"kind": "reference_clip"},
        )
    app.state.service.sessionmaker.kw["bind"].dispose()
    assert_error(response, 413, ["body", "file"], "upload budget of 1e-06 s (max_upload_seconds)")
