"""Joint condition dropout, nulls, sampler settings, schedulers and the guided denoising loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

from generator.conditions import (
    CONDITION_NAMES,
    BankConditions,
    ConditionInputs,
    JointDropout,
    apply_keep_masks,
)
from generator.pathways import sample_pathways, straight_pathways
from generator.pipeline import CtrlGenAugPipeline, build_tiny_pipeline
from generator.sampling import (
    NOISE_SCHEDULE,
    SamplerSettings,
    SamplingCancelled,
    build_scheduler,
    clip_generators,
    clip_noise,
    denoise,
    unet_denoiser,
)


@pytest.fixture(scope="module")
def pipeline() -> CtrlGenAugPipeline:
    return build_tiny_pipeline(num_classes=3, seed=0)


@pytest.fixture(scope="module")
def bank() -> BankConditions:
    rng = np.random.default_rng(0)
    return BankConditions(
        class_index=1,
        text="hypoechoic plaque, proximal wall",
        image_prior=rng.integers(0, 256, size=(40, 48), dtype=np.uint8),
        motion_field=(rng.standard_normal((8, 2, 32, 32)) * 6).astype(np.float32),
    )


def _tiny_sampler(**overrides: object) -> SamplerSettings:
    return SamplerSettings(**{"steps": 4, **overrides})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ joint dropout (§4.1)


def test_joint_dropout_frequencies_on_20k_draws() -> None:
    keep = JointDropout().sample(20_000, torch.Generator().manual_seed(0))
    assert set(keep) == set(CONDITION_NAMES)
    stacked = torch.stack([keep[name] for name in CONDITION_NAMES]).float()
    # keep-all 0.1 + 0.8 * 0.5^4; drop-all likewise; one condition 0.1 + 0.8 * 0.5; a pair 0.1 + 0.8 * 0.25.
    assert stacked.all(dim=0).float().mean().item() == pytest.approx(0.15, abs=0.01)
    assert (~stacked.bool()).all(dim=0).float().mean().item() == pytest.approx(0.15, abs=0.01)
    for row in stacked:
        assert row.mean().item() == pytest.approx(0.5, abs=0.015)
    both = (stacked[0] * stacked[1]).mean().item()
    assert both == pytest.approx(0.3, abs=0.015)


def test_joint_dropout_is_seeded_and_validated() -> None:
    first = JointDropout().sample(64, torch.Generator().manual_seed(3))
    again = JointDropout().sample(64, torch.Generator().manual_seed(3))
    other = JointDropout().sample(64, torch.Generator().manual_seed(4))
    assert all(torch.equal(first[name], again[name]) for name in CONDITION_NAMES)
    assert not all(torch.equal(first[name], other[name]) for name in CONDITION_NAMES)
    never = JointDropout(keep_all=1.0, drop_all=0.0).sample(10, torch.Generator(), ("text",))
    assert list(never) == ["text"] and bool(never["text"].all())
    with pytest.raises(ValueError, match="drop_each"):
        JointDropout(drop_each=1.5)
    with pytest.raises(ValueError, match="keep_all \\+ drop_all"):
        JointDropout(keep_all=0.6, drop_all=0.6)


def test_applied_masks_give_exactly_the_nulls(pipeline, bank) -> None:
    encoder = pipeline.conditions
    banks = [bank] * 4
    inputs = encoder.encode(banks, [0, 1, 2, 3])
    nulls = encoder.nulls()
    keep = {name: torch.tensor([True, False, True, False]) for name in CONDITION_NAMES}
    keep["text"] = torch.tensor([False, False, True, True])
    out = apply_keep_masks(inputs, keep, nulls)
    assert out.class_labels.tolist() == [1, 3, 1, 3]  # 3 = num_classes, the null class row
    assert torch.equal(out.text_tokens[0], nulls.text_tokens[0])
    assert torch.equal(out.text_tokens[2], inputs.text_tokens[2])
    assert torch.equal(out.image_prior_tokens[1], torch.zeros_like(out.image_prior_tokens[1]))
    assert torch.equal(out.image_prior_tokens[0], inputs.image_prior_tokens[0])
    assert inputs.image_prior_tokens[0].abs().sum() > 0
    assert torch.equal(out.motion_field[1], torch.zeros(8, 2, 32, 32))
    assert torch.equal(out.motion_field[0], inputs.motion_field[0])
    assert torch.equal(out.pathways[1], straight_pathways(8, 4, 4))
    assert torch.equal(out.pathways[0], inputs.pathways[0])
    # A mask applied in training gives what a dropped (None) condition gives at sampling time.
    dropped = encoder.encode([BankConditions()], [1])
    assert torch.equal(out.text_tokens[1], dropped.text_tokens[0])
    assert torch.equal(out.image_prior_tokens[1], dropped.image_prior_tokens[0])
    assert torch.equal(out.motion_field[1], dropped.motion_field[0])
    assert torch.equal(out.pathways[1], dropped.pathways[0])
    assert out.class_labels[1] == dropped.class_labels[0]


def test_keep_masks_are_validated(pipeline, bank) -> None:
    inputs = pipeline.conditions.encode([bank, bank], [0, 1])
    with pytest.raises(ValueError, match="unknown condition names \\['colour'\\]"):
        apply_keep_masks(inputs, {"colour": torch.ones(2, dtype=torch.bool)}, pipeline.conditions.nulls())
    with pytest.raises(ValueError, match="keep mask 'text' must be a bool tensor of shape \\(2,\\)"):
        apply_keep_masks(inputs, {"text": torch.ones(3, dtype=torch.bool)}, pipeline.conditions.nulls())


def test_null_motion_pathways_are_straight_whatever_the_seed() -> None:
    zero = np.zeros((8, 2, 32, 32), dtype=np.float32)
    for seed in (0, 5, 123):
        assert torch.equal(sample_pathways(zero, m=8, seed=seed), straight_pathways(8, 4, 4))


def test_bank_conditions_validate_fields() -> None:
    with pytest.raises(ValueError, match="class_index must be a non-negative integer"):
        BankConditions(class_index=-1)
    with pytest.raises(ValueError, match="image_prior must be a uint8 \\(H, W\\) array, got float64"):
        BankConditions(image_prior=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="motion_field must be a float32 \\(F, 2, H, W\\) array"):
        BankConditions(motion_field=np.zeros((8, 3, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="motion_field must be finite"):
        BankConditions(motion_field=np.full((2, 2, 4, 4), np.nan, dtype=np.float32))
    assert BankConditions(class_index=0, text="").given() == ("class_label", "text")


def test_condition_encoder_refuses_what_the_model_cannot_take(pipeline) -> None:
    with pytest.raises(ValueError, match="class_index 3 out of range: the model has 3 classes"):
        pipeline.conditions.encode([BankConditions(class_index=3)], [0])
    with pytest.raises(
        ValueError, match="motion_field shape \\(4, 2, 32, 32\\) != the model's \\(8, 2, 32, 32\\)"
    ):
        pipeline.conditions.encode([BankConditions(motion_field=np.zeros((4, 2, 32, 32), np.float32))], [0])
    with pytest.raises(ValueError, match="banks and seeds must have the same length"):
        pipeline.conditions.encode([BankConditions()], [0, 1])


# ------------------------------------------------------------------------------ settings and schedulers


def test_sampler_settings_defaults_and_validation() -> None:
    settings = SamplerSettings()
    assert (settings.name, settings.steps, settings.guidance_scale, settings.eta) == ("ddim", 200, 7.5, 0.0)
    assert settings.guided == CONDITION_NAMES
    assert settings.to_json()["guided_conditions"] == list(CONDITION_NAMES)
    with pytest.raises(ValueError, match="name\n  Input should be 'ddim', 'dpmsolver\\+\\+' or 'unipc'"):
        SamplerSettings(name="euler")
    with pytest.raises(ValueError, match="steps\n  Input should be greater than or equal to 1"):
        SamplerSettings(steps=0)
    with pytest.raises(ValueError, match="guidance_scale\n  Input should be greater than or equal to 0"):
        SamplerSettings(guidance_scale=-1)
    with pytest.raises(ValueError, match="eta\n  Input should be less than or equal to 1"):
        SamplerSettings(eta=2.0)
    with pytest.raises(ValueError, match="eta applies to ddim only"):
        SamplerSettings(name="unipc", eta=0.5)
    with pytest.raises(ValueError, match="guided_conditions.0\n  Input should be 'class_label', 'text'"):
        SamplerSettings(guided_conditions=("colour",))
    with pytest.raises(ValueError, match="steps must be an integer, not a boolean"):
        SamplerSettings(steps=True)


def test_ddim_defaults_equal_table_1() -> None:
    scheduler = build_scheduler(SamplerSettings())
    assert isinstance(scheduler, DDIMScheduler)
    config = scheduler.config
    assert config.num_train_timesteps == 1000
    assert config.beta_schedule == "scaled_linear"
    assert (config.beta_start, config.beta_end) == (0.00085, 0.012)
    assert config.prediction_type == "epsilon"
    assert config.steps_offset == 1
    assert config.clip_sample is False and config.set_alpha_to_one is False
    torch.testing.assert_close(scheduler.betas[[0, -1]], torch.tensor([0.00085, 0.012]))
    scheduler.set_timesteps(200)
    assert len(scheduler.timesteps) == 200 and scheduler.timesteps[0] == 996 and scheduler.timesteps[-1] == 1


def test_fast_solvers_are_selectable() -> None:
    dpm = build_scheduler(SamplerSettings(name="dpmsolver++"))
    assert isinstance(dpm, DPMSolverMultistepScheduler) and dpm.config.algorithm_type == "dpmsolver++"
    unipc = build_scheduler(SamplerSettings(name="unipc"))
    assert isinstance(unipc, UniPCMultistepScheduler)
    for scheduler in (dpm, unipc):
        assert scheduler.config.beta_schedule == NOISE_SCHEDULE["beta_schedule"]
        assert scheduler.config.prediction_type == "epsilon"


# ------------------------------------------------------------------------------ the denoising loop


@pytest.mark.parametrize("name", ["ddim", "dpmsolver++", "unipc"])
def test_each_solver_runs_and_reports_every_step(pipeline, bank, name) -> None:
    calls: list[tuple[int, int]] = []
    latents = pipeline.sample_latents(
        [bank], [0], _tiny_sampler(name=name, steps=5), progress=lambda i, n: calls.append((i, n))
    )
    assert calls == [(i, 5) for i in range(1, 6)]
    assert latents.shape == (1, 4, 8, 4, 4) and bool(torch.isfinite(latents).all())


def test_solvers_give_different_latents(pipeline, bank) -> None:
    outs = [pipeline.sample_latents([bank], [0], _tiny_sampler(name=n, steps=5)) for n in ("ddim", "unipc")]
    assert not torch.allclose(outs[0], outs[1])


def test_cancellation_raises_after_the_callback_flips(pipeline, bank) -> None:
    calls: list[int] = []
    state = {"cancel": False}

    def progress(step: int, total: int) -> None:
        calls.append(step)
        state["cancel"] = step == 2

    with pytest.raises(SamplingCancelled, match="before step 3 of 6"):
        pipeline.sample_latents([bank], [0], _tiny_sampler(steps=6), progress, lambda: state["cancel"])
    assert calls == [1, 2]


def _manual_loop(pipeline, cond, uncond, settings, seeds, separate_passes: bool) -> torch.Tensor:
    """The textbook loop: the conditional and (optionally) unconditional predictions in separate calls."""
    unet = unet_denoiser(pipeline.unet)
    scheduler = build_scheduler(settings)
    scheduler.set_timesteps(settings.steps)
    latents = clip_noise(clip_generators(seeds), pipeline.latent_shape)
    for t in scheduler.timesteps:
        eps = unet(latents, t, cond)
        if separate_passes:
            eps_uncond = unet(latents, t, uncond)
            eps = eps_uncond + settings.guidance_scale * (eps - eps_uncond)
        latents = scheduler.step(eps, t, latents).prev_sample
    return latents


@torch.no_grad()
def test_guidance_scale_one_is_the_pure_conditional_prediction(pipeline, bank) -> None:
    settings = _tiny_sampler(guidance_scale=1.0)
    cond = pipeline.conditions.encode([bank, bank], [1, 2])
    expected = _manual_loop(pipeline, cond, None, settings, [1, 2], separate_passes=False)
    assert torch.equal(pipeline.sample_latents([bank, bank], [1, 2], settings), expected)


@torch.no_grad()
def test_batched_guidance_equals_two_separate_passes(pipeline, bank) -> None:
    settings = _tiny_sampler(guidance_scale=7.5)
    seeds = [4, 5]
    cond = pipeline.conditions.encode([bank, bank], seeds)
    uncond = pipeline.conditions.unconditional(cond, CONDITION_NAMES)
    expected = _manual_loop(pipeline, cond, uncond, settings, seeds, separate_passes=True)

    batch_sizes: list[int] = []
    predict = unet_denoiser(pipeline.unet)

    def counting(sample: torch.Tensor, timestep: torch.Tensor, conditions: ConditionInputs) -> torch.Tensor:
        batch_sizes.append(sample.shape[0])
        return predict(sample, timestep, conditions)

    generators = clip_generators(seeds)
    batched = denoise(
        counting,
        build_scheduler(settings),
        clip_noise(generators, pipeline.latent_shape),
        cond,
        uncond,
        settings,
        generators,
    )
    assert batch_sizes == [4] * settings.steps  # conditional + unconditional in one call per step
    torch.testing.assert_close(batched, expected, rtol=1e-5, atol=1e-5)
    no_guidance = _manual_loop(pipeline, cond, None, settings, seeds, separate_passes=False)
    assert not torch.allclose(batched, no_guidance)


def test_unconditional_branch_nulls_only_the_guided_conditions(pipeline, bank) -> None:
    cond = pipeline.conditions.encode([bank], [0])
    uncond = pipeline.conditions.unconditional(cond, ["text", "class_label"])
    nulls = pipeline.conditions.nulls()
    assert torch.equal(uncond.text_tokens, nulls.text_tokens)
    assert uncond.class_labels.tolist() == [3]
    assert torch.equal(uncond.image_prior_tokens, cond.image_prior_tokens)
    assert torch.equal(uncond.motion_field, cond.motion_field)
    assert torch.equal(uncond.pathways[0], cond.pathways[0])


def test_guiding_a_subset_changes_the_result(pipeline, bank) -> None:
    all_guided = pipeline.sample_latents([bank], [0], _tiny_sampler())
    text_only = pipeline.sample_latents([bank], [0], _tiny_sampler(guided_conditions=("text",)))
    assert not torch.allclose(all_guided, text_only)


@pytest.mark.parametrize("field", ["text", "motion_field"])
def test_dropping_a_condition_equals_passing_its_null(pipeline, bank, field) -> None:
    null_value = {"text": "", "motion_field": np.zeros((8, 2, 32, 32), dtype=np.float32)}[field]
    settings = _tiny_sampler()
    dropped = BankConditions(**{**vars(bank), field: None})
    as_null = BankConditions(**{**vars(bank), field: null_value})
    a = pipeline.sample([dropped], [11], settings)
    b = pipeline.sample([as_null], [11], settings)
    given = pipeline.sample([bank], [11], settings)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, given)


@pytest.mark.parametrize("field", ["class_index", "image_prior"])
def test_dropped_class_and_image_prior_are_their_null_inputs(pipeline, bank, field) -> None:
    dropped = BankConditions(**{**vars(bank), field: None})
    inputs = pipeline.conditions.encode([dropped], [0])
    nulls = pipeline.conditions.nulls()
    if field == "class_index":
        assert torch.equal(inputs.class_labels, nulls.class_labels)
    else:
        assert torch.equal(inputs.image_prior_tokens, nulls.image_prior_tokens)
        assert inputs.image_prior_tokens.shape == (1, 16, 32)
    settings = _tiny_sampler()
    assert not np.array_equal(
        pipeline.sample([dropped], [3], settings), pipeline.sample([bank], [3], settings)
    )


@torch.no_grad()
def test_stage_one_image_unet_samples_frames(pipeline, bank) -> None:
    from dataclasses import replace

    from generator.config import ImageUNetConfig
    from generator.image_unet import ImageUNet

    torch.manual_seed(0)
    image_unet = ImageUNet.build(replace(ImageUNetConfig.tiny(3), cross_attention_dim=32)).eval()
    encoder = pipeline.conditions
    stage_one = BankConditions(class_index=bank.class_index, text=bank.text, image_prior=bank.image_prior)
    cond = encoder.encode([stage_one, stage_one], [0, 1])
    cond = ConditionInputs(cond.class_labels, cond.text_tokens, cond.image_prior_tokens)
    nulls = encoder.nulls()
    uncond = apply_keep_masks(
        cond,
        {name: torch.zeros(2, dtype=torch.bool) for name in ("class_label", "text", "image_prior")},
        ConditionInputs(nulls.class_labels, nulls.text_tokens, nulls.image_prior_tokens),
    )
    settings = _tiny_sampler(name="dpmsolver++")
    generators = clip_generators([0, 1])
    noise = clip_noise(generators, (4, 4, 4))
    frames = denoise(
        unet_denoiser(image_unet), build_scheduler(settings), noise, cond, uncond, settings, generators
    )
    assert frames.shape == (2, 4, 4, 4) and bool(torch.isfinite(frames).all())
    assert not torch.allclose(frames[0], frames[1])


def test_ddim_eta_noise_is_per_clip(pipeline, bank) -> None:
    settings = _tiny_sampler(eta=1.0)
    alone = pipeline.sample_latents([bank], [8], settings)
    batched = pipeline.sample_latents([BankConditions(text="x"), bank], [2, 8], settings)
    torch.testing.assert_close(batched[1], alone[0], rtol=1e-5, atol=1e-5)
    deterministic = pipeline.sample_latents([bank], [8], _tiny_sampler(eta=0.0))
    assert not torch.allclose(alone, deterministic)
