"""Worker settings: the service settings plus what only workers read (same `CTRLGENAUG_` environment)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from generator.fast import CompileMode, FastPathSettings
from store.settings import Settings


class WorkerSettings(Settings):
    task_queue: str = Field(
        default="celery",
        min_length=1,
        description="broker queue of job messages (the API publishes to Celery's default)",
    )
    worker_device: str = Field(
        default="auto", description="torch device of the pipeline: auto, cpu, cuda, cuda:N"
    )
    worker_batch_size: int = Field(
        default=32,
        ge=1,
        description="most clips sampled in one denoising loop (on a GPU also bounded by free memory)",
    )
    worker_precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="sampling precision; auto: bf16 (or fp16) autocast on GPU, fp32 on CPU"
    )
    worker_memory_fraction: float = Field(
        default=0.9, gt=0, le=1, description="share of the free GPU memory one batch may fill"
    )
    worker_compile: bool = Field(
        default=False,
        description="torch.compile the UNet (pays off when many batches share one shape; compiles per shape)",
    )
    worker_compile_mode: CompileMode = Field(
        default="default",
        description="torch.compile mode when worker_compile is on; reduce-overhead records CUDA graphs",
    )
    worker_channels_last: bool = Field(
        default=False, description="UNet convolutions channels-last (NHWC) instead of NCHW"
    )
    worker_cast_unet: bool = Field(
        default=False,
        description="run the UNet in the sampling precision (bf16/fp16 weights, no autocast in the loop)",
    )
    worker_max_deliveries: int = Field(
        default=3,
        ge=1,
        description="deliveries a job gets to finish; after that it is failed (poison job)",
    )
    worker_fair_share_slice_s: float = Field(
        default=300.0,
        ge=0,
        description="after this long on one job, between batches, the worker turns to a queued job of "
        "another project (this one goes to the back of the queue)",
    )
    worker_model_cache_size: int = Field(
        default=1, ge=1, description="pipelines kept loaded per worker process"
    )
    task_time_limit_s: float = Field(
        default=12 * 3600, gt=0, description="longest one delivery of a job may run"
    )
    broker_visibility_timeout_s: float = Field(
        default=13 * 3600, gt=0, description="Redis: an unacknowledged message is redelivered after this long"
    )
    cancel_poll_interval_s: float = Field(
        default=1.0, ge=0, description="the job's cancel flag is read at most this often"
    )
    progress_interval_s: float = Field(
        default=1.0, ge=0, description="denoising progress is written at most this often"
    )
    worker_retry_delay_s: float = Field(
        default=30.0, ge=0, description="wait before redelivering after a transient failure"
    )
    outbox_relay_interval_s: float = Field(
        default=10.0, gt=0, description="how often the relay dispatches the outbox"
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="attempts of a webhook delivery before it is marked failed"
    )
    webhook_backoff_base_s: float = Field(
        default=10.0, gt=0, description="wait after a webhook delivery's first failed try; doubles each time"
    )
    webhook_backoff_max_s: float = Field(
        default=3600.0, gt=0, description="longest wait between two attempts of a webhook delivery"
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="seconds a webhook receiver may take")
    webhook_poll_interval_s: float = Field(
        default=1.0, gt=0, description="how often the webhook sender looks for due deliveries"
    )
    webhook_progress_interval_s: float = Field(
        default=30.0, ge=0, description="a job's progress webhook events are at least this far apart"
    )
    retention_sweep_interval_s: float = Field(
        default=3600.0, gt=0, description="how often a worker deletes assets past their project's retention"
    )
    stale_job_after_s: float = Field(
        default=1800,
        gt=0,
        description="an unfinished job whose row has not changed for this long is enqueued again",
    )

    @model_validator(mode="after")
    def _visibility_outlasts_time_limit(self) -> WorkerSettings:
        if self.broker_visibility_timeout_s <= self.task_time_limit_s:
            raise ValueError(
                f"broker_visibility_timeout_s ({self.broker_visibility_timeout_s}) must exceed "
                f"task_time_limit_s ({self.task_time_limit_s}), or a running job is delivered twice"
            )
        return self

    def fast_path(self) -> FastPathSettings:
        return FastPathSettings(
            precision=self.worker_precision,
            max_clips_per_batch=self.worker_batch_size,
            memory_fraction=self.worker_memory_fraction,
            compile_unet=self.worker_compile,
            compile_mode=self.worker_compile_mode,
            channels_last=self.worker_channels_last,
            cast_unet=self.worker_cast_unet,
        )

    def resolved_device(self) -> str:
        if self.worker_device != "auto":
            return self.worker_device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
