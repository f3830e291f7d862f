"""Every operation of the OpenAPI document is described by its route's docstring and has a clean id.

A route added without a docstring or with a name FastAPI would mangle fails here, naming the operation.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from api.main import create_app
from store.settings import Settings

EXAMPLE = "\n\nExample request:"
CLEAN_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
GENERATED_ID = re.compile(r"_v1_|_(get|post|put|patch|delete)$")  # FastAPI's `<name>_<path>_<method>`


@pytest.fixture(scope="module")
def operations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("openapi")))
    return {
        f"{method.upper()} {path}": operation
        for path, methods in app.openapi()["paths"].items()
        for method, operation in methods.items()
    }


def test_every_operation_is_described_by_its_route_docstring(operations: dict[str, dict[str, Any]]) -> None:
    undescribed = [name for name, op in operations.items() if not op.get("description", "").split(EXAMPLE)[0]]
    assert undescribed == [], (
        f"operations without a description: {undescribed}; write the route function's docstring (FastAPI "
        "makes it the description; api/openapi_docs.py OPERATIONS holds only the example request)"
    )


def test_every_operation_id_is_clean_and_unique(operations: dict[str, dict[str, Any]]) -> None:
    ids = {name: op.get("operationId", "") for name, op in operations.items()}
    unclean = {name: i for name, i in ids.items() if not CLEAN_ID.match(i) or GENERATED_ID.search(i)}
    assert unclean == {}, (
        f"operation ids generated from the path and method: {unclean}; the id is the route function's name "
        "(api.openapi_docs.operation_id), so name the function for what it does (`submit_job`), or pass "
        "operation_id= to the route decorator"
    )
    repeated = sorted(i for i in set(ids.values()) if list(ids.values()).count(i) > 1)
    assert repeated == [], (
        f"operation ids used by more than one operation: {repeated}; rename a route function"
    )


def test_docs_module_holds_examples_only() -> None:
    from api.openapi_docs import Operation

    assert list(Operation.__dataclass_fields__) == ["example", "body_example"]
