"""`ctrlgenaug keys create|list|revoke|rotate` and `projects retention` on the embedded default, and an app
on the same data dir honouring what they did: scopes, revocation, rotation, key events in the chain."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.main import create_app
from cli.main import app as cli_app
from store.settings import Settings


def run(*args: str, exit_code: int = 0) -> str:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == exit_code, result.output
    return result.output if exit_code else result.stdout


def test_keys_and_retention_from_the_cli(embedded_data_dir: Path) -> None:
    full = run("keys", "create", "--project", "clinic").strip()
    auditor = run("keys", "create", "--project", "clinic", "--scope", "read", "--scope", "audit:read").strip()
    listed = [line.split("\t") for line in run("keys", "list", "--project", "clinic").splitlines()]
    assert [(prefix, scopes, state) for _, prefix, scopes, _, state in listed] == [
        (full[:12] + "…", "jobs:write,read,audit:read", "active"),
        (auditor[:12] + "…", "read,audit:read", "active"),
    ]
    assert "scope: unknown admin" in run(
        "keys", "create", "--project", "clinic", "--scope", "admin", exit_code=2
    )

    app = create_app(Settings(data_dir=embedded_data_dir))
    with TestClient(app) as client:
        as_auditor = {"Authorization": f"Bearer {auditor}"}
        assert client.get("/v1/jobs", headers=as_auditor).status_code == 200
        refused = client.post("/v1/jobs", headers=as_auditor, json={})
        assert refused.status_code == 403
        assert (
            refused.json()["detail"][0]["msg"]
            == "this API key lacks the scope jobs:write (it has read, audit:read)"
        )

        rotated = run("keys", "rotate", auditor[:12], "--project", "clinic").strip()
        assert rotated.startswith("cga_") and rotated != auditor
        assert client.get("/v1/jobs", headers=as_auditor).status_code == 401
        as_rotated = {"Authorization": f"Bearer {rotated}"}
        assert client.get("/v1/audit/verify", headers=as_rotated).json()["ok"] is True
        full_id = listed[0][0]
        assert run("keys", "revoke", full_id, "--project", "clinic").strip() == f"key {full[:12]}… revoked"
        assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {full}"}).status_code == 401
        assert "already revoked" in run("keys", "revoke", full_id, "--project", "clinic", exit_code=2)
        assert "no key of project clinic" in run(
            "keys", "revoke", "cga_nothere", "--project", "clinic", exit_code=2
        )

        assert run("projects", "retention", "--project", "clinic", "--asset-days", "30").strip() == (
            "project clinic: uploaded assets kept 30 days"
        )
        assert run("projects", "retention", "--project", "clinic", "--off").strip() == (
            "project clinic: uploaded assets kept until deleted"
        )
        events = client.get("/v1/audit/events", headers=as_rotated).json()["items"]
        assert [e["kind"] for e in events] == [
            "api_key.created",
            "api_key.created",
            "api_key.rotated",
            "api_key.revoked",
            "project.retention_set",
            "project.retention_set",
        ]
        assert [e["payload"]["asset_retention_days"] for e in events[-2:]] == [30, None]
