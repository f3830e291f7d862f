"""The training loop all stages share: accelerate, AdamW, warm-up + cosine schedule, checkpoints, resume."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from training.checkpoint import (
    FINAL_DIR,
    check_resumable,
    checkpoint_dir,
    latest_checkpoint,
    prune_checkpoints,
    write_run_files,
)
from training.config import ConfigError, RunConfig
from training.data import EpochPermutationSampler, collate

logger = logging.getLogger(__name__)

LOSS_LOG = "losses.jsonl"
Batch = dict[str, Any]


@dataclass
class StageRun:
    """What a stage hands the loop.

    `model(batch, generator)` returns a dict with a scalar `"loss"` (other entries are logged); only its
    parameters with `requires_grad` are optimised. `prepare_batch(batch, generator)` runs first, without
    gradients, with the `frozen` modules (VAE, text encoder, ...) the loop moves to the device.
    `export(model, directory)` writes the trained component(s) in the generator's format.
    """

    model: nn.Module
    dataset: Dataset
    export: Callable[[nn.Module, Path], None]
    manifest_checksum: str
    prepare_batch: Callable[[Batch, torch.Generator], Batch] | None = None
    frozen: Sequence[nn.Module] = ()
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    final_dir: Path
    steps: int
    last_loss: float
    seconds: float


class TrainingProgress:
    """The loop position accelerate checkpoints beside the weights (`custom_checkpoint_0.pkl`)."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])


def step_generator(seed: int, step: int, process_index: int) -> torch.Generator:
    """The CPU generator for one optimisation step: noise, timesteps, dropout and pathways are a function of
    (seed, step, process), so a resumed run draws exactly what the uninterrupted run drew."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + process_index)


def make_accelerator(config: RunConfig) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    use_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but no CUDA device is available")
    return Accelerator(
        cpu=not use_cuda,
        mixed_precision=config.mixed_precision if use_cuda else "no",
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        # A condition dropped for a whole batch leaves its branch without gradients (§4.1 dropout).
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def weight_dtype(accelerator: Any) -> torch.dtype:
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


def build_ema(config: Any, trainable: Sequence[nn.Parameter]) -> Any:
    """diffusers' `EMAModel` over the trained parameters (its state is checkpointed with the run)."""
    if config is None:
        return None
    from diffusers.training_utils import EMAModel

    return EMAModel(trainable, decay=config.decay, use_ema_warmup=config.warmup, power=config.power)


def last_logged_loss(path: Path) -> float:
    """The last loss of a run's log (a resumed run that has no step left to train reports it)."""
    lines = path.read_text().splitlines() if path.is_file() else []
    return float(json.loads(lines[-1])["loss"]) if lines else math.nan


def _truncate_loss_log(path: Path, step: int) -> None:
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(f"{line}\n" for line in kept))


def train(
    config: RunConfig,
    run: StageRun,
    resume: bool | Path = False,
    show_progress: bool = True,
) -> TrainResult:
    """Train `run.model` as `config` says; `resume`: True = latest checkpoint, a Path = that checkpoint."""
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler

    started = time.perf_counter()
    output_dir = config.output_dir
    accelerator = make_accelerator(config)
    set_seed(config.seed)
    trainable = [p for p in run.model.parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError("the stage has no trainable parameters")
    optimizer = torch.optim.AdamW(
        trainable,
        lr=config.optimizer.lr,
        betas=config.optimizer.betas,
        weight_decay=config.optimizer.weight_decay,
        eps=config.optimizer.eps,
    )
    sampler = EpochPermutationSampler(len(run.dataset), config.seed)
    loader = DataLoader(
        run.dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=config.num_workers,
        generator=torch.Generator().manual_seed(config.seed),
    )
    updates_per_epoch = math.ceil(len(loader) / config.gradient_accumulation_steps)
    total_steps = config.max_steps or config.epochs * updates_per_epoch
    # Diffusers' convention: the prepared scheduler steps once per process.
    lr_scheduler = get_scheduler(
        config.optimizer.schedule,
        optimizer=optimizer,
        num_warmup_steps=config.optimizer.warmup_steps * accelerator.num_processes,
        num_training_steps=total_steps * accelerator.num_processes,
    )
    dtype = weight_dtype(accelerator)
    for module in run.frozen:
        module.to(accelerator.device).requires_grad_(False).eval()
        if dtype != torch.float32:
            module.to(dtype)
    model, optimizer, loader, lr_scheduler = accelerator.prepare(run.model, optimizer, loader, lr_scheduler)
    progress_state = TrainingProgress()
    accelerator.register_for_checkpointing(progress_state)
    ema = build_ema(getattr(config, "ema", None), trainable)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)

    loss_log = output_dir / LOSS_LOG
    if resume:
        source = latest_checkpoint(output_dir) if resume is True else Path(resume)
        check_resumable(source, config, run.manifest_checksum)
        accelerator.load_state(str(source))
        if accelerator.is_main_process:
            _truncate_loss_log(loss_log, progress_state.step)
        logger.info("resumed from %s at step %d", source, progress_state.step)
    elif accelerator.is_main_process and loss_log.exists():
        loss_log.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)

    step = progress_state.step
    epoch, done_in_epoch = divmod(step, updates_per_epoch)
    last_loss = last_logged_loss(loss_log) if resume else math.nan
    bar = tqdm(
        total=total_steps,
        initial=step,
        desc=f"train {getattr(config, 'stage', '')}",
        unit="step",
        disable=not (show_progress and accelerator.is_local_main_process),
    )
    model.train()
    while step < total_steps:
        batches = loader
        if done_in_epoch:
            batches = accelerator.skip_first_batches(
                loader, done_in_epoch * config.gradient_accumulation_steps
            )
        # The prepared loader forwards the epoch to `EpochPermutationSampler` (and resets it on each pass).
        batches.set_epoch(epoch)
        for batch in batches:
            generator = step_generator(config.seed, step, accelerator.process_index)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    if run.prepare_batch is not None:
                        with torch.no_grad():
                            batch = run.prepare_batch(batch, generator)
                    outputs = model(batch, generator)
                loss = outputs["loss"]
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.optimizer.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(trainable, config.optimizer.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            if ema is not None:
                ema.step(trainable)
            step += 1
            progress_state.step = step
            last_loss = accelerator.gather(loss.detach()).mean().item()
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
            if accelerator.is_main_process and (
                step % config.log_every == 0 or step == total_steps or step == 1
            ):
                extras = {k: float(v.detach().mean()) for k, v in outputs.items() if k != "loss"}
                record = {"step": step, "loss": last_loss, "lr": lr_scheduler.get_last_lr()[0], **extras}
                with loss_log.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
            if step % config.checkpoint_every == 0 or step == total_steps:
                _save_checkpoint(accelerator, config, run, step)
            if step >= total_steps:
                break
        epoch += 1
        done_in_epoch = 0
    bar.close()

    final_dir = output_dir / FINAL_DIR
    accelerator.wait_for_everyone()
    if ema is not None:
        ema.copy_to(trainable)
    if accelerator.is_main_process:
        run.export(accelerator.unwrap_model(model), final_dir)
        write_run_files(
            final_dir,
            config,
            run.manifest_checksum,
            step,
            last_loss=last_loss,
            train_seconds=time.perf_counter() - started,
            **run.summary,
        )
    accelerator.end_training()
    return TrainResult(output_dir, final_dir, step, last_loss, time.perf_counter() - started)


def _save_checkpoint(accelerator: Any, config: RunConfig, run: StageRun, step: int) -> None:
    directory = checkpoint_dir(config.output_dir, step)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(directory))
    if accelerator.is_main_process:
        write_run_files(directory, config, run.manifest_checksum, step)
        prune_checkpoints(config.output_dir, config.checkpoints_total_limit)
