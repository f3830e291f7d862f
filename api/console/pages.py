"""The console's pages: HTML shells whose scripts call the REST API with the project key (sessionStorage)."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from api.console.form_fields import submit_form_fields
from api.deps import SettingsDep
from store.settings import Settings

HERE = Path(__file__).resolve().parent
STATIC_ROUTE = "/console/static"
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/console", include_in_schema=False)


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def object_origins(settings: Settings) -> list[str]:
    """Where the API's download URLs point besides itself: S3 as browsers reach it, or the public API URL."""
    origins: list[str | None] = []
    if settings.s3_public_endpoint:
        origins.append(settings.s3_public_endpoint)
    elif settings.s3_endpoint:
        scheme = "https" if settings.s3_secure else "http"
        endpoint = (
            settings.s3_endpoint if "://" in settings.s3_endpoint else f"{scheme}://{settings.s3_endpoint}"
        )
        origins.append(_origin(endpoint))
    if settings.api_public_url:
        origins.append(_origin(settings.api_public_url))
    return [origin for origin in origins if origin]


def content_security_policy(settings: Settings) -> str:
    """Scripts and styles from this origin only (no inline code); previews and clip downloads may also come
    from the object store's origin."""
    objects = " ".join(object_origins(settings))
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' blob: {objects}".strip(),
            f"connect-src 'self' {objects}".strip(),
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _page(request: Request, settings: Settings, template: str, title: str, **context: object) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, template, {"title": title, "static": STATIC_ROUTE, **context}
    )
    response.headers["Content-Security-Policy"] = content_security_policy(settings)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("")
def console_home() -> RedirectResponse:
    return RedirectResponse("/console/jobs", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return _page(request, settings, "login.html", "Log in")


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return _page(request, settings, "jobs.html", "Jobs")


@router.get("/jobs/new", response_class=HTMLResponse)
def submit_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return _page(request, settings, "submit.html", "Submit a job", fields=submit_form_fields())


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(job_id: uuid.UUID, request: Request, settings: SettingsDep) -> HTMLResponse:
    return _page(request, settings, "job.html", "Job", job_id=str(job_id))


@router.get("/models/{model}", response_class=HTMLResponse)
def model_page(model: str, request: Request, settings: SettingsDep) -> HTMLResponse:
    """A model's card and quality figures; `model` is an id, a name or `name:version`."""
    return _page(request, settings, "model.html", "Model", model=model)


@router.get("/clips/{clip_id}", response_class=HTMLResponse)
def clip_page(clip_id: uuid.UUID, request: Request, settings: SettingsDep) -> HTMLResponse:
    return _page(request, settings, "clip.html", "Clip", clip_id=str(clip_id))
