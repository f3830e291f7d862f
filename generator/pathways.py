"""Motion-field pathways for motion-field attention (paper §3.4 MFA, Eqs. 4-5; FLATTEN-style trajectories).

A clip's pathways are a LongTensor ``(P, F)``: row p lists, frame by frame, the flat token index
``frame * h * w + y * w + x`` of the patch on pathway p, or -1 on frames the pathway does not cover.
Every patch of every frame lies on exactly one pathway, so the valid entries are a permutation of
``range(F * h * w)`` (the paper's "pathway set of size H*W/m^2 * f").

Motion-field convention (docs/contracts.md): ``field[l, :, y, x] = (dx, dy)`` in pixels means the
content at pixel (x, y) of frame l was at (x - dx, y - dy) in frame l - 1; frame 0 is zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

PAD = -1


def _as_numpy_field(motion_field: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(motion_field, torch.Tensor):
        motion_field = motion_field.detach().to("cpu", torch.float32).numpy()
    field = np.asarray(motion_field, dtype=np.float32)
    if field.ndim != 4 or field.shape[1] != 2:
        raise ValueError(f"motion_field must have shape (F, 2, H, W), got {tuple(field.shape)}")
    if not np.isfinite(field).all():
        raise ValueError("motion_field contains NaN or infinite values")
    return field


def sample_pathways(motion_field: np.ndarray | torch.Tensor, m: int = 8, seed: int = 0) -> torch.Tensor:
    """Sample one pathway per patch from a motion field ``(F, 2, H, W)`` down-sampled by ``m``.

    Each patch of frame l traces its motion back to a parent patch of frame l-1 and continues the
    parent's pathway. Where several patches trace back to one parent, a seeded random one of them
    continues it; the others, and patches whose parent lies outside the frame, start new pathways.
    Returns ``(P, F)`` int64 with -1 padding, pathways ordered by their first frame, then position.
    """
    field = _as_numpy_field(motion_field)
    num_frames, _, height, width = field.shape
    if m < 1 or height % m or width % m:
        raise ValueError(f"motion_field height and width ({height}, {width}) must be multiples of m={m}")
    h, w = height // m, width // m
    tokens = h * w
    # Mean displacement of each m x m patch, in patch units.
    patch_motion = (
        field.reshape(num_frames, 2, h, m, w, m).mean(axis=(3, 5)).reshape(num_frames, 2, tokens) / m
    )
    ys, xs = np.divmod(np.arange(tokens), w)
    rng = np.random.default_rng(seed)

    pathway_of_patch = np.arange(tokens)
    member_pathway = [pathway_of_patch]
    next_pathway = tokens
    for frame in range(1, num_frames):
        parent_x = np.rint(xs - patch_motion[frame, 0]).astype(np.int64)
        parent_y = np.rint(ys - patch_motion[frame, 1]).astype(np.int64)
        inside = (parent_x >= 0) & (parent_x < w) & (parent_y >= 0) & (parent_y < h)
        parent = np.where(inside, parent_y * w + parent_x, 0)
        priority = rng.permutation(tokens)
        best = np.full(tokens, -1)
        np.maximum.at(best, parent[inside], priority[inside])
        continues = inside & (priority == best[parent])
        starts = ~continues
        new_pathway = np.empty(tokens, dtype=np.int64)
        new_pathway[continues] = pathway_of_patch[parent[continues]]
        new_pathway[starts] = next_pathway + np.arange(int(starts.sum()))
        next_pathway += int(starts.sum())
        pathway_of_patch = new_pathway
        member_pathway.append(pathway_of_patch)

    table = np.full((next_pathway, num_frames), PAD, dtype=np.int64)
    for frame, pathway in enumerate(member_pathway):
        table[pathway, frame] = frame * tokens + np.arange(tokens)
    return torch.from_numpy(table)


def straight_pathways(num_frames: int, h: int, w: int) -> torch.Tensor:
    """Pathways of a motionless clip: each patch position, through every frame (the null motion)."""
    tokens = h * w
    return torch.arange(tokens)[:, None] + tokens * torch.arange(num_frames)[None, :]


def stack_pathways(pathways: Sequence[torch.Tensor]) -> torch.Tensor:
    """Batch clips' pathways ``(P_i, F)`` into ``(B, max P_i, F)``, padding with all -1 rows.

    Rows that are all -1 are ignored by the sequence UNet, so already padded (P, F) tensors may be
    re-stacked (e.g. to concatenate conditional and unconditional batches of different P)."""
    if not pathways:
        raise ValueError("pathways must not be empty")
    frames = {p.shape[-1] for p in pathways}
    if len(frames) != 1 or any(p.ndim != 2 for p in pathways):
        raise ValueError(
            f"pathways must all have shape (P, F) with one F, got {[tuple(p.shape) for p in pathways]}"
        )
    longest = max(p.shape[0] for p in pathways)
    out = torch.full((len(pathways), longest, frames.pop()), PAD, dtype=torch.long)
    for i, clip_pathways in enumerate(pathways):
        out[i, : clip_pathways.shape[0]] = clip_pathways
    return out


@dataclass(frozen=True)
class PathwayIndex:
    """Gather/scatter indices for batched attention along pathways, built once per forward pass.

    ``gather`` (B, P*F) picks the token of each pathway slot (padding slots pick token 0);
    ``key_mask`` (B*P, 1, 1, F) marks the slots that take part (pathways that are all padding, which
    only exist to pad the batch, attend to every slot so that softmax stays finite; they are never read);
    ``scatter`` (B, F*h*w) is the slot of each token.
    """

    gather: torch.Tensor
    key_mask: torch.Tensor
    scatter: torch.Tensor
    num_pathways: int
    num_frames: int

    @classmethod
    def build(
        cls,
        pathways: torch.Tensor | Sequence[torch.Tensor | None],
        num_frames: int,
        h: int,
        w: int,
        device: torch.device,
    ) -> PathwayIndex:
        """From a (B, P, F) tensor or a list of (P_i, F) tensors (None: straight pathways); validates them."""
        if isinstance(pathways, torch.Tensor):
            if pathways.ndim != 3:
                raise ValueError(f"pathways tensor must have shape (B, P, F), got {tuple(pathways.shape)}")
            padded = pathways.to(device=device, dtype=torch.long)
        else:
            clips = [straight_pathways(num_frames, h, w) if p is None else p for p in pathways]
            padded = stack_pathways(clips).to(device)
        if padded.shape[2] != num_frames:
            raise ValueError(
                f"pathways must have {num_frames} frames (last dimension), got {padded.shape[2]}"
            )
        tokens = num_frames * h * w
        longest = padded.shape[1]
        batch = padded.shape[0]
        flat = padded.reshape(batch, longest * num_frames)
        valid = flat >= 0
        if bool((flat >= tokens).any()) or bool((flat < PAD).any()):
            raise ValueError(
                f"pathways entries must lie in [-1, {tokens}) for {num_frames} frames of {h}x{w}"
            )
        target = torch.where(valid, flat, tokens)
        counts = torch.zeros(batch, tokens + 1, dtype=torch.long, device=device)
        counts.scatter_add_(1, target, torch.ones_like(target))
        if not bool((counts[:, :tokens] == 1).all()):
            raise ValueError("pathways must cover every token of every frame exactly once")
        slots = torch.arange(longest * num_frames, device=device).expand(batch, -1)
        scatter = torch.zeros(batch, tokens + 1, dtype=torch.long, device=device)
        scatter.scatter_(1, target, slots)
        key_mask = valid.reshape(batch * longest, 1, 1, num_frames)
        key_mask = key_mask | ~key_mask.any(dim=-1, keepdim=True)
        return cls(
            gather=torch.where(valid, flat, 0),
            key_mask=key_mask,
            scatter=scatter[:, :tokens],
            num_pathways=longest,
            num_frames=num_frames,
        )
