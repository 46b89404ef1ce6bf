import warnings

import pytest

torch = pytest.importorskip("torch")
warnings.filterwarnings("ignore", message=".*NumPy.*")
# Tiny CPU kernels: one thread avoids OpenMP spin under load on small CI machines.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
    # A leaked trace would poison every later test: fail loudly instead.
    from gradlint.runtime import hooks

    assert hooks.ACTIVE is None, "a gradlint trace was left running"
