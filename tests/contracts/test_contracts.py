"""Each shared fact is declared once, in contracts/: the packages import it and no second literal exists."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.conditions import CONDITION_NAMES
from contracts.jobs import FINISHED_JOB_STATUSES, JOB_TRANSITIONS, JobStatus
from contracts.manifest import ManifestLine
from contracts.model_dir import model_checksum
from contracts.sampler import SamplerSpec

ROOT = Path(__file__).resolve().parents[2]
# Every package of the service except contracts/ itself (tests may spell facts out to check them).
SCANNED = (
    "api",
    "worker",
    "store",
    "cli",
    "generator",
    "filter",
    "classify",
    "ingest",
    "quality",
    "training",
)
COPIES = {
    "condition names": r"""["']class_label["'],\s*["']text["'],\s*["']image_prior["'],\s*["']motion_field""",
    "sampler names": r"""["']ddim["'],\s*["']dpmsolver\+\+["'],\s*["']unipc["']""",
    "sampler step bound": r"""STEPS\s*=\s*999\b|le\s*=\s*999\b""",
    "job statuses": r"""\bqueued\s*=\s*["']queued["']""",
    "model card file name": r"""["']ctrlgenaug_model\.json["']""",
    "finished job statuses": r"""[(\[{]\s*["']succeeded["'],\s*["']failed["'],\s*["']cancelled["']""",
}


def test_no_shared_fact_is_spelled_out_twice() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {fact}"
        for package in SCANNED
        for path in sorted((ROOT / package).rglob("*.py"))
        for fact, pattern in COPIES.items()
        if re.search(pattern, path.read_text(encoding="utf-8"))
    ]
    assert found == [], (
        "a copy of a fact that contracts/ declares; import it from contracts.conditions, contracts.sampler "
        f"or contracts.jobs instead: {found}"
    )


def test_the_packages_use_the_contracts() -> None:
    from api.schemas import SamplerIn
    from ingest.manifest import ClipRecord
    from store import datasets, registry
    from store.models import FINISHED_JOB_STATUSES as STORE_FINISHED
    from store.models import JobStatus as StoreJobStatus

    assert issubclass(SamplerIn, SamplerSpec)
    assert registry.CONDITION_NAMES is CONDITION_NAMES
    assert StoreJobStatus is JobStatus and STORE_FINISHED is FINISHED_JOB_STATUSES
    assert datasets.ManifestLine is ManifestLine and issubclass(ClipRecord, ManifestLine)
    assert registry.model_checksum is model_checksum


def test_generator_runs_the_api_spec() -> None:
    pytest.importorskip("torch")
    from generator import conditions, model_info, sampling

    assert sampling.SamplerSettings is SamplerSpec
    assert conditions.CONDITION_NAMES is CONDITION_NAMES
    assert model_info.model_checksum is model_checksum


def test_api_and_contracts_import_without_torch() -> None:
    code = "import sys, contracts.sampler, contracts.jobs, api.main; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"name": "unipc", "eta": 0.5}, "eta applies to ddim only"),
        ({"name": "dpmsolver++", "eta": 0.1}, "eta applies to ddim only"),
        ({"steps": 1000}, "less than or equal to 999"),
        ({"steps": True}, "not a boolean"),
        ({"guidance_scale": float("nan")}, "finite number"),
        ({"guided_conditions": ["mood"]}, "'motion_field'"),
        ({"seed": 1}, "Extra inputs are not permitted"),
    ],
)
def test_sampler_spec_refuses(body: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        SamplerSpec.model_validate(body)


def test_sampler_spec_records_the_conditions_it_guides() -> None:
    spec = SamplerSpec.model_validate({"name": "ddim", "eta": 0.3, "guided_conditions": ["text"]})
    assert spec.to_json() == {
        "name": "ddim",
        "steps": 200,
        "guidance_scale": 7.5,
        "eta": 0.3,
        "guided_conditions": ["text"],
    }
    assert SamplerSpec().guided == CONDITION_NAMES


def test_finished_statuses_are_the_ones_without_moves() -> None:
    assert FINISHED_JOB_STATUSES == {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled}
    assert set(JOB_TRANSITIONS) == set(JobStatus)
    assert all(JobStatus.failed in JOB_TRANSITIONS[s] for s in set(JobStatus) - FINISHED_JOB_STATUSES)


@pytest.mark.parametrize(
    ("names", "error"),
    [([], "at least one class"), (["a", ""], "non-empty strings"), (["a", "b", "a"], "must be unique")],
)
def test_a_model_card_breaking_the_class_name_rule_is_not_registered(
    names: list[str], error: str, tmp_path: Path
) -> None:
    from store.registry import MODEL_CARD, read_model_card

    card = {"name": "m", "version": "1", "num_frames": 8, "height": 32, "width": 32, "conditions": []}
    (tmp_path / MODEL_CARD).write_text(json.dumps({**card, "class_names": names}))
    with pytest.raises(ValueError, match=error):
        read_model_card(tmp_path)
