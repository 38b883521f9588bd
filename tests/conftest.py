"""Suite-wide ordering: the slow end-to-end tests start first.

`python3 -m pytest -q -n auto --dist loadfile --no-loadscope-reorder` (README) hands test files to workers in
collection order (without the flag xdist puts the files with the most tests first); a
run whose longest files come last ends with one worker busy and the others idle. A test marked
`slow(minutes=M)` is scheduled before every other test, the largest M first (a bare `slow` counts as 1),
so the long files run while the short ones fill the other workers.
"""

from __future__ import annotations

import pytest


def _minutes(item: pytest.Item) -> float:
    mark = item.get_closest_marker("slow")
    if mark is None:
        return 0.0
    return float(mark.kwargs.get("minutes", 1))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Stable: within the same estimate, the collection order (and so every worker's order) is kept.
    items.sort(key=lambda item: -_minutes(item))
