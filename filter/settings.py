"""Settings of the noisy synthetic data filter (paper §3.5, Algorithm 1); every threshold is one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# scikit-learn's K-means random_state is a uint32.
MAX_KMEANS_SEED = 2**32 - 1


class FilterSettings(BaseModel):
    """Thresholds of the three filter stages; stored with every result and in the job manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(default=1.0, gt=0.0, description="stage 1: keep if loss <= alpha * group mean loss")
    kmeans_k: int = Field(
        default=4, ge=3, description="stage 2: K-means clusters on VAE-Seq; lowest and highest are dropped"
    )
    kmeans_seed: int = Field(
        default=0, ge=0, le=MAX_KMEANS_SEED, description="stage 2: K-means random state"
    )
    similarity_threshold: float = Field(
        default=0.98,
        gt=-1.0,
        le=1.0,
        description="stage 3: drop a clip with Θ (cosine) >= this to a kept clip",
    )
    scope: Literal["group", "job"] = Field(
        default="group", description="stage 3: compare with kept clips of the same group, or of the whole job"
    )
