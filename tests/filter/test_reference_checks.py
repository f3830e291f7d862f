"""The memorised and off_manifold checks on planted clips made from the real demo data build (real US, CT
and MR clips with patient ids and train/test splits): copies and light perturbations of training clips are
memorised, other patients' held-out clips are not; noise and constant clips are off the real manifold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from filter.core import FilterSettings, run_filter
from filter.neighbours import clip_distances, cross_patient_threshold
from filter.reference import RealReference, ReferenceIndex, ReferenceScores
from filter.settings import ReferenceSettings
from ingest.build import BuildSettings
from ingest.demo import build_demo
from quality.sources import DataBuild, load_data_build

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / ".cache" / "demo-sources"
CLASSES = ["CT", "MR", "US"]

pytestmark = pytest.mark.skipif(
    not (SOURCES / "stamps" / "invesalius-examples").exists(),
    reason="Debian demo sources not fetched (make demo-sources)",
)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> DataBuild:
    data = tmp_path_factory.mktemp("demo") / "data"
    build_demo(data, SOURCES, BuildSettings(size=64, frames=8))
    return load_data_build(data, CLASSES, 8, 64, 64)


@pytest.fixture(scope="module")
def index(build: DataBuild) -> ReferenceIndex:
    train = build.train
    reference = RealReference([r.clip_id for r in train.records], train.labels, train.clips)
    return ReferenceIndex(reference, ReferenceSettings(memorised=True, off_manifold=True))


@pytest.fixture(scope="module")
def threshold(build: DataBuild) -> float:
    clips = np.concatenate([build.train.clips, build.test.clips])
    return cross_patient_threshold(clips, build.train.patients + build.test.patients, 0.0)


def perturbed(clips: np.ndarray, kind: str) -> np.ndarray:
    wide = clips.astype(np.float64)
    if kind == "copy":
        return clips.copy()
    if kind == "noise":
        wide = wide + np.random.default_rng(0).normal(0.0, 3.0, clips.shape)
    elif kind in ("shift_x", "shift_y"):
        return np.roll(clips, 1, axis=-1 if kind == "shift_x" else -2)
    else:
        wide = wide * {"brighter": 1.05, "darker": 0.95}[kind]
    return np.clip(np.round(wide), 0, 255).astype(np.uint8)


def checks(threshold: float, **switches: bool) -> ReferenceSettings:
    return ReferenceSettings(memorised_threshold=threshold, **switches)


@pytest.mark.parametrize("kind", ["copy", "noise", "shift_x", "shift_y", "brighter", "darker"])
def test_copies_and_light_perturbations_of_training_clips_are_memorised(
    build: DataBuild, index: ReferenceIndex, threshold: float, kind: str
) -> None:
    clips = perturbed(build.train.clips, kind)
    scores = index.score(clips, build.train.labels)
    result = run_filter(
        *algorithm_1_inputs(clips), FilterSettings(), checks(threshold, memorised=True), scores
    )
    assert all(c.reason == "memorised" for c in result.clips), scores.real_distance.max()
    names = [r.clip_id for r in build.train.records]
    if kind == "copy":
        assert scores.real_clip.tolist() == names and (scores.real_distance < 1e-6).all()


def test_nearest_real_distance_is_the_quality_clip_distance(build: DataBuild, index: ReferenceIndex) -> None:
    scores = index.score(build.test.clips, build.test.labels)
    distances = clip_distances(build.test.clips, build.train.clips)
    np.testing.assert_allclose(scores.real_distance, distances.min(axis=1), rtol=1e-6)
    names = np.asarray([r.clip_id for r in build.train.records])
    assert scores.real_clip.tolist() == names[distances.argmin(axis=1)].tolist()


def test_held_out_clips_of_other_patients_are_not_memorised(
    build: DataBuild, index: ReferenceIndex, threshold: float
) -> None:
    training_patients = set(build.train.patients)
    others = [i for i, r in enumerate(build.test.records) if r.patient_id not in training_patients]
    assert others, "the demo build holds out whole patients"
    clips, labels = build.test.clips[others], build.test.labels[others]
    scores = index.score(clips, labels)
    result = run_filter(
        *algorithm_1_inputs(clips), FilterSettings(), checks(threshold, memorised=True), scores
    )
    assert not any(c.reason == "memorised" for c in result.clips)
    assert (scores.real_distance > threshold).all()


@pytest.mark.parametrize("kind", ["uniform_noise", "gaussian_noise", "constant_128", "constant_255"])
def test_noise_and_constant_clips_are_off_the_manifold(
    build: DataBuild, index: ReferenceIndex, kind: str
) -> None:
    rng = np.random.default_rng(1)
    shape = (6, *build.train.clips.shape[1:])
    if kind == "uniform_noise":
        clips = rng.integers(0, 256, shape, dtype=np.uint8)
    elif kind == "gaussian_noise":
        clips = np.clip(rng.normal(100.0, 40.0, shape), 0, 255).astype(np.uint8)
    else:
        clips = np.full(shape, int(kind.split("_")[1]), np.uint8)
    labels = np.arange(6) % len(CLASSES)
    scores = index.score(clips, labels)
    result = run_filter(*algorithm_1_inputs(clips), FilterSettings(), checks(0.0, off_manifold=True), scores)
    assert (scores.manifold_share < 0.5).all(), scores.manifold_share
    assert all(not c.kept for c in result.clips) and result.clips[0].reason == "off_manifold"


def test_every_held_out_real_clip_is_on_the_manifold(build: DataBuild, index: ReferenceIndex) -> None:
    # new patients' MR clips and the CT slices past the training ones included (default: spectrum features)
    scores = index.score(build.test.clips, build.test.labels)
    assert len(scores.manifold_share) == 10 and (scores.manifold_share >= 0.5).all(), scores.manifold_share
    result = run_filter(
        *algorithm_1_inputs(build.test.clips), FilterSettings(), checks(0.0, off_manifold=True), scores
    )
    assert not any(c.reason == "off_manifold" for c in result.clips)


def test_pixel_features_cannot_tell_a_new_patient_from_noise(build: DataBuild) -> None:
    """The measured limit that made spectrum features the default (docs/decisions.md, "Off manifold")."""
    train = build.train
    reference = RealReference([r.clip_id for r in train.records], train.labels, train.clips)
    pixels = ReferenceIndex(reference, ReferenceSettings(off_manifold=True, manifold_features="pixels"))
    share = pixels.score(build.test.clips, build.test.labels).manifold_share
    new_patients = [r.patient_id not in set(train.patients) for r in build.test.records]
    assert (share[new_patients] < 0.5).all(), share


def test_both_checks_off_is_exactly_algorithm_1(build: DataBuild, index: ReferenceIndex) -> None:
    clips = build.train.clips
    inputs = algorithm_1_inputs(clips)
    plain = run_filter(*inputs, FilterSettings())
    off = run_filter(*inputs, FilterSettings(), ReferenceSettings(), index.score(clips, build.train.labels))
    assert off.to_json() == plain.to_json() and "checks" not in off.to_json()


def test_memorised_clips_never_enter_algorithm_1() -> None:
    group = np.array([0, 0, 0, 0])
    loss = np.array([0.1, 0.2, 9.0, 0.3])
    latents = np.random.default_rng(0).normal(size=(4, 3, 4, 2, 2)).astype(np.float32)
    scores = ReferenceScores(np.array([0.5, 0.5, 0.0, 0.5]), np.array(["a", "b", "c", "d"]), np.ones(4))
    result = run_filter(group, loss, latents, FilterSettings(), checks(0.1, memorised=True), scores)
    assert [c.reason for c in result.clips][2] == "memorised"
    # without clip 2 the group mean is 0.2: clip 3 (0.3) is dropped as semantic
    assert result.clips[3].reason == "semantic" and result.clips[2].group_threshold is None
    row = result.to_json()["clips"][2]
    assert row["memorised"] is True and row["real_clip"] == "c" and row["off_manifold"] is None
    assert list(result.stage_counts()) == ["memorised", "semantic", "inner_sequence", "inter_sequence"]


def test_a_memorised_check_without_threshold_is_refused() -> None:
    scores = ReferenceScores(np.zeros(2), np.array(["a", "b"]), np.ones(2))
    latents = np.zeros((2, 2, 1), np.float32)
    with pytest.raises(ValueError, match="memorised_threshold"):
        run_filter(np.array([0, 1]), np.zeros(2), latents, None, ReferenceSettings(memorised=True), scores)


def algorithm_1_inputs(clips: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One group per clip, equal losses and the frames as latents: Algorithm 1 keeps what it can."""
    n = len(clips)
    return np.arange(n), np.zeros(n), clips.reshape(n, clips.shape[1], -1).astype(np.float32) / 255.0
