"""The embedded default (SQLite + local object folder under CTRLGENAUG_DATA_DIR) and the service CLI:
keys and models created by the CLI are seen by an app started on the same data dir."""

from __future__ import annotations

import uuid
from pathlib import Path

import service_files as files
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api.main import create_app
from cli.main import app as cli_app
from store.models import Asset, OutboxMessage
from store.settings import Settings


def run(*args: str) -> str:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cli_then_app_on_the_same_data_dir(embedded_data_dir: Path, tiny_model_dir: Path) -> None:
    run("db", "upgrade")
    key = run("keys", "create", "--project", "newcomer").strip().splitlines()[-1]
    assert key.startswith("cga_")
    registered = run("models", "register", str(tiny_model_dir))
    assert registered.startswith("tiny-ctrlgenaug 0.0.0+seed0 sha256:")
    assert run("models", "register", str(tiny_model_dir)) == registered
    build = embedded_data_dir.parent / "build"
    files.data_build_zip(build)
    registered_dataset = run("datasets", "register", str(build / "manifest.jsonl"), "--project", "newcomer")
    assert registered_dataset.strip() == "dataset build: 3 training clips, classes ['class_0', 'class_1']"

    app = create_app(Settings(data_dir=embedded_data_dir))
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:
        models = client.get("/v1/models").json()
        assert [(m["name"], m["num_frames"], m["class_names"]) for m in models] == [
            ("tiny-ctrlgenaug", 8, ["class_0", "class_1", "class_2"])
        ]
        assert client.get("/v1/info").json()["models"] == models
        assert [d["name"] for d in client.get("/v1/datasets", headers=headers).json()] == ["build"]
        ready = client.get("/v1/ready").json()
        assert ready == {
            "ready": True,
            "checks": {n: {"ok": True, "error": None} for n in ("database", "broker", "storage")},
        }
        data = files.png(seed=9)
        asset = client.post(
            "/v1/assets", headers=headers, files={"file": ("p.png", data)}, data={"kind": "image_prior"}
        ).json()
        assert (embedded_data_dir / "objects" / "projects").is_dir()
        job = client.post(
            "/v1/jobs",
            headers=headers,
            json={
                "model": "tiny-ctrlgenaug",
                "banks": [{"image_prior_asset": asset["id"], "samples": 1}],
            },
        )
        assert job.status_code == 202
        with app.state.service.sessionmaker() as session:
            object_key = session.get_one(Asset, uuid.UUID(asset["id"])).object_key
            outbox = session.scalars(select(OutboxMessage)).one()
        assert outbox.dispatched_at is not None, outbox.last_error
        url = app.state.service.object_store.presigned_get(object_key, 60)
        assert url is not None and url.startswith("/v1/objects/projects/")
        assert client.get(url).content == data
        assert client.get(url.replace("signature=", "signature=0")).status_code == 403
        metrics = client.get("/metrics").text
        assert 'ctrlgenaug_jobs{status="queued"} 1.0' in metrics
        assert 'ctrlgenaug_http_requests_total{method="POST",route="/v1/jobs",status="202"} 1.0' in metrics
