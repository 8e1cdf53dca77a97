from __future__ import annotations

import os

# OpenMP workers that spin while waiting stall 2-thread torch badly whenever another process is
# busy on these cores (measured: 2.1 s instead of 0.12 s per step); sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Data caches of the tests go to a temporary directory, not the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SUTSKEVER_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    yield
    mp.undo()
