import importlib.util
import os

import pytest


@pytest.fixture(scope="session")
def have_torch():
    """Whether torch can be compared against; its absence fails under
    NBLOSS_REQUIRE_COMPARE=1 (set by .ci/run) instead of skipping quietly."""
    if importlib.util.find_spec("torch") is not None:
        return True
    if os.environ.get("NBLOSS_REQUIRE_COMPARE") == "1":
        raise RuntimeError("NBLOSS_REQUIRE_COMPARE=1 but torch is not installed")
    return False
