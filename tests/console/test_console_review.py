"""What a reviewer needs to judge a `banks_from` job, in headless Chromium: the job page's quality figures
beside the filter table, and on a clip page every frame of the clip beside its image prior and its source
real clip (PNG strips the API renders with the tab's key)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from console_helpers import TESTS, Console, load_test_module
from playwright.sync_api import Page, expect

from store.registry import register_model

pytestmark = [pytest.mark.browser, pytest.mark.services]

worker_helpers = load_test_module("console_review_worker_helpers", TESTS / "worker" / "worker_helpers.py")


def test_job_page_shows_quality_and_clip_page_shows_frames_prior_and_source(
    page: Page, console: Console, tmp_path: Path
) -> None:
    archive, _, train = worker_helpers.build_tiny_data_build(tmp_path / "build")
    _, manifest_sha256, _ = worker_helpers.build_tiny_data_build(tmp_path / "same-build")
    model_dir = worker_helpers.build_named_model_dir(tmp_path / "model", manifest_sha256)
    with console.sessions() as session:
        model = register_model(session, model_dir)
        reference = f"{model.name}:{model.version}"
        session.commit()
    registered = httpx.post(
        console.url("/v1/datasets"),
        headers=console.headers,
        data={"name": "build"},
        files={"file": ("build.zip", archive)},
        timeout=120,
    )
    assert registered.status_code == 201, registered.text
    submitted = httpx.post(
        console.url("/v1/jobs"),
        headers=console.headers,
        json={
            "model": reference,
            "banks_from": {"dataset": "build", "samples_per_bank": 2, "max_banks": 3},
            "sampler": {"name": "ddim", "steps": 2, "guidance_scale": 2.0},
            "seed": 9,
        },
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]

    page.goto(console.url(f"/console/jobs/{job_id}"))
    page.get_by_label("API key").fill(console.api_key)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=90_000)
    job = httpx.get(console.url(f"/v1/jobs/{job_id}"), headers=console.headers).json()
    quality = job["results"]["quality"]
    table = page.locator("#job-quality-table")
    expect(table).to_be_visible()
    expect(table.locator("thead th")).to_have_text(
        ["Figure", "class_0, kept", "class_1, kept", "class_2, kept", "overall, kept", "overall, all clips"]
    )
    clips_row = table.locator('tbody tr[data-figure="clips"] td')
    expect(clips_row.nth(3)).to_have_text(str(job["results"]["clips_kept"]))
    expect(clips_row.nth(4)).to_have_text(str(sum(b["samples"] for b in job["banks"])))
    ratio = quality["all"]["overall"]["coherence_ratio"]
    expect(table.locator('tbody tr[data-figure="coherence_ratio"] td').nth(4)).to_have_text(f"{ratio:.3}")
    expect(page.locator("#job-quality-summary")).to_contain_text(
        f"Against dataset build ({len(train)} training"
    )

    page.locator("#clip-grid a").first.click()
    expect(page).to_have_url(re.compile(r"/console/clips/[0-9a-f-]{36}$"))
    clip_id = page.url.rsplit("/", 1)[1]
    clip = httpx.get(console.url(f"/v1/clips/{clip_id}"), headers=console.headers).json()
    source_id = clip["provenance"]["bank"]["source_clip_id"]
    frames, size = train[source_id].shape[0], train[source_id].shape[1]
    for kind, width in (("frames", frames * size), ("image_prior", size), ("source", frames * size)):
        strip = page.locator(f"#strip-{kind}")
        expect(strip).to_be_visible()
        page.wait_for_function(f"document.getElementById('strip-{kind}').naturalWidth === {width}")
        assert strip.evaluate("img => img.naturalHeight") == size
    expect(page.locator("#strip-source-caption")).to_have_text(
        f"The source real clip {source_id}, every frame."
    )
