"""Verification of interatomic potentials.

- ``assert_equivariant`` and friends (:mod:`minimace.testing.equivariance`): the symmetries of any function
  of tensors — a stage of MACE, or the whole model on the batch dict.
- ``verify`` (:mod:`minimace.testing.verify`): the equivariance and physics suite for *any* potential (an ASE
  calculator, a minimace model, or a plain function), with a report table and plot.
- ``pytest -p minimace.testing.plugin``: a ``verify`` fixture for the tests of another project.
"""

from .equivariance import (
    ATOM_INDEX,
    ATOMS,
    BATCH_ATOMS,
    BATCH_KINDS,
    DEFAULT_TOLERANCES,
    MATRIX,
    MODEL_OUTPUT_ATOMS,
    MODEL_OUTPUT_KINDS,
    POINTS,
    VECTORS,
    EquivarianceReport,
    assert_equivariant,
    assert_model_equivariant,
    permutation_within_graphs,
    permute,
    transform,
)
from .verify import CHECKS, TOLERANCES, CheckResult, Report, VerificationError, verify

__all__ = [
    "ATOM_INDEX", "ATOMS", "BATCH_ATOMS", "BATCH_KINDS", "DEFAULT_TOLERANCES", "MATRIX", "MODEL_OUTPUT_ATOMS",
    "MODEL_OUTPUT_KINDS", "POINTS", "VECTORS", "EquivarianceReport", "assert_equivariant",
    "assert_model_equivariant", "permutation_within_graphs", "permute", "transform",
    "CHECKS", "TOLERANCES", "CheckResult", "Report", "VerificationError", "verify",
]
