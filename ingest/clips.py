"""Uniform, non-overlapping fixed-length clips from one sequence (paper §4.1)."""

from __future__ import annotations


def clip_starts(num_available: int, clip_frames: int, stride: int) -> list[int]:
    """First frame index of each clip.

    A clip takes frames `start, start + stride, …` (`clip_frames` of them); clips follow one another
    without sharing a frame (the next starts `clip_frames * stride` later). The run of clips is
    centred in the sequence, so leftover frames are dropped equally from both ends.
    """
    if clip_frames < 1 or stride < 1:
        raise ValueError(f"clip_frames and stride must be >= 1 (got {clip_frames}, {stride})")
    span = (clip_frames - 1) * stride + 1
    if num_available < span:
        return []
    step = clip_frames * stride
    count = (num_available - span) // step + 1
    used = (count - 1) * step + span
    offset = (num_available - used) // 2
    return [offset + i * step for i in range(count)]


def clip_indices(start: int, clip_frames: int, stride: int) -> list[int]:
    return [start + i * stride for i in range(clip_frames)]
