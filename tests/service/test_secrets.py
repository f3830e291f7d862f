"""The URL-signing secret: made at first start of the embedded service (random, 0600, in the data folder),
never a constant of the code; a server configuration without an explicit secret refuses to start."""

from __future__ import annotations

import ast
import secrets
import stat
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from api.main import create_app
from api.state import OBJECTS_ROUTE, object_signature
from cli.main import app as cli_app
from store.objects import S3ObjectStore
from store.settings import SECRET_KEY_FILE, Settings
from worker.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[2]
SERVICE_PACKAGES = ("api", "cli", "store", "worker", "migrations")
REFUSED = "secret_key: not set; a server configuration"


def code_string_constants() -> set[str]:
    """Every string literal of the service's code, and the old built-in development secret."""
    constants = {"ctrlgenaug-development-secret-key-do-not-use-in-production", ""}
    for package in SERVICE_PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    constants.add(node.value)
    return constants


def test_embedded_secret_is_random_made_once_and_private(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path / "a")
    assert first.secret_key is None and not (tmp_path / "a" / SECRET_KEY_FILE).exists()
    secret = first.signing_secret()
    path = tmp_path / "a" / SECRET_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) >= 64 and path.read_text() == secret
    assert Settings(data_dir=tmp_path / "a").signing_secret() == secret  # kept across restarts
    assert Settings(data_dir=tmp_path / "b").signing_secret() != secret
    assert secret not in code_string_constants()
    assert [p.name for p in (tmp_path / "a").iterdir()] == [SECRET_KEY_FILE]  # no partial file left


@pytest.mark.parametrize("settings_class", [Settings, WorkerSettings])
@pytest.mark.parametrize(
    "server",
    [
        {"environment": "production"},
        {"environment": "test"},
        {"database_url": "postgresql+psycopg://u@db/ctrlgenaug"},
        {"broker_url": "redis://redis:6379/0"},
        {"s3_endpoint": "minio:9000", "s3_secret_key": "minio-secret"},
    ],
)
def test_a_server_configuration_without_a_secret_is_refused(
    settings_class: type[Settings], server: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CTRLGENAUG_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match=REFUSED):
        settings_class(**server)  # type: ignore[arg-type]
    assert settings_class(**server, secret_key="s3cr3t").signing_secret() == "s3cr3t"  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="secret_key: empty"):
        settings_class(**server, secret_key="")  # type: ignore[arg-type]


@pytest.mark.parametrize("command", [["api"], ["worker"], ["up"]])
def test_service_commands_refuse_to_start_with_one_line(
    command: list[str], embedded_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTRLGENAUG_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1:1/none")
    result = CliRunner().invoke(cli_app, command)
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "configuration error: secret_key: not set; a server configuration (environment other than "
        "development, or an external database, broker or S3) needs CTRLGENAUG_SECRET_KEY, the same in "
        "every process"
    ]
    assert not embedded_data_dir.exists()


def assert_forged_urls_refused(app: FastAPI, secret: str) -> None:
    """URLs for another project's object signed with each string constant of the code are refused (403 naming
    the signature) while the genuine URL, signed with `secret`, downloads."""
    store = app.state.service.object_store
    key = "jobs/other-project/database.zip"
    store.put(key, b"another project's database")
    expires = int(time.time()) + 600
    constants = code_string_constants()
    assert len(constants) > 500
    with TestClient(app) as client:
        query = urlencode({"expires": expires, "signature": object_signature(secret, key, expires)})
        assert client.get(f"{OBJECTS_ROUTE}/{quote(key)}?{query}").content == b"another project's database"
        forged = {object_signature(constant, key, expires) for constant in constants}
        assert object_signature(secret, key, expires) not in forged
        for signature in sorted(forged)[:200]:
            query = urlencode({"expires": expires, "signature": signature})
            response = client.get(f"{OBJECTS_ROUTE}/{quote(key)}?{query}")
            assert response.status_code == 403, signature
            assert response.json()["detail"][0]["loc"] == ["query", "signature"]


def test_a_url_forged_with_any_constant_of_the_code_does_not_download(embedded_data_dir: Path) -> None:
    app = create_app(Settings(data_dir=embedded_data_dir))
    genuine = app.state.service.object_store.presigned_get("jobs/other-project/database.zip", 600)
    secret_file = embedded_data_dir / SECRET_KEY_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert f"{OBJECTS_ROUTE}/" in genuine  # the local folder's URLs are the API's own, signed with the file
    assert_forged_urls_refused(app, secret_file.read_text())


def test_a_url_forged_with_any_constant_of_the_code_does_not_download_on_postgres_and_s3(
    clean: None, database_url: str, services: dict[str, str], s3_store: S3ObjectStore, tmp_path: Path
) -> None:
    """The server shape, every limit at its default: the signed-download route serves the S3 bucket too."""
    secret = "operator-secret-" + secrets.token_hex(16)
    settings = Settings(
        environment="test",
        secret_key=secret,
        data_dir=tmp_path / "data",
        database_url=database_url,
        broker_url=services["CTRLGENAUG_TEST_REDIS_URL"],
        s3_endpoint=services["CTRLGENAUG_TEST_S3_ENDPOINT"],
        s3_access_key=services["CTRLGENAUG_TEST_S3_ACCESS_KEY"],
        s3_secret_key=services["CTRLGENAUG_TEST_S3_SECRET_KEY"],
        s3_bucket=s3_store.bucket,
    )
    app = create_app(settings, check_broker=lambda: None)
    assert isinstance(app.state.service.object_store, S3ObjectStore)
    assert_forged_urls_refused(app, secret)
    app.state.service.sessionmaker.kw["bind"].dispose()
