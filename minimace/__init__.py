"""minimace — a small, readable reference implementation of MACE (Batatia et al., NeurIPS 2022).

Stages (one module each): ``so3`` → ``radial`` / ``one_particle`` → ``atomic_basis`` → ``symmetric``
→ ``message`` / ``update`` / ``readout`` → ``model``; then ``train``, ``calculator``, ``interop``, ``cli``.
"""

from .so3 import Irreps

__version__ = "0.1.0"
__all__ = ["Irreps", "__version__"]
