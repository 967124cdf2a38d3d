r"""# Exercise 9 — One message $m_i$ from B-features and weights

**What you will learn**: how MACE turns the B-features of every correlation order $\nu$ into the message of an
atom: one learnable weight per (element of the centre atom, coupling path $\eta$, channel $k$), the same for
every $M$ (so the message stays equivariant), and no mixing of the channels $k$.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697 v2), equation (11),
$m_{i,kLM} = \sum_\nu \sum_\eta W_{z_i kL, \eta}^{(\nu)} B^{(\nu)}_{i, \eta k LM}$, with the B-features of
equation (10).

## The task

For one output irrep $L$ (here `1o`, $2L + 1 = 3$ components), write `message(B, W, species)` where

- `B[nu - 1]` is $B^{(\nu)}$ with shape `[N, K, 2L+1, n_paths(ν)]` (atom $i$, channel $k$, component $M$,
  coupling path $\eta$), for $\nu = 1, \dots, \nu_\max$;
- `W[nu - 1]` is $W^{(\nu)}$ with shape `[n_elements, n_paths(ν), K]` (element, path, channel);
- `species` `[N]` holds the element index $z_i$ of every atom (0 or 1 here);

and return $m_{i,kM}$ with shape `[N, K, 2L+1]`.

The checker builds $B$ from a random atomic basis $A$ with `minimace.symmetric.b_functions` and compares your
message with the package's `minimace.message.Contraction` (which forms $B$ from the distinct entries of the product
basis only) given the same weights; it then checks that the message rotates as `1o` when $A$ rotates. Its inputs have
$N = 7$ atoms, $K = 4$ channels and 3 components, so an answer with two axes swapped is caught.
"""

from __future__ import annotations

import torch

from ..message import Contraction
from ..symmetric import b_functions
from ._check import (DTYPES, expect_close, expect_equivariant, expect_shape, first_match, make_hint,
                     run_checks)

TITLE = "Exercise 9 (the message, B-features × weights)"
STUDENT_FUNCTIONS = ("message",)
META = {"kind": "exercise", "difficulty": "intermediate", "minutes": 25, "prerequisites": ("03", "05")}
NOTEBOOK_IMPORTS = ["import torch"]
HINTS = (
    "The message is linear in the B-features: each order ν contributes a weighted sum over its paths η, the weight "
    "depends on the centre atom's element and on the channel k, never on M; the orders are added.",
    "W[nu - 1][species] picks the weights of each atom's element: [N, n_paths, K]; contract its path index with the "
    "last axis of B[nu - 1], keep the atom, channel and M axes (torch.einsum).",
    "sum(torch.einsum('nkmp,npk->nkm', B_nu, W_nu[species]) for B_nu, W_nu in zip(B, W))",
)
hint = make_hint(HINTS)

LMAX, IRREP, CORRELATION, N_ATOMS, K, N_ELEMENTS = 2, "1o", 3, 7, 4, 2
AXES = ("atom", "k", "M")


def _inputs(dtype: torch.dtype):
    """``(A, species, contraction)``: a random atomic basis [N, K, (lmax+1)²], elements, the package's message (equation 11)."""
    gen = torch.Generator().manual_seed(9)
    A = torch.randn(N_ATOMS, K, (LMAX + 1) ** 2, dtype=torch.float64, generator=gen)
    species = torch.tensor([0, 1, 1, 0, 1, 0, 1])
    with torch.random.fork_rng():
        torch.manual_seed(9)
        contraction = Contraction(LMAX, IRREP, CORRELATION, N_ELEMENTS, K).double()
    return A.to(dtype), species, contraction.to(dtype)


def check(fn, verbose: bool = True):
    """Check ``fn(B, W, species) -> [N, K, 2L+1]`` against ``minimace.message.Contraction`` and for equivariance."""

    def features(A, contraction):
        return [b_functions(A, contraction.U(nu).to(A.dtype)) for nu in range(1, CORRELATION + 1)]

    def weights(contraction):
        return [w.detach().clone() for w in contraction.weights]

    def step_value(dtype):
        def step():
            A, species, contraction = _inputs(dtype)
            B, W = features(A, contraction), weights(contraction)
            out = fn(B, W, species)
            with torch.no_grad():
                ref = contraction(A, species).reshape(N_ATOMS, K, -1)
            expect_shape(out, tuple(ref.shape), "the message", AXES)
            if dtype == torch.float64 and out.dtype == dtype:
                terms = [torch.einsum("nkmp,npk->nkm", b, w[species]) for b, w in zip(B, W)]  # one per ν
                element0 = sum(torch.einsum("nkmp,pk->nkm", b, w[0]) for b, w in zip(B, W))
                first_atom = int((species != 0).nonzero()[0])
                first_match(out, [
                    (element0, "convention", f"every atom uses the weights of element 0 (atom {first_atom} is "
                     "element 1): index W by the centre atom's element, W[nu - 1][species]"),
                    (sum(terms[1:]), "value", "the ν = 1 term is missing: the sum runs over ν = 1 .. ν_max"),
                    (terms[-1], "value", f"only the highest order ν = {CORRELATION} is there: add every ν"),
                    (sum(terms[:-1]), "value", f"the ν = {CORRELATION} term is missing"),
                    (sum(torch.einsum("nkmp,npq->nqm", b, w[species]) for b, w in zip(B, W)), "value",
                     "the channels are mixed (a sum over k): equation (11) keeps each channel k separately"),
                ])
                if not torch.allclose(out, ref, rtol=1e-8, atol=1e-10):  # an unknown mistake: is it equivariant?
                    W_ = weights(contraction)
                    expect_equivariant(lambda a: fn(features(a, contraction), W_, species), (A,), ("0e+1o+2e",),
                                       IRREP, tests=("rotation", "reflection"))
            return expect_close(out, ref, f"the message ({dtype}) vs minimace.message.Contraction", axes=AXES)
        return step

    def step_equivariant():
        A, species, contraction = _inputs(torch.float64)
        W = weights(contraction)
        return expect_equivariant(lambda a: fn(features(a, contraction), W, species), (A,), ("0e+1o+2e",), IRREP,
                                  tests=("rotation", "reflection"))

    steps = [(f"values in {str(d)[6:]}", step_value(d)) for d in DTYPES]
    steps.append(("rotates as 1o when A rotates", step_equivariant))
    return run_checks(TITLE, steps, verbose)
