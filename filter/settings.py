"""Settings of the noisy synthetic data filter (paper §3.5, Algorithm 1); every threshold is one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# scikit-learn's K-means random_state is a uint32.
MAX_KMEANS_SEED = 2**32 - 1
# VAE-Seq is one number per clip: more clusters than this only splits the band into noise.
MAX_KMEANS_K = 32


class FilterSettings(BaseModel):
    """Thresholds of the three filter stages; stored with every result and in the job manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(default=1.0, gt=0.0, description="stage 1: keep if loss <= alpha * group mean loss")
    kmeans_k: int = Field(
        default=4,
        ge=3,
        le=MAX_KMEANS_K,
        description="stage 2: K-means clusters on VAE-Seq; lowest and highest are dropped",
    )
    kmeans_seed: int = Field(default=0, ge=0, le=MAX_KMEANS_SEED, description="stage 2: K-means random state")
    similarity_threshold: float = Field(
        default=0.98,
        gt=-1.0,
        le=1.0,
        description="stage 3: drop a clip with Θ (cosine) >= this to a kept clip",
    )
    scope: Literal["group", "job"] = Field(
        default="group", description="stage 3: compare with kept clips of the same group, or of the whole job"
    )


MAX_MANIFOLD_K = 64
MAX_FEATURE_SIZE = 128
MAX_SPECTRUM_BANDS = 64


class ReferenceSettings(BaseModel):
    """The two checks against the model's real training data (no paper has them): `memorised` before
    Algorithm 1, `off_manifold` after it. Both off, the filter is exactly Algorithm 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    memorised: bool = Field(
        default=False, description="drop a clip closer than memorised_threshold to a real training clip"
    )
    memorised_threshold: float | None = Field(
        default=None,
        ge=0.0,
        description="RMS pixel distance in [0, 1] units; None: the model's calibrated one (its "
        "quality.json), "
        "else the data build's (0-quantile of nearest-clip distances between training clips of different "
        "patients)",
    )
    off_manifold: bool = Field(
        default=False, description="drop a clip whose frames fall outside the real frames' k-NN manifold"
    )
    manifold_k: int = Field(
        default=3, ge=1, le=MAX_MANIFOLD_K, description="a real frame's ball: radius to its k-th real frame"
    )
    manifold_min_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="keep a clip with at least this share of frames on the manifold",
    )
    manifold_features: Literal["spectrum", "pixels"] = Field(
        default="spectrum",
        description="the manifold's frame features: the radially averaged power spectrum (image statistics; "
        "keeps real clips of new patients, docs/decisions.md) or the resized pixels quality/ uses",
    )
    spectrum_bands: int = Field(
        default=12, ge=2, le=MAX_SPECTRUM_BANDS, description="spectrum features: rings of the power spectrum"
    )
    feature_size: int = Field(
        default=32, ge=4, le=MAX_FEATURE_SIZE, description="pixel features: frames resized to this side"
    )
    manifold_radius_quantile: float | None = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="every ball's radius is at least this quantile of all classes' k-NN radii (a class of "
        "one "
        "patient has only that patient's spread); None: the plain k-NN radii of improved precision",
    )
    feature_std_floor: float = Field(
        default=0.05, gt=0.0, le=1.0, description="floor of the per-dimension standard deviation"
    )

    @property
    def enabled(self) -> bool:
        return self.memorised or self.off_manifold

    def feature_space(self) -> str:
        if self.manifold_features == "spectrum":
            frames = (
                f"per frame (values in [0, 1], mean removed) the power spectrum averaged over "
                f"{self.spectrum_bands} equal rings up to the corner frequency, as log10 shares of the "
                "frame's "
                "power, and log10 of the rings' mean power"
            )
        else:
            frames = (
                f"frames resized to {self.feature_size}x{self.feature_size} (bilinear, antialiased), "
                "values in "
                "[0, 1], flattened"
            )
        floor = ""
        if self.manifold_radius_quantile is not None:
            floor = (
                f", at least the {self.manifold_radius_quantile:g}-quantile of those radii over all classes' "
                "real frames"
            )
        return (
            f"{frames}; standardised with the real training frames' mean and standard deviation (floored at "
            f"{self.feature_std_floor}); Euclidean; a real frame's ball has the radius of its "
            f"k = {self.manifold_k}-th nearest real frame of another clip of its class{floor}"
        )
