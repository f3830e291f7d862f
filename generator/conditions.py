"""Condition banks, their nulls, batched model inputs and joint multi-condition dropout (§3.3, §4.1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from contracts.conditions import CONDITION_NAMES
from generator.pathways import sample_pathways, straight_pathways

BANK_FIELDS: dict[str, str] = {
    "class_label": "class_index",
    "text": "text",
    "image_prior": "image_prior",
    "motion_field": "motion_field",
}
NULL_TEXT = ""


@dataclass(frozen=True, eq=False)
class BankConditions:
    """One condition bank; `None` drops a condition (its null is used, exactly as in training)."""

    class_index: int | None = None
    text: str | None = None
    image_prior: np.ndarray | None = None
    motion_field: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.class_index is not None and (
            isinstance(self.class_index, bool)
            or not isinstance(self.class_index, (int, np.integer))
            or self.class_index < 0
        ):
            raise ValueError(f"class_index must be a non-negative integer or None, got {self.class_index!r}")
        if self.text is not None and not isinstance(self.text, str):
            raise ValueError(f"text must be a string or None, got {type(self.text).__name__}")
        prior = self.image_prior
        if prior is not None and (
            not isinstance(prior, np.ndarray) or prior.dtype != np.uint8 or prior.ndim != 2
        ):
            raise ValueError(f"image_prior must be a uint8 (H, W) array, got {_describe(prior)}")
        motion = self.motion_field
        if motion is not None:
            if (
                not isinstance(motion, np.ndarray)
                or motion.dtype != np.float32
                or motion.ndim != 4
                or motion.shape[1] != 2
            ):
                raise ValueError(
                    f"motion_field must be a float32 (F, 2, H, W) array, got {_describe(motion)}"
                )
            if not np.isfinite(motion).all():
                raise ValueError("motion_field must be finite")

    def given(self) -> tuple[str, ...]:
        """Names of the conditions this bank gives (the rest are dropped)."""
        return tuple(name for name in CONDITION_NAMES if getattr(self, BANK_FIELDS[name]) is not None)


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


@dataclass(frozen=True)
class ConditionInputs:
    """Batched model inputs, one row per clip; a field is `None` when the model has no such condition.

    `pathways` holds one `(P_i, F)` tensor per clip (P_i varies with the motion), as `SequenceUNet` takes.
    """

    class_labels: torch.Tensor | None = None  # (B,) long
    text_tokens: torch.Tensor | None = None  # (B, L, D)
    image_prior_tokens: torch.Tensor | None = None  # (B, N, D)
    motion_field: torch.Tensor | None = None  # (B, F, 2, H, W)
    pathways: tuple[torch.Tensor, ...] | None = None

    def __len__(self) -> int:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                return len(value)
        raise ValueError("condition inputs hold no condition")

    def concat(self, other: ConditionInputs) -> ConditionInputs:
        def cat(name: str) -> torch.Tensor | tuple[torch.Tensor, ...] | None:
            a, b = getattr(self, name), getattr(other, name)
            if (a is None) != (b is None):
                raise ValueError(f"cannot concatenate condition inputs with and without {name}")
            if a is None:
                return None
            return tuple(a) + tuple(b) if name == "pathways" else torch.cat([a, b])

        return ConditionInputs(**{f.name: cat(f.name) for f in fields(self)})  # type: ignore[arg-type]

    def to(self, device: torch.device | str, dtype: torch.dtype) -> ConditionInputs:
        def move(x: torch.Tensor | None) -> torch.Tensor | None:
            if x is None:
                return None
            return x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device=device)

        return replace(
            self,
            class_labels=move(self.class_labels),
            text_tokens=move(self.text_tokens),
            image_prior_tokens=move(self.image_prior_tokens),
            motion_field=move(self.motion_field),
        )


def _where(keep: torch.Tensor, value: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
    mask = keep.to(value.device).reshape(-1, *([1] * (value.dim() - 1)))
    return torch.where(mask, value, null.to(value.device, value.dtype).expand_as(value))


def apply_keep_masks(
    inputs: ConditionInputs, keep: Mapping[str, torch.Tensor], nulls: ConditionInputs
) -> ConditionInputs:
    """Replace each dropped condition (keep False) by its null; `nulls` holds one row of nulls.

    Conditions the model does not take (field `None`) are left as they are.
    """
    unknown = sorted(set(keep) - set(CONDITION_NAMES))
    if unknown:
        raise ValueError(f"keep masks have unknown condition names {unknown}; known: {CONDITION_NAMES}")
    size = len(inputs)
    for name, mask in keep.items():
        if mask.dtype != torch.bool or tuple(mask.shape) != (size,):
            raise ValueError(f"keep mask {name!r} must be a bool tensor of shape ({size},)")
    out = inputs
    tensor_fields = {
        "class_label": "class_labels",
        "text": "text_tokens",
        "image_prior": "image_prior_tokens",
    }
    for name, attribute in tensor_fields.items():
        value, null = getattr(out, attribute), getattr(nulls, attribute)
        if name in keep and value is not None:
            out = replace(out, **{attribute: _where(keep[name], value, null)})
    if "motion_field" in keep and out.motion_field is not None:
        assert nulls.motion_field is not None
        mask = keep["motion_field"].tolist()
        pathways = out.pathways
        if pathways is not None:
            assert nulls.pathways is not None
            pathways = tuple(p if k else nulls.pathways[0] for p, k in zip(pathways, mask, strict=True))
        out = replace(
            out,
            motion_field=_where(keep["motion_field"], out.motion_field, nulls.motion_field),
            pathways=pathways,
        )
    return out


@dataclass(frozen=True)
class JointDropout:
    """Joint multi-condition training (§4.1, Composer-style): keep all, drop all, else drop each alone."""

    keep_all: float = 0.1
    drop_all: float = 0.1
    drop_each: float = 0.5

    def __post_init__(self) -> None:
        for name in ("keep_all", "drop_all", "drop_each"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"dropout {name} must be in [0, 1], got {value!r}")
        if self.keep_all + self.drop_all > 1.0:
            raise ValueError(f"dropout keep_all + drop_all must be <= 1, got {self.keep_all + self.drop_all}")

    def sample(
        self, batch_size: int, generator: torch.Generator, conditions: Sequence[str] = CONDITION_NAMES
    ) -> dict[str, torch.Tensor]:
        """Per-condition keep masks `(batch_size,)` bool, drawn on the CPU from `generator`."""
        mode = torch.rand(batch_size, generator=generator)
        each = torch.rand(len(conditions), batch_size, generator=generator) >= self.drop_each
        keep_all = mode < self.keep_all
        drop_all = (mode >= self.keep_all) & (mode < self.keep_all + self.drop_all)
        return {name: (each[i] | keep_all) & ~drop_all for i, name in enumerate(conditions)}


TextEncode = Callable[[list[str]], torch.Tensor]
ImagePriorEncode = Callable[[list[np.ndarray]], torch.Tensor]


@dataclass(frozen=True)
class MotionInputs:
    """What the sequence UNet takes of the motion condition: field size and MFA pathway down-sampling."""

    num_frames: int
    height: int
    width: int
    pathway_downsample: int | None  # m of §3.4; None when the model has no MFA

    @property
    def null_field(self) -> np.ndarray:
        return np.zeros((self.num_frames, 2, self.height, self.width), dtype=np.float32)


class ConditionEncoder:
    """Turns condition banks into batched model inputs, with nulls exactly as in training.

    A condition the model does not take has no encoder here (`None`); a bank that gives it is refused.
    """

    def __init__(
        self,
        encode_text: TextEncode | None,
        encode_image_prior: ImagePriorEncode | None,
        image_prior_tokens_shape: tuple[int, int] | None,
        num_classes: int | None,
        motion: MotionInputs | None = None,
    ) -> None:
        if (encode_image_prior is None) != (image_prior_tokens_shape is None):
            raise ValueError("encode_image_prior and image_prior_tokens_shape go together")
        self.encode_text = encode_text
        self.encode_image_prior = encode_image_prior
        self.image_prior_tokens_shape = image_prior_tokens_shape
        self.num_classes = num_classes
        self.motion = motion
        self._null_text: torch.Tensor | None = None

    @property
    def conditions(self) -> tuple[str, ...]:
        present = {
            "class_label": self.num_classes is not None,
            "text": self.encode_text is not None,
            "image_prior": self.encode_image_prior is not None,
            "motion_field": self.motion is not None,
        }
        return tuple(name for name in CONDITION_NAMES if present[name])

    def _null_text_tokens(self) -> torch.Tensor:
        assert self.encode_text is not None
        if self._null_text is None:
            self._null_text = self.encode_text([NULL_TEXT])
        return self._null_text

    def _null_pathways(self) -> torch.Tensor:
        assert self.motion is not None and self.motion.pathway_downsample is not None
        m = self.motion.pathway_downsample
        return straight_pathways(self.motion.num_frames, self.motion.height // m, self.motion.width // m)

    def nulls(self) -> ConditionInputs:
        """One row holding every condition's null (docs/contracts.md, "Null conditions")."""
        text = self._null_text_tokens() if self.encode_text is not None else None
        image = None
        if self.image_prior_tokens_shape is not None:
            image = torch.zeros(1, *self.image_prior_tokens_shape)
        motion_field = pathways = None
        if self.motion is not None:
            motion_field = torch.from_numpy(self.motion.null_field)[None]
            if self.motion.pathway_downsample is not None:
                pathways = (self._null_pathways(),)
        return ConditionInputs(
            class_labels=None if self.num_classes is None else torch.tensor([self.num_classes]),
            text_tokens=text,
            image_prior_tokens=image,
            motion_field=motion_field,
            pathways=pathways,
        )

    def check(self, bank: BankConditions) -> None:
        unsupported = sorted(set(bank.given()) - set(self.conditions))
        if unsupported:
            raise ValueError(
                f"conditions {unsupported} given but the model takes only {list(self.conditions)}"
            )
        if (
            bank.class_index is not None
            and self.num_classes is not None
            and bank.class_index >= self.num_classes
        ):
            raise ValueError(
                f"class_index {bank.class_index} out of range: the model has {self.num_classes} classes"
            )
        if bank.motion_field is not None and self.motion is not None:
            expected = self.motion.null_field.shape
            if bank.motion_field.shape != expected:
                raise ValueError(f"motion_field shape {bank.motion_field.shape} != the model's {expected}")

    @torch.no_grad()
    def encode(self, banks: Sequence[BankConditions], seeds: Sequence[int]) -> ConditionInputs:
        """Inputs for clip i from `banks[i]`, MFA pathways seeded by `seeds[i]`; shared banks encoded once."""
        if len(banks) != len(seeds):
            raise ValueError(f"banks and seeds must have the same length, got {len(banks)} and {len(seeds)}")
        if not banks:
            raise ValueError("banks must not be empty")
        for bank in banks:
            self.check(bank)
        distinct = list({id(bank): bank for bank in banks}.values())
        position = {id(bank): i for i, bank in enumerate(distinct)}
        rows = torch.tensor([position[id(bank)] for bank in banks])

        class_labels = text_tokens = image_tokens = motion_field = pathways = None
        if self.num_classes is not None:
            labels = [self.num_classes if b.class_index is None else int(b.class_index) for b in banks]
            class_labels = torch.tensor(labels, dtype=torch.long)
        if self.encode_text is not None:
            text_tokens = self.encode_text([NULL_TEXT if b.text is None else b.text for b in distinct])[rows]
        if self.encode_image_prior is not None and self.image_prior_tokens_shape is not None:
            tokens = torch.zeros(len(distinct), *self.image_prior_tokens_shape)
            with_prior = [i for i, b in enumerate(distinct) if b.image_prior is not None]
            if with_prior:
                encoded = self.encode_image_prior([distinct[i].image_prior for i in with_prior])  # type: ignore[misc]
                tokens[with_prior] = encoded.to("cpu", tokens.dtype)
            image_tokens = tokens[rows]
        if self.motion is not None:
            null_field = self.motion.null_field
            motion_field = torch.from_numpy(
                np.stack([null_field if b.motion_field is None else b.motion_field for b in banks])
            )
            m = self.motion.pathway_downsample
            if m is not None:
                pathways = tuple(
                    self._null_pathways()
                    if bank.motion_field is None
                    else sample_pathways(bank.motion_field, m=m, seed=int(seed))
                    for bank, seed in zip(banks, seeds, strict=True)
                )
        return ConditionInputs(class_labels, text_tokens, image_tokens, motion_field, pathways)

    def unconditional(self, cond: ConditionInputs, guided: Sequence[str]) -> ConditionInputs:
        """The guidance branch: `guided` conditions replaced by their nulls, the rest as in `cond`."""
        drop = torch.zeros(len(cond), dtype=torch.bool)
        return apply_keep_masks(cond, {name: drop for name in guided}, self.nulls())
