r"""# Exercise 5 — The power spectrum: invariant $\nu = 2$ B-functions (SOAP)

**What you will learn**: the simplest rotation-invariant products of the atomic basis, the power spectrum
of SOAP, and that it is exactly MACE's $\nu = 2$, $L = 0$ B-function of Eq. (10), with the generalized
Clebsch–Gordan coefficients reducing to $\delta_{mm'}$ up to a factor.

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
from ._check import (DTYPES, ExerciseFailure, expect_blocks, expect_close, expect_equivariant, expect_shape,
                     first_match, make_hint, run_checks)

TITLE = "Exercise 5 (power spectrum, ν = 2 invariants)"
STUDENT_FUNCTIONS = ("power_spectrum",)
META = {"kind": "exercise", "difficulty": "intermediate", "minutes": 25, "prerequisites": ("02", "03")}
NOTEBOOK_IMPORTS = ["import torch"]
HINTS = (
    "Rotating the environment multiplies each l-block of A by an orthogonal matrix, so the dot product of two "
    "l-blocks (over m) does not change: one invariant per pair of channels and per l.",
    "Block l of the last axis is A[..., l*l:(l+1)**2] (the blocks before it hold Σ_{l'<l} (2l'+1) = l² entries); "
    "keep both channel indices k and k' and put l last.",
    "torch.stack([torch.einsum('nkm,nqm->nkq', A[..., l*l:(l+1)**2], A[..., l*l:(l+1)**2]) "
    "for l in range(lmax + 1)], dim=-1)",
)
hint = make_hint(HINTS)

LMAX, K, N_ATOMS = 2, 4, 5
AXES = ("atom", "k", "k'", "l")
BLOCKS = tuple((f"l={l}", slice(l, l + 1)) for l in range(LMAX + 1))


def _features(dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(5)
    return torch.randn(N_ATOMS, K, (LMAX + 1) ** 2, dtype=torch.float64, generator=gen).to(dtype)  # [5, 4, 9]


def check(fn, verbose: bool = True):
    """Check ``fn(A, lmax) -> [N, K, K, lmax+1]`` against the CG form, the package's B-functions, invariance."""

    def cg_form(A):  # p_l = sqrt(2l+1) Σ_{mm'} C^{00}_{lm,lm'} A_klm A_k'lm' with the package's coefficients
        p = []
        for l in range(LMAX + 1):
            C = clebsch_gordan(l, l, 0, dtype=A.dtype)[:, :, 0]  # [2l+1, 2l+1]
            block = A[..., l * l : (l + 1) ** 2]
            p.append(math.sqrt(2 * l + 1) * torch.einsum("ab,nka,nqb->nkq", C, block, block))
        return torch.stack(p, dim=-1)

    def step_value(dtype):
        def step():
            A = _features(dtype)
            out = fn(A, LMAX)
            expect_shape(out, (A.shape[0], K, K, LMAX + 1), "the power spectrum", AXES)
            ref = cg_form(A)
            if dtype == torch.float64 and out.dtype == dtype:
                dims = torch.tensor([2 * l + 1 for l in range(LMAX + 1)], dtype=A.dtype)
                first_match(out, [
                    (ref / dims, "normalisation", "this is the mean over m; the power spectrum is the sum over m"),
                    (ref / dims.sqrt(), "normalisation", "block l is 1/sqrt(2l+1) too small: p_l = Σ_m A_klm A_k'lm, "
                     "which is sqrt(2l+1) times the Clebsch–Gordan contraction C^{00}_{lm,lm'}"),
                ])
                if not torch.allclose(out, ref, rtol=1e-8, atol=1e-10):
                    for l in range(LMAX + 1):  # name the first l whose invariants are not invariant
                        try:
                            expect_equivariant(lambda a: fn(a, LMAX)[..., l], (A,), ("0e+1o+2e",), "0e",
                                               tests=("rotation", "reflection"))
                        except ExerciseFailure as err:
                            raise ExerciseFailure("equivariance", f"p[..., l={l}] is not invariant (sum over m "
                                                  f"of the products of one l-block, A[..., {l * l}:{(l + 1) ** 2}]):"
                                                  f"\n       {err.message}") from None
                    expect_blocks(out, ref, BLOCKS, "the power spectrum (last axis l)")
            return expect_close(out, ref, f"the power spectrum ({dtype})", axes=AXES)
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
