r"""# Exercise 5 — The power spectrum: invariant $\nu = 2$ B-functions (SOAP)

**What you will learn**: the simplest rotation-invariant products of the atomic basis, the power spectrum
of SOAP, and that it is exactly MACE's $\nu = 2$, $L = 0$ B-function of Eq. (10), with the generalized
Clebsch–Gordan coefficients reducing to $\delta_{mm'}$ up to a factor.

**Prerequisites**: notebook 03 (products and B-functions); exercise 4.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697), Eq. (9)–(10); Bartók, Kondor, Csányi, PRB 87, 184115
(2013) (SOAP); Drautz (2019), Eq. (27)–(28).

## The task

Write `power_spectrum(A, lmax)` for an atomic basis `A` `[N, K, (lmax+1)**2]` (irreps
$0e + 1o + 2e + \dots$ on the last axis, $m = -l..l$ inside each block of $2l + 1$ entries) returning
`[N, K, K, lmax+1]`

$$ p_{i,kk'l} = \sum_{m=-l}^{l} A_{i,klm}\, A_{i,k'lm} . $$

Each $p_{i,kk'l}$ is invariant: rotating the environment multiplies the block $l$ of $A$ by an orthogonal
Wigner matrix $D^l(R)$, and $\sum_m$ is a dot product.

The checker compares with the Clebsch–Gordan form $\sqrt{2l+1}\sum_{mm'} C^{00}_{lm,lm'} A_{klm} A_{k'lm'}$,
with the package's $\nu = 2$, $L = 0$ B-functions (`coupling_basis`, `b_functions`), and runs
`assert_equivariant` (the output must be invariant under rotations and reflections).
"""

from __future__ import annotations

import math

import torch

from ..so3 import clebsch_gordan
from ..symmetric import b_functions, coupling_basis
from ._check import DTYPES, ExerciseFailure, expect_close, expect_equivariant, expect_shape, run_checks

TITLE = "Exercise 5 (power spectrum, ν = 2 invariants)"
STUDENT_FUNCTION = "power_spectrum"
NOTEBOOK_IMPORTS = ["import torch"]
HINT = "block l of the last axis is A[..., l*l : (l+1)**2]; torch.einsum('nkm,nqm->nkq', ...) for each l, then stack"
NOTES = r"""**Line ↔ equation**: `block` is $A_{i,k l m}$ for one $l$ (`[N, K, 2l+1]`, the slice $l^2 \dots (l+1)^2 - 1$);
the `einsum` sums over $m$ and keeps both channels $k, k'$; `torch.stack(..., dim=-1)` puts $l$ last."""

LMAX, K = 2, 3


def power_spectrum(A: torch.Tensor, lmax: int) -> torch.Tensor:
    """p_{i,kk'l} = Σ_m A_{i,klm} A_{i,k'lm}: ``A`` [N, K, (lmax+1)**2] -> [N, K, K, lmax+1]."""
    # BEGIN SOLUTION
    p = []
    for l in range(lmax + 1):
        block = A[..., l * l : (l + 1) ** 2]  # [N, K, 2l+1]
        p.append(torch.einsum("nkm,nqm->nkq", block, block))  # [N, K, K]
    return torch.stack(p, dim=-1)  # [N, K, K, lmax+1]
    # END SOLUTION


def reference(A: torch.Tensor, lmax: int) -> torch.Tensor:
    """Clebsch–Gordan form: p_l = sqrt(2l+1) Σ_{mm'} C^{00}_{lm,lm'} A_{klm} A_{k'lm'}."""
    p = []
    for l in range(lmax + 1):
        C = clebsch_gordan(l, l, 0, dtype=A.dtype)[:, :, 0]  # [2l+1, 2l+1]
        block = A[..., l * l : (l + 1) ** 2]
        p.append(math.sqrt(2 * l + 1) * torch.einsum("ab,nka,nqb->nkq", C, block, block))
    return torch.stack(p, dim=-1)


def _features(dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(5)
    return torch.randn(6, K, (LMAX + 1) ** 2, dtype=torch.float64, generator=gen).to(dtype)  # [N, K, 9]


def _diagnose(out: torch.Tensor, A: torch.Tensor) -> None:
    ref = reference(A, LMAX)
    close = lambda a, b: torch.allclose(a, b, rtol=1e-8, atol=1e-10)  # noqa: E731
    dims = torch.tensor([2 * l + 1 for l in range(LMAX + 1)], dtype=A.dtype)
    if close(out, ref / dims):
        raise ExerciseFailure("normalisation", "this is the mean over m; the power spectrum is the sum over m")
    if close(out, ref / dims.sqrt()):
        raise ExerciseFailure("normalisation", "block l is 1/sqrt(2l+1) too small: p_l = Σ_m A_klm A_k'lm, "
                              "which is sqrt(2l+1) times the Clebsch–Gordan contraction C^{00}_{lm,lm'}")


def check(fn, verbose: bool = True):
    """Check ``fn(A, lmax) -> [N, K, K, lmax+1]`` against the CG form, the package's B-functions, invariance."""

    def step_value(dtype):
        def step():
            A = _features(dtype)
            out = fn(A, LMAX)
            expect_shape(out, (A.shape[0], K, K, LMAX + 1), "the power spectrum")
            if dtype == torch.float64 and out.dtype == dtype:
                _diagnose(out, A)
                if not torch.allclose(out, reference(A, LMAX), rtol=1e-8, atol=1e-10):
                    expect_equivariant(lambda a: fn(a, LMAX), (A,), ("0e+1o+2e",), "0e",
                                       tests=("rotation", "reflection"))
            return expect_close(out, reference(A, LMAX), f"the power spectrum ({dtype})")
        return step

    def step_b_functions():
        # the package's ν = 2, L = 0 B-functions of one channel are the diagonal p_{kkl}, one path per l
        A = _features(torch.float64)
        p = fn(A, LMAX)  # [N, K, K, lmax+1]
        U = coupling_basis(LMAX, 2, 0, 1)  # [1, d, d, n_paths]
        B = b_functions(A, U)[..., 0, :]  # [N, K, n_paths]
        diag = torch.diagonal(p, dim1=1, dim2=2).movedim(-1, 1)  # [N, K, lmax+1]
        X, Y = diag.reshape(-1, LMAX + 1), B.reshape(-1, B.shape[-1])
        M = torch.linalg.lstsq(X, Y).solution  # B = p · M for one fixed matrix M
        if B.shape[-1] != LMAX + 1 or not torch.allclose(X @ M, Y, rtol=1e-8, atol=1e-10):
            raise ExerciseFailure("value", "p_{kkl} do not span the package's ν = 2, L = 0 B-functions")
        if not torch.allclose(M, torch.diag(torch.diagonal(M)), atol=1e-10):
            raise ExerciseFailure("value", "p_{kkl} mix the degrees l of the package's B-functions")
        return "B_l = c_l p_kkl, c_l = " + ", ".join(f"{c:.4f}" for c in torch.diagonal(M).tolist())

    def step_invariant():
        return expect_equivariant(lambda a: fn(a, LMAX), (_features(torch.float64),), ("0e+1o+2e",), "0e",
                                  tests=("rotation", "reflection"))

    steps = [(f"values in {str(d)[6:]}", step_value(d)) for d in DTYPES]
    steps.append(("same as the package's ν = 2, L = 0 B-functions", step_b_functions))
    steps.append(("invariance (rotations and reflections)", step_invariant))
    return run_checks(TITLE, steps, verbose)


# plausible wrong answers, used by the tests as negative controls
def wrong_block_slices(A, lmax):
    """Slices block l as ``l : 3l+1`` (forgets that the blocks before it have Σ (2l'+1) = l² entries)."""
    blocks = [A[..., l : 3 * l + 1] for l in range(lmax + 1)]
    return torch.stack([torch.einsum("nkm,nqm->nkq", b, b) for b in blocks], dim=-1)


def wrong_mean_over_m(A, lmax):
    """Averages over m instead of summing."""
    return reference(A, lmax) / torch.tensor([2 * l + 1 for l in range(lmax + 1)], dtype=A.dtype)


def wrong_sum_first(A, lmax):
    """Sums the components first, then squares: (Σ_m A_klm)(Σ_m A_k'lm), not invariant."""
    blocks = [A[..., l * l : (l + 1) ** 2].sum(-1) for l in range(lmax + 1)]
    return torch.stack([b[:, :, None] * b[:, None, :] for b in blocks], dim=-1)


def wrong_diagonal_only(A, lmax):
    """Only k = k' (misses the cross-channel products)."""
    return torch.diagonal(reference(A, lmax), dim1=1, dim2=2)


WRONG_ANSWERS = {"block slices": wrong_block_slices, "mean over m": wrong_mean_over_m,
                 "sum then square": wrong_sum_first, "diagonal only": wrong_diagonal_only}
