"""A bank's stored conditions, fitted to the model: image prior to its frame size, motion field to its
frame size and length."""

from __future__ import annotations

import numpy as np
from PIL import Image

from generator.conditions import BankConditions
from generator.model_info import ModelInfo
from generator.motion import resize_motion_field
from store.assets import load_image_prior, load_motion_field
from store.models import Bank
from store.objects import ObjectStore


def fit_image_prior(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def fit_motion_field(field: np.ndarray, num_frames: int, height: int, width: int) -> np.ndarray:
    """Resize to (height, width) with displacements scaled; keep the first `num_frames` frames, and pad a
    shorter field with zero motion (the clip holds still after the reference ends)."""
    field = resize_motion_field(field, (height, width)).astype(np.float32, copy=False)
    if field.shape[0] >= num_frames:
        return np.ascontiguousarray(field[:num_frames])
    padding = np.zeros((num_frames - field.shape[0], *field.shape[1:]), dtype=np.float32)
    return np.concatenate([field, padding])


def bank_conditions(store: ObjectStore, bank: Bank, info: ModelInfo) -> BankConditions:
    image_prior = motion_field = None
    if bank.image_prior_asset is not None:
        image_prior = fit_image_prior(
            load_image_prior(store, bank.image_prior_asset), info.height, info.width
        )
    if bank.motion_asset is not None:
        motion_field = fit_motion_field(
            load_motion_field(store, bank.motion_asset), info.num_frames, info.height, info.width
        )
    return BankConditions(
        class_index=bank.class_index, text=bank.text, image_prior=image_prior, motion_field=motion_field
    )
