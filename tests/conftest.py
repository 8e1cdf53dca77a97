from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Data caches of the tests go to a temporary directory, not the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SUTSKEVER_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    yield
    mp.undo()
