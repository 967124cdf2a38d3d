"""Symmetry toolkit: irreps, real spherical harmonics, Clebsch–Gordan / Wigner-3j, Wigner D, random O(3)."""

from .irreps import Irrep, Irreps, MulIrrep
from .spherical_harmonics import (
    spherical_harmonics,
    sympy_real_spherical_harmonic,
    sympy_textbook_real_spherical_harmonic,
)
from .wigner import (
    clebsch_gordan,
    irreps_D,
    random_O3,
    random_rotation,
    real_to_complex_basis,
    wigner_3j,
    wigner_D,
)

__all__ = [
    "Irrep",
    "Irreps",
    "MulIrrep",
    "spherical_harmonics",
    "sympy_real_spherical_harmonic",
    "sympy_textbook_real_spherical_harmonic",
    "clebsch_gordan",
    "wigner_3j",
    "wigner_D",
    "irreps_D",
    "random_rotation",
    "random_O3",
    "real_to_complex_basis",
]
