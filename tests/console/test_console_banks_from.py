"""The submit form's `banks_from`: a registered dataset chosen from the API's list, clips per bank, max_banks
and classes, posted as the JobIn the API accepts, and run to the end."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from console_helpers import TESTS, Console, load_test_module
from playwright.sync_api import Page, expect
from test_console import log_in

from api.schemas import JobIn

pytestmark = [pytest.mark.browser, pytest.mark.services]

_worker = load_test_module("console_banks_from_worker_helpers", TESTS / "worker" / "worker_helpers.py")


def test_a_job_is_submitted_with_banks_from_a_registered_dataset(
    page: Page, console: Console, tmp_path: Path
) -> None:
    archive, _, _ = _worker.build_tiny_data_build(tmp_path / "build")  # 2 training clips a class
    response = httpx.post(
        console.url("/v1/datasets"),
        headers=console.headers,
        data={"name": "echo-train"},
        files={"file": ("build.zip", archive)},
    )
    assert response.status_code == 201, response.text

    log_in(page, console, "/console/jobs/new")
    page.get_by_label("A registered dataset: one bank per training clip").check()
    expect(page.locator("#banks")).to_be_hidden()
    expect(page.get_by_label("Dataset", exact=True)).to_have_value("echo-train")
    page.get_by_label("Clips per bank").fill("1")
    page.get_by_label("At most this many banks").fill("2")
    page.get_by_label("class_0", exact=True).check()
    page.get_by_label("class_2", exact=True).check()
    page.get_by_label("Denoising steps").fill("2")
    page.get_by_label("Seed", exact=True).fill("7")
    expect(page.locator("#estimate")).to_contain_text("Estimate: up to 2 clips × 2 steps")
    with page.expect_request(lambda r: r.url.endswith("/v1/jobs") and r.method == "POST") as posted:
        page.get_by_role("button", name="Submit job").click()

    body = posted.value.post_data_json
    assert body is not None and "banks" not in body and body["seed"] == 7
    assert body["banks_from"] == {
        "dataset": "echo-train",
        "samples_per_bank": 1,
        "max_banks": 2,
        "classes": ["class_0", "class_2"],
    }
    JobIn.model_validate(body)
    expect(page).to_have_url(re.compile(r"/console/jobs/[0-9a-f-]{36}$"), timeout=30_000)
    job_id = page.url.rsplit("/", 1)[1]
    job = httpx.get(console.url(f"/v1/jobs/{job_id}"), headers=console.headers).json()
    assert sorted(bank["class_label"] for bank in job["banks"]) == ["class_0", "class_2"]
    assert all(bank["source_clip_id"] and bank["samples"] == 1 for bank in job["banks"])
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60_000)
