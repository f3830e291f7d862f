"""What the client tests share about the live service of their conftest."""

from __future__ import annotations

from dataclasses import dataclass

from cli.embedded_client import EmbeddedService

PROJECT = "clients"
DATASET = "build"
TINY_SAMPLER = {"name": "dpmsolver++", "steps": 3}


@dataclass(frozen=True)
class LiveService:
    service: EmbeddedService
    url: str
    key: str
    model: str
    patients: dict[str, str]  # training clip id -> patient id of the registered data build

    def env(self, **overrides: str) -> dict[str, str]:
        """The CLI's environment with this service's URL and key (overridable, "" removes one)."""
        env = {**self.service.env, "CTRLGENAUG_URL": self.url, "CTRLGENAUG_API_KEY": self.key, **overrides}
        return {name: value for name, value in env.items() if value != ""}
