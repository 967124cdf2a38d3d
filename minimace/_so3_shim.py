"""TEMPORARY: spherical harmonics and Wigner-3j until ``minimace.so3`` provides them (to be deleted)."""

import torch

try:
    from .so3 import spherical_harmonics, wigner_3j  # noqa: F401
except ImportError:  # pragma: no cover - temporary fallback
    from e3nn import o3 as _o3

    def spherical_harmonics(lmax, vectors, normalize=True):
        return _o3.spherical_harmonics(list(range(lmax + 1)), vectors, normalize=normalize, normalization="component")

    def wigner_3j(l1, l2, l3, dtype=torch.float64, device=None):
        return _o3.wigner_3j(l1, l2, l3, dtype=dtype, device=device)

