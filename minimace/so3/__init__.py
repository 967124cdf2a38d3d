"""Symmetry toolkit: irreps, real spherical harmonics, Clebsch–Gordan / Wigner-3j, Wigner D, random O(3)."""

from .irreps import Irrep, Irreps, MulIrrep

__all__ = ["Irrep", "Irreps", "MulIrrep"]
