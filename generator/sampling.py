"""Samplers (diffusers schedulers) and the classifier-free-guided denoising loop (§3.2, Table 1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from contracts.sampler import SamplerSpec as SamplerSettings
from generator.conditions import ConditionInputs
from generator.pathways import stack_pathways
from generator.sequence_unet import SequenceConditions, SequenceUNet

# Table 1 / authors' code: T = 1000, scaled-linear betas 0.00085 -> 0.012, epsilon prediction.
NOISE_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
}


class SamplingCancelled(RuntimeError):
    """Raised between denoising steps when the caller's `should_cancel()` turns true."""


def build_scheduler(settings: SamplerSettings, schedule: Mapping[str, Any] | None = None) -> SchedulerMixin:
    """A fresh diffusers scheduler for `settings` over the training noise schedule (Table 1 unless given)."""
    config = {**NOISE_SCHEDULE, **{k: v for k, v in (schedule or {}).items() if not k.startswith("_")}}
    if settings.name == "ddim":
        return DDIMScheduler.from_config(config)
    if settings.name == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    return UniPCMultistepScheduler.from_config(config)


class Denoiser(Protocol):
    """Predicts the noise of `sample` at `timestep` under batched conditions (one row per sample row)."""

    def __call__(
        self, sample: torch.Tensor, timestep: torch.Tensor, conditions: ConditionInputs
    ) -> torch.Tensor: ...


class UNetDenoiser:
    """`ImageUNet` (stage 1, samples `(B, 4, h, w)`) or `SequenceUNet` (stage 2, `(B, 4, F, h, w)`).

    Samples go in as the UNet's dtype and predictions come back in the sample's dtype (the scheduler
    keeps float32 latents under a half-precision model). For a `SequenceUNet` the conditions are prepared
    (`SequenceUNet.prepare_conditions`: motion encoder, MFA pathway index on the device, cross-attention
    keys/values) once per batch of conditions, not at every step.
    """

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet = unet
        self._prepared: tuple[ConditionInputs, SequenceConditions] | None = None

    def _sequence_conditions(self, sample: torch.Tensor, conditions: ConditionInputs) -> SequenceConditions:
        assert isinstance(self.unet, SequenceUNet)
        if self._prepared is None or self._prepared[0] is not conditions:
            batch, _, frames, h, w = sample.shape
            pathways = conditions.pathways
            prepared = self.unet.prepare_conditions(
                batch,
                frames,
                h,
                w,
                sample.device,
                text_tokens=conditions.text_tokens,
                class_labels=conditions.class_labels,
                image_prior_tokens=conditions.image_prior_tokens,
                motion_field=conditions.motion_field,
                pathways=None if pathways is None else stack_pathways(pathways).to(sample.device),
            )
            self._prepared = (conditions, prepared)
        return self._prepared[1]

    def __call__(
        self, sample: torch.Tensor, timestep: torch.Tensor, conditions: ConditionInputs
    ) -> torch.Tensor:
        network_sample = sample.to(next(self.unet.parameters()).dtype)
        if isinstance(self.unet, SequenceUNet):
            prepared = self._sequence_conditions(network_sample, conditions)
            prediction = self.unet(network_sample, timestep, conditions=prepared)
        else:
            prediction = self.unet(
                network_sample,
                timestep,
                text_tokens=conditions.text_tokens,
                class_labels=conditions.class_labels,
                image_prior_tokens=conditions.image_prior_tokens,
            )
        return prediction.to(sample.dtype)


def unet_denoiser(unet: torch.nn.Module) -> Denoiser:
    return UNetDenoiser(unet)


def clip_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per clip, so a clip's noise does not depend on the batch it is sampled in."""
    return [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]


def clip_noise(generators: Sequence[torch.Generator], shape: Sequence[int]) -> torch.Tensor:
    """Standard normal noise `(len(generators), *shape)`, row i drawn from generator i on the CPU."""
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in generators])


def denoise(
    denoiser: Denoiser,
    scheduler: SchedulerMixin,
    noise: torch.Tensor,
    cond: ConditionInputs,
    uncond: ConditionInputs | None,
    settings: SamplerSettings,
    generators: Sequence[torch.Generator],
    progress: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    autocast: torch.dtype | None = None,
) -> torch.Tensor:
    """Run the reverse process from `noise`; with `uncond`, classifier-free guidance (Ho & Salimans, 2022).

    The conditional and unconditional branches go through the network in one batched call.
    `generators` (one per clip, already used for `noise`) draw DDIM's eta noise. `autocast` (e.g.
    `torch.bfloat16`) runs the network in mixed precision; the latents keep `noise`'s dtype.
    The scheduler keeps its timesteps on the CPU and the network gets a device copy made once, so a
    step moves nothing between host and device (DDIM with eta > 0 moves its per-step noise).
    """
    if len(generators) != noise.shape[0]:
        raise ValueError(f"generators: need one per clip ({noise.shape[0]}), got {len(generators)}")
    guided = uncond is not None and settings.guidance_scale != 1.0
    model_conditions = cond.concat(uncond) if guided and uncond is not None else cond
    scheduler.set_timesteps(settings.steps, device="cpu")
    latents = noise * scheduler.init_noise_sigma
    timesteps = scheduler.timesteps
    network_timesteps = timesteps.to(noise.device)
    total = len(timesteps)
    device_type = noise.device.type
    # One autocast region around the loop lets autocast reuse its half-precision copies of the weights
    # from step to step; the solver's arithmetic runs with autocast off (UniPC's einsum would drop to half).
    with torch.autocast(device_type, dtype=autocast, enabled=autocast is not None):
        for index, timestep in enumerate(timesteps):
            if should_cancel is not None and should_cancel():
                raise SamplingCancelled(f"sampling cancelled before step {index + 1} of {total}")
            model_input = torch.cat([latents, latents]) if guided else latents
            model_input = scheduler.scale_model_input(model_input, timestep)
            prediction = denoiser(model_input, network_timesteps[index], model_conditions)
            with torch.autocast(device_type, enabled=False):
                latents = _solver_step(
                    scheduler, settings, generators, prediction.to(latents.dtype), timestep, latents, guided
                )
            if progress is not None:
                progress(index + 1, total)
    return latents


def _solver_step(
    scheduler: SchedulerMixin,
    settings: SamplerSettings,
    generators: Sequence[torch.Generator],
    prediction: torch.Tensor,
    timestep: torch.Tensor,
    latents: torch.Tensor,
    guided: bool,
) -> torch.Tensor:
    if guided:
        conditional, unconditional = prediction.chunk(2)
        prediction = unconditional + settings.guidance_scale * (conditional - unconditional)
    step_kwargs: dict[str, Any] = {}
    if settings.name == "ddim":
        step_kwargs["eta"] = settings.eta
        if settings.eta > 0:
            variance = clip_noise(generators, latents.shape[1:])
            step_kwargs["variance_noise"] = variance.to(latents.device, latents.dtype)
    return scheduler.step(prediction, timestep, latents, **step_kwargs).prev_sample
