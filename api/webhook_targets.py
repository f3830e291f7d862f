"""A job's webhook URL, checked against where this service answers (422 naming `body.webhook.url`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

from api.errors import field_error
from api.schemas import WebhookIn
from store.settings import Settings
from store.webhook_urls import SCHEMES, WebhookUrlRefused, check_webhook_url

URL_FIELD = ["body", "webhook", "url"]


def own_endpoints(request: Request, settings: Settings) -> list[tuple[str, int]]:
    """The (host, port) pairs that reach this service: the socket it is bound to, the Host the client used
    and `api_public_url`."""
    endpoints = []
    server = request.scope.get("server")
    if server and server[1] is not None:
        endpoints.append((str(server[0]), int(server[1])))
    if request.url.hostname:
        endpoints.append((request.url.hostname, request.url.port or SCHEMES.get(request.url.scheme, 80)))
    if settings.api_public_url:
        public = urlsplit(settings.api_public_url)
        if public.hostname:
            endpoints.append((public.hostname, public.port or SCHEMES.get(public.scheme, 80)))
    return endpoints


def check_webhook(request: Request, settings: Settings, webhook: WebhookIn) -> None:
    try:
        check_webhook_url(
            webhook.url,
            allow_private=settings.webhook_allow_private_hosts,
            own_endpoints=own_endpoints(request, settings),
        )
    except WebhookUrlRefused as exc:
        raise field_error(422, URL_FIELD, str(exc)) from exc
