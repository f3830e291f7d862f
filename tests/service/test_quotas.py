"""Quotas with the DEFAULT limits: one job's work (422 naming the field and the limit), a project's unfinished
jobs, queued clip-steps and storage (429 + Retry-After naming the limit); banks_from's `max_banks`
(random from the job's seed, balanced by class) and the planned counts in the 202 response."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import service_files as files
from fastapi.testclient import TestClient
from service_files import row_counts
from sqlalchemy.orm import Session, sessionmaker

from api.job_planning import balanced_samples, class_shares, select_clips
from store.keys import get_or_create_project
from store.models import Asset, AssetKind
from store.settings import Settings

DEFAULTS = Settings()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test servers with every size limit and quota at its default (the shared fixture lowers uploads)."""
    limits = [name for name in Settings.model_fields if name.startswith("max_") or name.startswith("quota_")]
    return settings.model_copy(update={name: getattr(DEFAULTS, name) for name in limits})


@pytest.fixture
def headers(client: TestClient, make_key: Callable[[str], dict[str, str]]) -> dict[str, str]:
    return make_key("quotas")


def banks(count: int, samples: int) -> list[dict[str, Any]]:
    return [{"class_label": "class_0", "samples": samples}] * count


def job(model: str, bank_list: list[dict[str, Any]], steps: int = 200) -> dict[str, Any]:
    return {"model": model, "banks": bank_list, "sampler": {"name": "ddim", "steps": steps}, "seed": 1}


def only_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    (error,) = response.json()["detail"]
    assert error["type"] == "quota_exceeded"
    return error


def test_default_limits_are_the_documented_ones(client: TestClient) -> None:
    settings = client.app.state.service.settings  # type: ignore[attr-defined]
    limits = {
        name: getattr(settings, name)
        for name in (
            "max_job_clips",
            "max_job_clip_steps",
            "max_project_unfinished_jobs",
            "max_project_queued_clip_steps",
            "max_project_storage_bytes",
            "quota_retry_after_s",
        )
    }
    assert limits == {
        "max_job_clips": 20_000,
        "max_job_clip_steps": 4_000_000,
        "max_project_unfinished_jobs": 50,
        "max_project_queued_clip_steps": 8_000_000,
        "max_project_storage_bytes": 200 * 1024**3,
        "quota_retry_after_s": 60,
    }
    assert limits == {name: getattr(DEFAULTS, name) for name in limits}


def test_the_probes_ten_million_clip_job_is_refused_fast_and_leaves_nothing(
    client: TestClient, headers: dict[str, str], tiny_model: str, sessions: sessionmaker[Session], sender: Any
) -> None:
    before = row_counts(sessions)
    started = time.monotonic()
    body = job(tiny_model, [{"samples": 1000}] * 10_000, steps=999)  # the probe's 200 KB body
    response = client.post("/v1/jobs", headers=headers, json=body)
    elapsed = time.monotonic() - started
    error = only_error(response, 422)
    assert error["loc"] == ["body", "banks"]
    assert error["msg"].startswith(
        "the job plans 10,000,000 clips; a job may plan at most max_job_clips=20,000"
    )
    assert elapsed < 5, elapsed
    assert row_counts(sessions) == before and sender.sent == []


def test_clips_times_steps_over_the_job_cap_names_the_steps(
    client: TestClient, headers: dict[str, str], tiny_model: str
) -> None:
    response = client.post("/v1/jobs", headers=headers, json=job(tiny_model, banks(20, 1000), steps=201))
    error = only_error(response, 422)
    assert error["loc"] == ["body", "sampler", "steps"]
    assert error["msg"] == (
        "the job plans 20,000 clips × 201 steps = 4,020,000 clip-steps; a job may plan at most "
        "max_job_clip_steps=4,000,000 (fewer steps or clips)"
    )
    at_cap = client.post("/v1/jobs", headers=headers, json=job(tiny_model, banks(20, 1000), steps=200))
    assert at_cap.status_code == 202, at_cap.text
    progress = at_cap.json()["progress"]
    assert (progress["banks_total"], progress["clips_total"], progress["denoise_steps"]) == (20, 20_000, 200)


def test_queued_clip_steps_of_a_project_are_capped_with_retry_after(
    client: TestClient, headers: dict[str, str], tiny_model: str, make_key: Callable[[str], dict[str, str]]
) -> None:
    full = job(tiny_model, banks(20, 1000), steps=200)  # 4,000,000 clip-steps: half the project's queue
    first, second = (client.post("/v1/jobs", headers=headers, json=full) for _ in range(2))
    assert (first.status_code, second.status_code) == (202, 202)
    refused = client.post("/v1/jobs", headers=headers, json=job(tiny_model, banks(1, 1), steps=1))
    error = only_error(refused, 429)
    assert refused.headers["Retry-After"] == "60"
    assert error["loc"] == ["body"]
    assert error["msg"] == (
        "the project's unfinished jobs hold 8,000,000 clip-steps; this job's 1 would pass "
        "max_project_queued_clip_steps=8,000,000 (retry when they have run)"
    )
    other = client.post("/v1/jobs", headers=make_key("other"), json=full)
    assert other.status_code == 202, other.text  # another project's queue is its own
    cancelled = client.post(f"/v1/jobs/{first.json()['id']}/cancel", headers=headers)
    assert cancelled.json()["status"] == "cancelled"
    again = client.post("/v1/jobs", headers=headers, json=job(tiny_model, banks(1, 1), steps=1))
    assert again.status_code == 202, again.text


def test_unfinished_jobs_of_a_project_are_capped(
    client: TestClient, headers: dict[str, str], tiny_model: str
) -> None:
    small = job(tiny_model, banks(1, 1), steps=1)
    for n in range(DEFAULTS.max_project_unfinished_jobs):
        assert client.post("/v1/jobs", headers=headers, json=small).status_code == 202, n
    refused = client.post("/v1/jobs", headers=headers, json=small)
    assert only_error(refused, 429)["msg"] == (
        "the project has 50 unfinished jobs; max_project_unfinished_jobs=50 (retry when one has finished)"
    )
    assert refused.headers["Retry-After"] == "60"


def test_storage_of_a_project_is_capped(
    client: TestClient, headers: dict[str, str], tiny_model: str, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        project = get_or_create_project(session, "quotas")
        session.add(
            Asset(
                project_id=project.id,
                kind=AssetKind.image_prior,
                sha256="0" * 64,
                media_type="image/png",
                filename="huge.png",
                shape=[1, 1],
                size_bytes=DEFAULTS.max_project_storage_bytes - 8 * 32 * 32,
                object_key="projects/x/original",
                array_object_key="projects/x/array.npy",
            )
        )
        session.commit()
    fits = client.post("/v1/jobs", headers=headers, json=job(tiny_model, banks(1, 1), steps=1))
    assert fits.status_code == 202, fits.text  # one tiny clip: 8 frames × 32 × 32 bytes, exactly at the cap
    refused = client.post("/v1/jobs", headers=headers, json=job(tiny_model, banks(1, 2), steps=1))
    assert only_error(refused, 429)["msg"] == (
        f"the project stores {DEFAULTS.max_project_storage_bytes - 8192:,} bytes; this job's clips "
        "(16,384 bytes of frames) would pass "
        f"max_project_storage_bytes={DEFAULTS.max_project_storage_bytes:,} (an operator can raise it)"
    )


@pytest.mark.parametrize(
    ("available", "total", "shares"),
    [
        ({"a": 100, "b": 50, "c": 5}, 30, {"a": 13, "b": 12, "c": 5}),
        ({"a": 4, "b": 4}, 3, {"a": 2, "b": 1}),
        ({"a": 4, "b": 1}, 100, {"a": 4, "b": 1}),
        ({"a": 3, "b": 0, "c": 3}, 4, {"a": 2, "b": 0, "c": 2}),
        ({"a": 2, "b": 2, "c": 2}, 1, {"a": 1, "b": 0, "c": 0}),
    ],
)
def test_class_shares_are_even_as_the_clips_allow(
    available: dict[str, int], total: int, shares: dict[str, int]
) -> None:
    assert class_shares(available, total) == shares


def test_select_clips_is_seeded_balanced_and_keeps_order() -> None:
    clips = {"a": [f"a{i:03d}" for i in range(100)], "b": [f"b{i:03d}" for i in range(50)], "c": ["c0", "c1"]}
    chosen = select_clips(clips, 30, seed=7)
    assert {name: len(picked) for name, picked in chosen.items()} == {"a": 14, "b": 14, "c": 2}
    assert all(picked == sorted(set(picked)) and set(picked) <= set(clips[n]) for n, picked in chosen.items())
    assert select_clips(clips, 30, seed=7) == chosen
    assert select_clips(clips, 30, seed=8)["a"] != chosen["a"]
    assert select_clips(clips, 1000, seed=7) == clips


def test_balanced_samples_over_fewer_banks_keep_each_class_total() -> None:
    plan = balanced_samples({"a": 4, "b": 1}, samples_per_bank=2, banks_per_class={"a": 2, "b": 1})
    assert plan == {"a": [4, 4], "b": [11]}
    assert {"a": 4 + sum(plan["a"]), "b": 1 + sum(plan["b"])} == {"a": 12, "b": 12}


def test_max_banks_draws_training_clips_by_class_from_the_job_seed(
    client: TestClient, headers: dict[str, str], tiny_model: str, tmp_path: Path
) -> None:
    archive = files.data_build_zip(tmp_path / "build")
    created = client.post(
        "/v1/datasets", headers=headers, data={"name": "echo"}, files={"file": ("build.zip", archive)}
    )
    assert created.status_code == 201, created.text

    def submit(seed: int, **source: Any) -> dict[str, Any]:
        body = {"model": tiny_model, "seed": seed, "banks_from": {"dataset": "echo", **source}}
        response = client.post("/v1/jobs", headers=headers, json=body)
        assert response.status_code == 202, response.text
        return response.json()  # type: ignore[no-any-return]

    picks = {
        seed: [b["source_clip_id"] for b in submit(seed, samples_per_bank=3, max_banks=2)["banks"]]
        for seed in range(8)
    }
    assert all(p in (["c0a", "c1a"], ["c0b", "c1a"]) for p in picks.values())  # one bank per class
    assert {p[0] for p in picks.values()} == {"c0a", "c0b"}  # the seed chooses
    assert [b["source_clip_id"] for b in submit(3, samples_per_bank=3, max_banks=2)["banks"]] == picks[3]
    planned = submit(1, samples_per_bank=3, max_banks=2)
    assert (planned["status"], planned["progress"]["banks_total"], planned["progress"]["clips_total"]) == (
        "queued",
        2,
        6,
    )
    balanced = submit(1, samples_per_bank=2, max_banks=2, balance_to_majority=True)
    # class_0 has 2 real clips, class_1 one: each ends with 2 × (1 + 2) = 6 real + synthetic, one bank each
    assert [(b["class_label"], b["samples"]) for b in balanced["banks"]] == [("class_0", 4), ("class_1", 5)]
    assert balanced["progress"]["clips_total"] == 9
    too_many = client.post(
        "/v1/jobs",
        headers=headers,
        json={"model": tiny_model, "banks_from": {"dataset": "echo", "samples_per_bank": 1, "max_banks": 0}},
    )
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["body", "banks_from", "max_banks"]
