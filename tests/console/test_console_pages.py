"""The console's server side without a browser: routes, security headers, and form fields that mirror the
API's own request models."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.console.form_fields import FORM_SAMPLER, H200_SECONDS_PER_CLIP_STEP, number_field, submit_form_fields
from api.console.pages import content_security_policy
from api.main import create_app
from api.schemas import FilterIn, SamplerIn
from store.settings import Settings

JOB_ID = "0b7e6b2e-8d4f-4c59-9a59-3d1f0c9e2a11"


def settings_for(tmp_path: Path, **values: object) -> Settings:
    return Settings(environment="test", secret_key="console-page-tests-secret", data_dir=tmp_path, **values)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(settings_for(tmp_path), send_task=lambda task, payload: None, check_broker=lambda: None)
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("path", "title", "script"),
    [
        ("/console/login", "Log in", "login.js"),
        ("/console/jobs", "Jobs", "jobs.js"),
        ("/console/jobs/new", "Submit a job", "submit.js"),
        (f"/console/jobs/{JOB_ID}", "Job", "job.js"),
        (f"/console/clips/{JOB_ID}", "Clip", "clip.js"),
    ],
)
def test_pages_are_html_shells_with_their_script_and_strict_headers(
    client: TestClient, path: str, title: str, script: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f"<title>{title} · Ctrl-GenAug console</title>" in response.text
    assert f'<script type="module" src="/console/static/{script}"></script>' in response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    policy = response.headers["content-security-policy"]
    assert (
        "script-src 'self';" in policy
        and "unsafe-inline" not in policy
        and "frame-ancestors 'none'" in policy
    )
    assert client.get(f"/console/static/{script}").status_code == 200


def test_console_pages_are_not_in_the_openapi_document(client: TestClient) -> None:
    assert not [path for path in client.get("/openapi.json").json()["paths"] if path.startswith("/console")]


def test_home_redirects_to_jobs_and_ids_must_be_uuids(client: TestClient) -> None:
    response = client.get("/console", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/console/jobs")
    response = client.get("/console/jobs/not-a-uuid")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "job_id"]


def test_ids_from_the_path_are_rendered_in_canonical_form(client: TestClient) -> None:
    page = client.get(f"/console/jobs/{JOB_ID.upper()}").text
    assert f'data-job-id="{JOB_ID}"' in page


def test_policy_allows_the_object_store_origin_for_previews_and_downloads(tmp_path: Path) -> None:
    policy = content_security_policy(
        settings_for(tmp_path, s3_endpoint="minio.internal:9000", s3_secure=True, s3_secret_key="s3-secret")
    )
    assert "img-src 'self' blob: https://minio.internal:9000;" in policy
    assert "connect-src 'self' https://minio.internal:9000;" in policy
    policy = content_security_policy(settings_for(tmp_path, api_public_url="https://genaug.example.org/api"))
    assert "connect-src 'self' https://genaug.example.org;" in policy
    assert "connect-src 'self';" in content_security_policy(settings_for(tmp_path))
    policy = content_security_policy(
        settings_for(
            tmp_path,
            s3_endpoint="s3:8333",
            s3_public_endpoint="https://s3.example.org",
            s3_secret_key="s3-secret",
        )
    )
    assert "img-src 'self' blob: https://s3.example.org;" in policy and "s3:8333" not in policy


def test_form_fields_take_bounds_and_defaults_from_the_api_models() -> None:
    steps = number_field(SamplerIn, "steps", "sampler.steps", "Denoising steps")
    assert (steps.default, steps.minimum, steps.maximum, steps.step) == (200, 1, 999, "1")
    assert steps.hint == "at least 1, at most 999"
    alpha = number_field(FilterIn, "alpha", "filter.alpha", "α")
    assert (alpha.default, alpha.minimum, alpha.maximum, alpha.step, alpha.hint) == (
        1.0,
        None,
        None,
        "any",
        "greater than 0",
    )
    fields = submit_form_fields()
    assert fields["sampler_name"].choices == ("ddim", "dpmsolver++", "unipc")
    assert fields["filter_scope"].choices == ("group", "job")
    assert fields["samples"].default is None and fields["samples"].loc == "banks.__i__.samples"
    assert fields["text_max_length"] == 2000


def test_submit_form_proposes_the_readmes_trial_sampler_with_a_time_estimate(client: TestClient) -> None:
    fields = submit_form_fields()
    name, steps = fields["sampler_name"].default, fields["sampler_numbers"][0].default
    assert (name, steps) == (FORM_SAMPLER.name, FORM_SAMPLER.steps) == ("dpmsolver++", 20)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f'"sampler": {{"name": "{name}", "steps": {steps}}}' in readme
    page = client.get("/console/jobs/new").text
    assert f'<option value="{name}" selected>' in page
    assert re.search(rf'id="sampler-steps"[^>]*value="{steps}"', page, re.S)
    assert f'data-seconds-per-clip-step="{H200_SECONDS_PER_CLIP_STEP}"' in page


def test_submit_form_renders_every_api_field_with_a_label(client: TestClient) -> None:
    page = client.get("/console/jobs/new").text
    for loc in (
        "model",
        "sampler.name",
        "sampler.steps",
        "sampler.guidance_scale",
        "sampler.eta",
        "seed",
        "filter.alpha",
        "filter.kmeans_k",
        "filter.kmeans_seed",
        "filter.similarity_threshold",
        "filter.scope",
        "filter.memorised",
        "filter.off_manifold",
        "filter.memorised_threshold",
        "filter.manifold_k",
        "filter.manifold_min_share",
        "filter.manifold_features",
        "banks.__i__.class_label",
        "banks.__i__.text",
        "banks.__i__.image_prior_asset",
        "banks.__i__.motion_asset",
        "banks.__i__.samples",
    ):
        field_id = loc.replace(".", "-")
        assert f'data-loc="{loc}"' in page
        assert f'<label for="{field_id}">' in page
        assert f'id="{field_id}"' in page
    assert 'value="20"' in page and 'min="1"' in page and 'max="1000"' in page


def test_reference_check_switches_offer_default_on_and_off(client: TestClient) -> None:
    page = client.get("/console/jobs/new").text
    for switch in ("memorised", "off_manifold"):
        select = re.search(rf'<select id="filter-{switch}"[^>]*data-switch.*?</select>', page, re.S)
        assert select is not None, switch
        assert re.findall(r'<option value="([^"]*)"', select.group(0)) == ["", "true", "false"]
    assert re.search(r'id="filter-manifold_k"[^>]*min="1"[^>]*max="64"[^>]*value="3"', page, re.S)
    assert re.search(r'id="filter-memorised_threshold"[^>]*min="0.0"', page, re.S)
