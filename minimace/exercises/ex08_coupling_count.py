r"""# Exercise 8 — How many B-functions? Counting the independent couplings for $(\nu, l_\max, L)$

**What you will learn**: why the number of B-functions of correlation order $\nu$ is fixed by representation
theory, how to count it with nothing but integers (weights $m$), and why the product basis being *symmetric*
(the $\nu$ factors are the same $A_i$) removes most of the couplings a tensor product would have.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697 v2), equation (10) (the generalized Clebsch–Gordan
coefficients $C^{LM}_{\eta, lm}$ and their index $\eta$); Dusson et al., *J. Comput. Phys.* 454, 110946 (2022)
(the count of independent ACE couplings).

## The task

One channel of the atomic basis is a vector of $V = V_0 \oplus V_1 \oplus \dots \oplus V_{l_\max}$
(component $(l, m)$, parity $(-1)^l$). A B-function of order $\nu$ is an equivariant linear map from the
products $A_{l_1 m_1} \cdots A_{l_\nu m_\nu}$ to an output $(L, \pi)$; since the factors commute, the products
span the *symmetric* power $\mathrm{Sym}^\nu V$, whose basis is the **multisets** of $\nu$ components.

Write `count_couplings(nu, lmax, L, parity)` returning the number of independent couplings (an `int`):

1. list the multisets of $\nu$ components $(l, m)$ (`itertools.combinations_with_replacement`);
2. keep those of parity $(-1)^{\sum l} = $ `parity`;
3. let $n(w)$ be how many have total weight $\sum m = w$; the multiplicity of $V_L$ is $n(L) - n(L+1)$
   (each copy of $V_{L'}$ with $L' \ge w$ has exactly one state of weight $w$).

Do not call `minimace.symmetric`: the checker compares with `minimace.symmetric.count_couplings` (exact integer
counting) and, for the small cases, with the number of columns of `coupling_basis` (a Gram–Schmidt rank).
"""

from __future__ import annotations

import itertools

from ..symmetric import count_couplings as _package_count
from ..symmetric import coupling_basis
from ._check import ExerciseFailure, make_hint, run_checks

TITLE = "Exercise 8 (counting the couplings)"
STUDENT_FUNCTIONS = ("count_couplings",)
META = {"kind": "exercise", "difficulty": "intermediate", "minutes": 30, "prerequisites": ("03",)}
NOTEBOOK_IMPORTS = ["import itertools", "", "import torch"]
HINTS = (
    "A state of weight M = w appears once in every irrep V_L' with L' ≥ |w|: counting the states of weight L and "
    "of weight L + 1 and subtracting leaves the number of copies of V_L exactly.",
    "components = [(l, m) for l in range(lmax + 1) for m in range(-l, l + 1)]; "
    "itertools.combinations_with_replacement(components, nu) gives the multisets (not itertools.product).",
    "keep = [c for c in combinations_with_replacement(components, nu) if (-1) ** sum(l for l, _ in c) == parity]; "
    "n = lambda w: sum(sum(m for _, m in c) == w for c in keep); return n(L) - n(L + 1)",
)
hint = make_hint(HINTS)

#: (ν, l_max, L, parity): every case named in a failure
CASES = ((1, 2, 1, -1), (2, 2, 0, 1), (2, 2, 1, 1), (2, 2, 1, -1), (2, 3, 2, 1), (3, 2, 0, 1), (3, 2, 1, -1),
         (3, 2, 3, -1), (3, 3, 2, 1), (4, 2, 0, 1))
SMALL = ((2, 2, 0, 1), (2, 2, 1, -1), (3, 2, 0, 1), (3, 1, 1, -1))  # also checked against coupling_basis


def _case(c) -> str:
    nu, lmax, L, parity = c
    return f"(ν={nu}, l_max={lmax}, L={L}, parity {'+1' if parity > 0 else '-1'})"


def check(fn, verbose: bool = True):
    """Check ``fn(nu, lmax, L, parity) -> int`` against the package's exact count and Gram–Schmidt rank."""

    def ordered_count(nu, lmax, L, parity):  # multiplicity in the tensor power V^{⊗ν}: coupling paths
        total = 0
        for ls in itertools.product(range(lmax + 1), repeat=nu):
            if (-1) ** sum(ls) != parity:
                continue
            ks = {ls[0]: 1}  # intermediate degree -> number of paths
            for l in ls[1:]:
                new = {}
                for k, n in ks.items():
                    for k2 in range(abs(k - l), k + l + 1):
                        new[k2] = new.get(k2, 0) + n
                ks = new
            total += ks.get(L, 0)
        return total

    def step_counts():
        answers = {}
        for c in CASES:
            got = fn(*c)
            if isinstance(got, bool) or not isinstance(got, (int, float)) or not float(got).is_integer():
                raise ExerciseFailure("value", f"for {_case(c)} the count should be an integer, got {got!r}")
            answers[c] = int(got)
        right = {c: _package_count(c[1], c[0], c[2], c[3]) for c in CASES}
        wrong = [c for c in CASES if answers[c] != right[c]]
        if not wrong:
            return f"{len(CASES)} cases, from {min(right.values())} to {max(right.values())} couplings"
        first = wrong[0]
        where = f"for {_case(first)} you return {answers[first]}, the package counts {right[first]}"
        # which known mistake explains every answer? (tested on all cases at once, so they cannot be confused)
        mistakes = [
            ("convention", lambda nu, lmax, L, p: ordered_count(nu, lmax, L, p),
             "your counts are those of ordered tuples (the tensor power V^⊗ν): the factors of the product basis "
             "commute, count multisets (combinations_with_replacement, not product)"),
            ("convention", lambda nu, lmax, L, p: _package_count(lmax, nu, L, p) + _package_count(lmax, nu, L, -p),
             "your counts include both parities: keep only the multisets with (-1)^(Σl) = parity"),
            ("convention", lambda nu, lmax, L, p: _package_count(lmax, nu, L, (-1) ** L),
             "your counts are those for parity (-1)^L: use the parity argument, (-1)^(Σl) of the multiset"),
            ("value", lambda nu, lmax, L, p: sum(_package_count(lmax, nu, Lp, p) for Lp in range(L, nu * lmax + 1)),
             "your counts are n(L), the number of states of weight L of all irreps L' ≥ L: subtract n(L + 1)"),
        ]
        for kind, count, why in mistakes:
            if all(count(*c) == answers[c] for c in CASES):
                raise ExerciseFailure(kind, f"{where}; {why}")
        raise ExerciseFailure("value", f"{where} (wrong in {len(wrong)} of {len(CASES)} cases)")

    def step_rank():
        for c in SMALL:
            nu, lmax, L, parity = c
            rank = coupling_basis(lmax, nu, L, parity).shape[-1]  # independent tensors found by Gram–Schmidt
            if int(fn(*c)) != rank:
                raise ExerciseFailure("value", f"for {_case(c)} you count {fn(*c)}, coupling_basis has {rank} "
                                      "independent columns")
        return "agrees with the rank of coupling_basis on " + ", ".join(_case(c) for c in SMALL)

    return run_checks(TITLE, [("counts vs minimace.symmetric.count_couplings", step_counts),
                              ("counts vs the rank of coupling_basis", step_rank)], verbose)
