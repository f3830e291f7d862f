"""The console in headless Chromium against the real app, servers and in-process worker: log in, submit a job,
watch it finish, inspect a clip and verify its checksum, download the database; API validation errors shown
next to their fields. Screenshots of each page go to a temporary folder, or to $CONSOLE_SCREENSHOTS (refresh
the documented ones with `CONSOLE_SCREENSHOTS=$PWD/docs/ui make test PYTEST_ARGS=tests/console`)."""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from pathlib import Path

import httpx
import pytest
from console_helpers import Console, service_files
from playwright.sync_api import Page, expect

from store.export import verify_database_zip

pytestmark = [pytest.mark.browser, pytest.mark.services]


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("CONSOLE_SCREENSHOTS")
    folder = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Page, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 0


def log_in(page: Page, console: Console, start: str = "/console/jobs") -> None:
    page.goto(console.url(start))
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    page.get_by_label("API key").fill(console.api_key)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(console.url(start))


def field(page: Page, loc: str):  # noqa: ANN201 - a Playwright Locator
    return page.locator(f'.field[data-loc="{loc}"]')


def test_login_submit_watch_verify_and_download(
    page: Page, console: Console, tmp_path: Path, screenshots: Path
) -> None:
    page.goto(console.url("/console/jobs"))
    expect(page).to_have_url(re.compile(r"/console/login\?next=%2Fconsole%2Fjobs$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    page.get_by_label("API key").fill("cga_not-a-real-key")
    page.get_by_role("button", name="Log in").click()
    expect(field(page, "key").locator(".field-error")).to_have_text("invalid or revoked API key")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    screenshot(page, screenshots, "login")
    page.get_by_label("API key").fill(console.api_key)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(console.url("/console/jobs"))
    expect(page.locator("#jobs-status")).to_have_text("No jobs yet: submit one.")

    page.get_by_role("link", name="Submit a job").first.click()
    expect(page.get_by_label("Model")).to_have_value(re.compile(f"^{console.model_name}:"))
    bank0 = page.locator("#bank-list > li").nth(0)
    bank0.get_by_label("Class label").select_option("class_0")
    bank0.get_by_label("Descriptive text").fill("apical four-chamber view, normal wall motion")
    bank0.get_by_label("Clips to sample").fill("3")
    page.get_by_role("button", name="Add a bank").click()
    bank1 = page.locator("#bank-list > li").nth(1)
    expect(bank1.get_by_role("group")).to_have_accessible_name("Bank 2")
    expect(bank1.get_by_label("Class label")).to_be_focused()
    bank1.get_by_label("Class label").select_option("class_2")
    bank1.get_by_label("Clips to sample").fill("3")
    bank1.get_by_label("Image prior (first frame)").set_input_files(
        {"name": "prior.png", "mimeType": "image/png", "buffer": service_files.png(32, 32, seed=3)}
    )
    bank1.get_by_label("Reference clip (motion)").set_input_files(
        {
            "name": "reference.npz",
            "mimeType": "application/octet-stream",
            "buffer": service_files.clip_npz(8, 32),
        }
    )
    page.get_by_label("Denoising steps").fill("3")
    page.get_by_label("Guidance scale").fill("2")
    page.get_by_label("Seed", exact=True).fill("11")
    page.get_by_role("button", name="Submit job").click()

    expect(page).to_have_url(re.compile(r"/console/jobs/[0-9a-f-]{36}$"), timeout=30_000)
    job_id = page.url.rsplit("/", 1)[1]
    job = httpx.get(console.url(f"/v1/jobs/{job_id}"), headers=console.headers).json()
    assert job["seed"] == 11 and job["sampler"]["steps"] == 3 and job["sampler"]["guidance_scale"] == 2.0
    assert [(b["class_label"], b["text"], b["samples"]) for b in job["banks"]] == [
        ("class_0", "apical four-chamber view, normal wall motion", 3),
        ("class_2", None, 3),
    ]
    assert job["banks"][0]["image_prior_asset"] is None and job["banks"][1]["image_prior_asset"] is not None
    assert job["banks"][1]["motion_asset"] is not None

    # The page was loaded while the job was queued; it reaches `succeeded` only by polling.
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=45_000)
    expect(page.locator("#job-progress")).to_have_js_property("value", 1)
    expect(page.locator("#job-progress-text")).to_have_text("6 / 6 clips")
    job = httpx.get(console.url(f"/v1/jobs/{job_id}"), headers=console.headers).json()
    dropped = job["results"]["dropped_counts"]
    rows = page.locator("#filter-table tbody tr")
    expect(rows).to_have_count(7)
    expect(rows.nth(0).locator("td").nth(2)).to_have_text("6")
    remaining = 6
    reasons = ("memorised", "semantic", "inconsistent", "static", "duplicate", "off_manifold")
    for i, reason in enumerate(reasons, start=1):
        remaining -= dropped.get(reason, 0)
        expect(rows.nth(i).locator("td").nth(1)).to_have_text(str(dropped.get(reason, 0)))
        expect(rows.nth(i).locator("td").nth(2)).to_have_text(str(remaining))
    assert remaining == job["results"]["clips_kept"]

    low, high = job["results"]["band"]
    histogram = page.locator("#histogram svg")
    expect(histogram).to_have_attribute("role", "img")
    expect(histogram.locator("desc")).to_contain_text(f"consistency band [{low:.4f}, {high:.4f}]")
    expect(histogram.locator("rect.band")).to_have_count(1)
    bar_heights = histogram.locator("rect.bar").evaluate_all(
        "bars => bars.map(b => Number(b.getAttribute('height')))"
    )
    assert bar_heights and all(height > 0 for height in bar_heights)

    cards = page.locator("#clip-grid > li")
    expect(cards).to_have_count(6)
    expect(page.locator("#clips-status")).to_have_text(
        f"6 clips: {job['results']['clips_kept']} kept, {6 - job['results']['clips_kept']} dropped."
    )
    expect(page.locator("#clip-grid .badge.kept")).to_have_count(job["results"]["clips_kept"])
    for reason, count in dropped.items():
        expect(page.locator("#clip-grid .badge.dropped", has_text=f"dropped: {reason}")).to_have_count(count)
    # Every animated preview loaded (from the S3 server's presigned URL, allowed by the page's CSP).
    page.wait_for_function(
        "[...document.querySelectorAll('#clip-grid img')].every(i => i.complete && i.naturalWidth === 32)"
    )
    expect(page.get_by_role("button", name="Cancel job")).to_be_disabled()
    screenshot(page, screenshots, "job")

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download filtered database").click()
    database = tmp_path / "database.zip"
    download_info.value.save_as(database)
    data = database.read_bytes()
    expect(page.locator("#database-info")).to_contain_text(hashlib.sha256(data).hexdigest())
    with console.sessions() as session:
        from store.models import Job

        row = session.get_one(Job, job_id)
        assert (row.database_sha256, row.database_size_bytes) == (hashlib.sha256(data).hexdigest(), len(data))
    assert verify_database_zip(database).ok
    with zipfile.ZipFile(database) as archive:
        assert any(name.endswith("manifest.csv") for name in archive.namelist())

    page.get_by_role("link", name="Jobs", exact=True).click()
    row = page.locator(f'#jobs-table tr[data-job-id="{job_id}"]')
    expect(row.locator(".status")).to_have_text("succeeded")
    expect(row.get_by_role("progressbar")).to_have_js_property("value", 1)
    expect(row.locator(".progress-text")).to_have_text("6 / 6 clips")
    expect(page.locator("#jobs-status")).to_have_text("1 job shown, 0 running.")
    expect(page.get_by_role("button", name="Show older jobs")).to_be_hidden()
    screenshot(page, screenshots, "jobs")

    row.get_by_role("link").click()
    # The tiny model's filter may keep none of its 6 clips: open the first card, kept or dropped.
    card = page.locator("#clip-grid > li").first
    clip_id = card.get_attribute("data-clip-id")
    card.get_by_role("link").click()
    expect(page).to_have_url(console.url(f"/console/clips/{clip_id}"))
    clip = httpx.get(console.url(f"/v1/clips/{clip_id}"), headers=console.headers).json()
    expect(page.locator("#clip-decision")).to_have_text("kept" if clip["kept"] else f"dropped: {clip['reason']}")
    expect(page.locator("#recorded-sha256")).to_have_text(clip["sha256"])
    provenance = page.locator("#provenance")
    for section in ("clip", "job", "model", "bank", "conditions", "sampler", "filter", "software"):
        expect(provenance.get_by_role("heading", name=section, exact=True)).to_be_visible()
    expect(provenance).to_contain_text(clip["provenance"]["model"]["checksum"])
    expect(provenance).to_contain_text(str(clip["seed"]))
    page.get_by_role("button", name="Verify checksum").click()
    expect(page.locator("#verify-result")).to_have_text(
        f"Match: the {clip['size_bytes']} bytes downloaded hash to the recorded SHA-256."
    )
    expect(page.locator("#computed-sha256")).to_have_text(clip["sha256"])
    screenshot(page, screenshots, "clip")

    # Tamper with the stored object: the same check must now fail.
    console.store.put(clip["provenance"]["clip"]["object_key"], b"not the clip", "application/octet-stream")
    page.get_by_role("button", name="Verify checksum").click()
    expect(page.locator("#verify-result")).to_have_text(
        "Mismatch: the 12 bytes downloaded do not hash to the recorded SHA-256."
    )
    expect(page.locator("#computed-sha256")).to_have_text(hashlib.sha256(b"not the clip").hexdigest())


def test_api_validation_errors_are_shown_next_to_their_fields(
    page: Page, console: Console, screenshots: Path
) -> None:
    log_in(page, console, "/console/jobs/new")
    expect(page.get_by_label("Model")).to_have_value(re.compile(f"^{console.model_name}:"))
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    banks = page.locator("#bank-list > li")
    expect(page.get_by_role("button", name="Remove bank 1")).to_be_disabled()
    page.get_by_role("button", name="Add a bank").click()
    page.get_by_role("button", name="Add a bank").click()
    expect(banks).to_have_count(3)
    page.get_by_role("button", name="Remove bank 2").click()
    expect(banks).to_have_count(2)
    expect(banks.nth(1).get_by_role("group")).to_have_accessible_name("Bank 2")
    expect(banks.nth(1).get_by_label("Class label")).to_have_attribute("id", "banks-1-class_label")
    expect(banks.nth(1).get_by_label("Class label")).to_be_focused()
    page.get_by_role("button", name="Remove bank 2").click()
    expect(banks).to_have_count(1)
    page.get_by_label("Denoising steps").fill("5000")
    page.get_by_label("Eta (DDIM noise)").fill("0.5")
    page.get_by_label("Eta (DDIM noise)").press("Enter")  # submitted from the keyboard

    steps = field(page, "sampler.steps")
    expect(steps.locator(".field-error")).to_have_text("Input should be less than or equal to 999")
    expect(page.get_by_label("Denoising steps")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Denoising steps")).to_have_attribute(
        "aria-describedby", "sampler-steps-hint sampler-steps-error"
    )
    samples = field(page, "banks.0.samples")
    expect(samples.locator(".field-error")).to_have_text("Field required")
    expect(field(page, "sampler.eta").locator(".field-error")).to_be_hidden()
    summary = page.get_by_role("alert")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("listitem")).to_have_text(
        [
            "Bank 1: Clips to sample: Field required",
            "Denoising steps: Input should be less than or equal to 999",
        ]
    )
    screenshot(page, screenshots, "submit-with-error")
    summary.get_by_role("link", name=re.compile("^Denoising steps")).click()
    expect(page.get_by_label("Denoising steps")).to_be_focused()

    # The next submission clears the fixed field's error and shows the new one.
    page.get_by_label("Denoising steps").fill("3")
    page.locator("#bank-list > li").nth(0).get_by_label("Clips to sample").fill("1001")
    page.get_by_role("button", name="Submit job").click()
    expect(samples.locator(".field-error")).to_have_text("Input should be less than or equal to 1000")
    expect(steps.locator(".field-error")).to_be_hidden()
    expect(page.get_by_label("Denoising steps")).not_to_have_attribute("aria-invalid", "true")
    assert httpx.get(console.url("/v1/jobs"), headers=console.headers).json()["items"] == []


def test_jobs_list_updates_live_and_a_running_job_is_cancelled_from_its_page(
    page: Page, console: Console
) -> None:
    log_in(page, console)
    expect(page.locator("#jobs-status")).to_have_text("No jobs yet: submit one.")
    response = httpx.post(
        console.url("/v1/jobs"),
        headers=console.headers,
        json={
            "model": console.model_name,
            "banks": [{"class_label": "class_1", "samples": 2}],
            "sampler": {"steps": 500},
            "seed": 5,
        },
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    # Submitted after the page loaded: the row appears and moves on through polling alone.
    row = page.locator(f'#jobs-table tr[data-job-id="{job_id}"]')
    expect(row.locator(".status")).to_have_text("generating", timeout=30_000)
    expect(row.locator(".progress-text")).to_have_text(
        re.compile(
            r"^0 / 2 clips · sampling batch 1 / 1 · denoising step \d+ / 500 · about \d+ (s|min) left$"
        )
    )
    row.get_by_role("link").click()
    expect(page).to_have_url(console.url(f"/console/jobs/{job_id}"))
    expect(page.locator("#job-status")).to_have_text("generating")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-notice")).to_have_text(
        "Cancel requested: the worker stops between denoising steps."
    )
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=20_000)
    expect(page.get_by_role("button", name="Cancel job")).to_be_disabled()
    expect(page.get_by_role("button", name="Download filtered database")).to_be_disabled()
    job = httpx.get(console.url(f"/v1/jobs/{job_id}"), headers=console.headers).json()
    assert job["cancel_requested"] and job["progress"]["clips_done"] == 0
    assert job["progress"]["denoise_step"] < 500
