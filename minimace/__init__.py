"""minimace — a small, readable reference implementation of MACE (Batatia et al., NeurIPS 2022).

Stages (one module each): ``so3`` → ``radial`` / ``one_particle`` → ``atomic_basis`` → ``symmetric``
→ ``message`` / ``update`` / ``readout`` → ``model``; then ``train``, ``calculator``, ``interop``, ``cli``.
See docs/ARCHITECTURE.md.
"""

from . import so3, testing
from .interop import from_mace_torch, from_mace_torch_file
from .model import MACE
from .so3 import (
    Irreps,
    clebsch_gordan,
    irreps_D,
    random_O3,
    random_rotation,
    spherical_harmonics,
    wigner_3j,
    wigner_D,
)

__version__ = "0.1.0"
__all__ = [
    "MACE",
    "Irreps",
    "clebsch_gordan",
    "from_mace_torch",
    "from_mace_torch_file",
    "irreps_D",
    "random_O3",
    "random_rotation",
    "so3",
    "spherical_harmonics",
    "testing",
    "wigner_3j",
    "wigner_D",
    "__version__",
]
