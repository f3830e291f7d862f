"""Suite-wide pytest configuration: GPU tests run only where CUDA exists; torch uses few threads.

`tests/support/` holds plain modules shared by several test folders (the real-server fixtures in
`service_fixtures.py`); it goes on `sys.path` here, before any folder's conftest imports from it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

SUPPORT = str(Path(__file__).resolve().parent / "support")
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-chaos", action="store_true", help="run the fault-injection (chaos) tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_chaos = pytest.mark.skip(reason="chaos tests run with `make chaos` (--run-chaos)")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
        if "chaos" in item.keywords and not config.getoption("--run-chaos"):
            item.add_marker(skip_chaos)
