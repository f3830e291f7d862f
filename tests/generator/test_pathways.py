"""Motion-field pathways (paper §3.4 MFA step 1): partition, straight lines, shifts, seeding, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generator.pathways import PathwayIndex, sample_pathways, stack_pathways, straight_pathways

M = 8


def _assert_partition(pathways: torch.Tensor, frames: int, tokens: int) -> None:
    valid = pathways[pathways >= 0]
    assert valid.numel() == frames * tokens  # the paper's pathway-set size H*W/m^2 * f
    assert torch.equal(torch.sort(valid).values, torch.arange(frames * tokens))
    for frame in range(frames):  # a pathway holds at most one patch per frame, of that frame
        column = pathways[:, frame]
        column = column[column >= 0]
        assert bool(((column // tokens) == frame).all())


def _contiguous(pathways: torch.Tensor) -> bool:
    """Each pathway covers one unbroken run of frames."""
    for row in (pathways >= 0).int():
        starts = int((row.diff() == 1).sum()) + int(row[0])
        if starts != 1:
            return False
    return True


def test_zero_motion_gives_straight_lines() -> None:
    field = np.zeros((5, 2, 4 * M, 3 * M), dtype=np.float32)
    pathways = sample_pathways(field, m=M, seed=3)
    assert pathways.dtype == torch.long
    assert torch.equal(pathways, straight_pathways(5, 4, 3))
    assert pathways[7].tolist() == [7, 19, 31, 43, 55]


def test_shift_by_one_patch_per_frame() -> None:
    frames, h, w = 4, 2, 5
    field = np.zeros((frames, 2, h * M, w * M), dtype=np.float32)
    field[1:, 0] = M  # content moves one patch to the right each frame
    pathways = sample_pathways(field, m=M, seed=0)
    tokens = h * w
    _assert_partition(pathways, frames, tokens)
    assert pathways.shape == (tokens + (frames - 1) * h, frames)
    # a patch starting at (y=1, x=1) is at x = 1 + f on frame f, until it leaves the frame
    assert pathways[1 * w + 1].tolist() == [6, 17, 28, 39]
    assert pathways[1 * w + 3].tolist() == [8, 19, -1, -1]
    # new pathways start at the left edge on frames 1.. (ordered by first frame, then position)
    assert pathways[tokens].tolist() == [-1, 10, 21, 32]
    assert pathways[tokens + 1].tolist() == [-1, 15, 26, 37]
    assert _contiguous(pathways)


def test_vertical_shift_and_sub_patch_motion_average() -> None:
    field = np.zeros((2, 2, 3 * M, 2 * M), dtype=np.float32)
    field[1, 1] = -M  # content moves one patch up
    field[1, 0, :, : M // 2] = 1.0  # 1 px on half a patch: the patch mean (0.5 px) rounds to no motion
    pathways = sample_pathways(field, m=M, seed=0)
    tokens = 6
    assert pathways[2].tolist() == [2, tokens + 0]  # (y=1, x=0) -> (y=0, x=0)
    assert pathways[0].tolist() == [0, -1]  # leaves through the top


def test_converging_motion_keeps_one_random_continuation_per_patch() -> None:
    h, w = 3, 3
    field = np.zeros((2, 2, h * M, w * M), dtype=np.float32)
    ys, xs = np.mgrid[0:h, 0:w]
    # every patch of frame 1 comes from the centre patch (1, 1) of frame 0
    field[1, 0] = np.kron(xs - 1, np.ones((M, M))) * M
    field[1, 1] = np.kron(ys - 1, np.ones((M, M))) * M
    winners = set()
    for seed in range(12):
        pathways = sample_pathways(field, m=M, seed=seed)
        _assert_partition(pathways, 2, h * w)
        assert pathways.shape == (9 + 8, 2)
        centre_next = int(pathways[4, 1])
        assert 9 <= centre_next < 18
        assert all(int(pathways[i, 1]) == -1 for i in range(9) if i != 4)
        winners.add(centre_next)
    assert len(winners) > 3


def test_seed_determinism_and_partition_on_random_motion() -> None:
    rng = np.random.default_rng(0)
    field = rng.normal(scale=12.0, size=(6, 2, 8 * M, 8 * M)).astype(np.float32)
    field = np.repeat(np.repeat(field[:, :, ::M, ::M], M, axis=2), M, axis=3)  # patch-constant motion
    field[0] = 0
    a = sample_pathways(field, m=M, seed=11)
    b = sample_pathways(torch.from_numpy(field), m=M, seed=11)
    c = sample_pathways(field, m=M, seed=12)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    for pathways in (a, c):
        _assert_partition(pathways, 6, 64)
        assert _contiguous(pathways)
        assert pathways.shape[0] > 64


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(ValueError, match="motion_field must have shape"):
        sample_pathways(np.zeros((4, 3, 16, 16), dtype=np.float32))
    with pytest.raises(ValueError, match="multiples of m=8"):
        sample_pathways(np.zeros((4, 2, 20, 16), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        sample_pathways(np.full((2, 2, 16, 16), np.nan, dtype=np.float32))


def test_index_round_trips_tokens_and_masks_padding() -> None:
    field = np.zeros((3, 2, 2 * M, 3 * M), dtype=np.float32)
    field[1:, 0] = M
    shifted = sample_pathways(field, m=M, seed=0)
    straight = straight_pathways(3, 2, 3)
    stacked = stack_pathways([shifted, straight])
    assert stacked.shape == (2, shifted.shape[0], 3)
    assert bool((stacked[1, 6:] == -1).all())
    index = PathwayIndex.build(stacked, 3, 2, 3, torch.device("cpu"))
    tokens = torch.arange(18.0)[None].expand(2, -1)
    slots = tokens.gather(1, index.gather)
    assert torch.equal(slots.gather(1, index.scatter), tokens)  # gather then scatter is the identity
    mask = index.key_mask.reshape(2, shifted.shape[0], 3)
    assert torch.equal(mask[0], shifted >= 0)
    assert bool(mask[1, 6:].all())  # batch-padding rows attend everywhere (finite softmax, never read)
    same = PathwayIndex.build([shifted, None], 3, 2, 3, torch.device("cpu"))
    assert torch.equal(same.gather, index.gather) and torch.equal(same.scatter, index.scatter)


def test_index_rejects_pathways_that_are_not_a_partition() -> None:
    broken = straight_pathways(3, 2, 2).clone()
    broken[0, 1] = broken[1, 1]
    with pytest.raises(ValueError, match="exactly once"):
        PathwayIndex.build([broken], 3, 2, 2, torch.device("cpu"))
    with pytest.raises(ValueError, match="must lie in"):
        PathwayIndex.build([straight_pathways(3, 2, 2) + 1], 3, 2, 2, torch.device("cpu"))
    with pytest.raises(ValueError, match="3 frames"):
        PathwayIndex.build([straight_pathways(4, 2, 2)], 3, 2, 2, torch.device("cpu"))
