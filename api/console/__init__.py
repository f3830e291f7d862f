"""The web console: HTML pages served by the API; their scripts call the REST API (`/v1`) with the key."""

from api.console.pages import STATIC_ROUTE, router, static_files

__all__ = ["STATIC_ROUTE", "router", "static_files"]
