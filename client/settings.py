"""Where the service is and which key to use: arguments first, then CTRLGENAUG_URL / CTRLGENAUG_API_KEY."""

from __future__ import annotations

import os

from client.errors import MissingSetting

URL_VARIABLE = "CTRLGENAUG_URL"
KEY_VARIABLE = "CTRLGENAUG_API_KEY"


def resolve(url: str | None, key: str | None) -> tuple[str, str]:
    """(service URL without a trailing slash, API key).

    Raises:
        MissingSetting: naming the variable to set when neither the argument nor the variable gives one.
    """
    url = url or os.environ.get(URL_VARIABLE)
    key = key or os.environ.get(KEY_VARIABLE)
    if not url:
        raise MissingSetting(f"{URL_VARIABLE}: not set; export it (like http://127.0.0.1:8000) or pass --url")
    if not key:
        raise MissingSetting(
            f"{KEY_VARIABLE}: not set; export it (`ctrlgenaug keys create --project NAME` makes one) "
            "or pass --key"
        )
    return url.rstrip("/"), key
