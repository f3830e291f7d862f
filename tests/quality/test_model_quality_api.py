"""`GET /v1/models/{model}` serves the model directory's quality card, on the embedded default (SQLite)."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.main import create_app
from cli.main import app as cli_app
from generator.pipeline import build_tiny_pipeline
from store.registry import QUALITY_CARD
from store.settings import Settings, get_settings

CHROMIUM = "/usr/bin/chromium"
QUALITY = {
    "overall": {"precision": 0.5, "fvd": None},
    "per_class": {"class_0": {"precision": 0.25}},
    "definitions": {"feature_space": "frames resized to 32x32"},
}


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("DATABASE_URL", "BROKER_URL", "S3_ENDPOINT", "ENVIRONMENT", "SECRET_KEY"):
        monkeypatch.delenv(f"CTRLGENAUG_{name}", raising=False)
    monkeypatch.setenv("CTRLGENAUG_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    _cli("db", "upgrade")
    yield tmp_path / "data"
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("tiny-model")
    build_tiny_pipeline(num_classes=2).save_pretrained(model_dir)
    return model_dir


def test_model_detail_carries_the_quality_card(data_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    evaluated = tmp_path / "evaluated"
    shutil.copytree(tiny_model_dir, evaluated)
    (evaluated / QUALITY_CARD).write_text(json.dumps(QUALITY))
    _cli("models", "register", str(evaluated))
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        [listed] = client.get("/v1/models").json()
        assert "quality" not in listed
        for reference in (listed["id"], "tiny-ctrlgenaug", "tiny-ctrlgenaug:0.0.0+seed0"):
            response = client.get(f"/v1/models/{reference}")
            assert response.status_code == 200, response.text
            assert response.json() == {**listed, "quality": QUALITY}
        missing = client.get("/v1/models/tiny-ctrlgenaug:9.9.9")
        assert missing.status_code == 404
        assert missing.json()["detail"][0]["loc"] == ["path", "model"]


def test_a_model_without_a_card_has_null_quality(data_dir: Path, tiny_model_dir: Path) -> None:
    _cli("models", "register", str(tiny_model_dir))
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        assert client.get("/v1/models/tiny-ctrlgenaug").json()["quality"] is None


def test_registration_refuses_a_broken_quality_card(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / QUALITY_CARD).write_text("[1, 2")
    result = CliRunner().invoke(cli_app, ["models", "register", str(broken)])
    assert result.exit_code != 0
    assert "quality.json: not JSON" in result.output


def test_console_model_page_is_a_shell_that_loads_the_model(data_dir: Path) -> None:
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        page = client.get("/console/models/demo:0.4.0")
        assert page.status_code == 200
        assert "<title>Model · Ctrl-GenAug console</title>" in page.text
        assert 'data-model="demo:0.4.0"' in page.text
        assert '<script type="module" src="/console/static/model.js"></script>' in page.text
        script = client.get("/console/static/model.js").text
        assert "/v1/models/${encodeURIComponent(reference)}" in script
        assert client.get("/console/models/%3Cb%3E").text.count("<b>") == 0  # the reference is escaped


@pytest.mark.browser
def test_console_model_page_renders_the_figures(data_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    evaluated = tmp_path / "evaluated"
    shutil.copytree(tiny_model_dir, evaluated)
    (evaluated / QUALITY_CARD).write_text(json.dumps(QUALITY))
    _cli("models", "register", str(evaluated))
    key = _cli("keys", "create", "--project", "quality").strip().splitlines()[-1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(Settings(data_dir=data_dir)), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    errors: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
            )
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"http://127.0.0.1:{port}/console/login")
            page.evaluate("key => sessionStorage.setItem('ctrlgenaug.apiKey', key)", key)
            page.goto(f"http://127.0.0.1:{port}/console/models/tiny-ctrlgenaug")
            page.wait_for_selector("#quality-table:not([hidden])")
            header = page.locator("#quality-table thead th").all_inner_texts()
            precision = page.locator('#quality-table tr[data-figure="precision"] td').all_inner_texts()
            fvd = page.locator('#quality-table tr[data-figure="fvd"] td').all_inner_texts()
            definitions = page.locator("#quality-definitions").inner_text()
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert header == ["Figure", "class_0", "overall"]
    assert precision == ["0.250", "0.500"]
    assert fvd == ["—", "—"]
    assert "frames resized to 32x32" in definitions
    assert not errors, errors
