"""All service settings in one place (pydantic-settings, environment prefix `CTRLGENAUG_`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET_KEY = "ctrlgenaug-development-secret-key-do-not-use-in-production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CTRLGENAUG_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("./data")
    database_url: str | None = None
    broker_url: str | None = None

    s3_endpoint: str | None = None
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_bucket: str = "ctrlgenaug"
    s3_secure: bool = False
    s3_region: str | None = None
    s3_public_endpoint: str | None = None

    max_upload_bytes: int = 64 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_clip_frames: int = 1024
    max_clip_voxels: int = 256 * 1024 * 1024
    presigned_expiry_s: int = 3600
    page_size_max: int = 500

    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)
    api_public_url: str | None = None

    @field_validator("s3_public_endpoint")
    @classmethod
    def _public_endpoint_is_an_origin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
            raise ValueError(
                f"s3_public_endpoint: {value!r} is not an origin like https://s3.example.org or "
                "http://localhost:8333 (scheme, host, optional port; no path)"
            )
        return f"{parts.scheme}://{parts.netloc}"

    @model_validator(mode="after")
    def _refuse_default_secret_outside_development(self) -> Settings:
        if self.environment != "development" and self.secret_key.get_secret_value() == DEVELOPMENT_SECRET_KEY:
            raise ValueError(
                "secret_key: the built-in development secret is refused when environment="
                f"{self.environment!r}; set CTRLGENAUG_SECRET_KEY"
            )
        if (
            self.environment != "development"
            and self.s3_endpoint
            and not self.s3_secret_key.get_secret_value()
        ):
            raise ValueError(
                "s3_secret_key: empty while s3_endpoint is set; set CTRLGENAUG_S3_SECRET_KEY "
                "(the built-in empty secret is accepted only when environment='development')"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'ctrlgenaug.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        # Embedded default: kombu's SQLAlchemy transport on a SQLite file needs no server.
        return self.broker_url or f"sqla+sqlite:///{(self.data_dir / 'broker.db').resolve()}"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
