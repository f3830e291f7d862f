"""All service settings in one place (pydantic-settings, environment prefix `CTRLGENAUG_`)."""

from __future__ import annotations

import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"


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
    # What an upload keeps (docs/reliability.md "Uploads under the default limits"): the first frames and the
    # frame size the largest registered model uses, at most these; the rest is never decoded.
    condition_max_frames: int = Field(default=32, ge=2, description="most frames a reference clip keeps")
    condition_max_side: int = Field(
        default=256, ge=2, description="most pixels of a kept frame's height and width (the paper's 256×256)"
    )
    max_upload_seconds: float = Field(
        default=30.0, gt=0, description="wall-clock budget of decoding one upload"
    )
    presigned_expiry_s: int = 3600
    page_size_max: int = 500

    # Quotas (docs/contracts.md "Quotas"): one job's work, and what one project may have waiting and stored.
    max_job_clips: int = Field(default=20_000, ge=1, description="most clips one job may plan")
    max_job_clip_steps: int = Field(
        default=4_000_000, ge=1, description="most clips × denoising steps one job may plan"
    )
    max_project_unfinished_jobs: int = Field(
        default=50, ge=1, description="most queued or running jobs of one project"
    )
    max_project_queued_clip_steps: int = Field(
        default=8_000_000,
        ge=1,
        description="most clips × steps not yet sampled, over a project's unfinished jobs",
    )
    max_project_storage_bytes: int = Field(
        default=200 * 1024**3,
        ge=1,
        description="most bytes of clips, uploads and databases one project may store (new jobs are counted "
        "at their planned uint8 frame bytes)",
    )
    quota_retry_after_s: int = Field(
        default=60, ge=1, description="Retry-After of a 429 for a full project quota"
    )

    secret_key: SecretStr | None = None
    api_public_url: str | None = None

    webhook_allow_private_hosts: bool = Field(
        default=False,
        description="job webhooks may point at loopback and private addresses (a receiver on this machine or "
        "network); link-local, metadata addresses and the service itself stay refused",
    )

    @field_validator("s3_public_endpoint")
    @classmethod
    def _public_endpoint_is_an_origin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path.strip("/")
            or parts.query
        ):
            raise ValueError(
                f"s3_public_endpoint: {value!r} is not an origin like https://s3.example.org or "
                "http://localhost:8333 (scheme, host, optional port; no path)"
            )
        return f"{parts.scheme}://{parts.netloc}"

    @model_validator(mode="after")
    def _refuse_missing_secrets_of_a_server_configuration(self) -> Settings:
        if self.secret_key is not None and not self.secret_key.get_secret_value():
            raise ValueError("secret_key: empty; set CTRLGENAUG_SECRET_KEY or leave it unset (embedded only)")
        if self.secret_key is None and self.server_configuration:
            raise ValueError(
                "secret_key: not set; a server configuration (environment other than development, or an "
                "external database, broker or S3) needs CTRLGENAUG_SECRET_KEY, the same in every process"
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
    def server_configuration(self) -> bool:
        """Not the embedded default: several processes share servers (and must share one secret)."""
        return self.environment != "development" or any(
            (self.database_url, self.broker_url, self.s3_endpoint)
        )

    def signing_secret(self) -> str:
        """`secret_key`, or in the embedded default a random secret made at first start and kept in the data
        folder (`<data_dir>/secret_key`, mode 0600)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / SECRET_KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mode 0600
            try:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(48))
                # link, not rename: the first process to start wins and the others read its secret
                os.link(partial, path)
            except FileExistsError:
                pass
            finally:
                os.unlink(partial)
        secret = path.read_text().strip()
        if not secret:
            raise ValueError(f"secret_key: the secret file {path} is empty; delete it to make a new one")
        return secret

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
