"""Teacher source of exercise 8: the solution, its notes and the wrong answers (negative controls)."""

import itertools

NOTES = r"""**Line ↔ theory**: `components` is the weight basis $(l, m)$ of $V$; `combinations_with_replacement` gives the
basis of $\mathrm{Sym}^\nu V$ (a product $A_{l_1m_1}\cdots A_{l_\nu m_\nu}$ does not depend on the order of its
factors); the parity filter keeps the subspace of parity $(-1)^{\sum l}$; `n(w)` counts its states of weight $w$,
and $n(L) - n(L+1)$ is the multiplicity of $V_L$ (one state of weight $L$ in each $V_{L'}$, $L' \ge L$). Note the
zero for $(\nu=2, L=1, +1)$: $1 \otimes 1 \to 1$ is the cross product, antisymmetric, so it vanishes on the
symmetric products $A \otimes A$."""


def count_couplings(nu: int, lmax: int, L: int, parity: int) -> int:
    """Number of independent equivariant maps Sym^ν(V_0 + ... + V_lmax) -> V_(L, parity)."""
    # BEGIN SOLUTION
    components = [(l, m) for l in range(lmax + 1) for m in range(-l, l + 1)]  # basis of V, d = (lmax+1)²
    keep = [c for c in itertools.combinations_with_replacement(components, nu)
            if (-1) ** sum(l for l, _ in c) == parity]  # multisets of parity (-1)^Σl

    def n(w):  # states of total weight Σm = w
        return sum(1 for c in keep if sum(m for _, m in c) == w)

    return n(L) - n(L + 1)
    # END SOLUTION


def _count(nu, lmax, L, parity, multisets=True, use_parity=True, subtract=True):
    components = [(l, m) for l in range(lmax + 1) for m in range(-l, l + 1)]
    pick = itertools.combinations_with_replacement if multisets else itertools.product
    keep = [c for c in (pick(components, nu) if multisets else pick(components, repeat=nu))
            if not use_parity or (-1) ** sum(l for l, _ in c) == parity]
    n = lambda w: sum(1 for c in keep if sum(m for _, m in c) == w)  # noqa: E731
    return n(L) - (n(L + 1) if subtract else 0)


def wrong_ordered(nu, lmax, L, parity):
    """itertools.product: counts the tensor power instead of the symmetric power."""
    return _count(nu, lmax, L, parity, multisets=False)


def wrong_no_parity(nu, lmax, L, parity):
    """Forgets the parity filter."""
    return _count(nu, lmax, L, parity, use_parity=False)


def wrong_no_subtraction(nu, lmax, L, parity):
    """Returns n(L): the states of weight L of every irrep L' >= L."""
    return _count(nu, lmax, L, parity, subtract=False)


def wrong_natural_parity(nu, lmax, L, parity):
    """Ignores the parity argument and uses (-1)^L."""
    return _count(nu, lmax, L, (-1) ** L)


def wrong_float(nu, lmax, L, parity):
    """Divides instead of counting (a float)."""
    return count_couplings(nu, lmax, L, parity) / 2 + 0.25


WRONG_ANSWERS = {
    "ordered tuples": (wrong_ordered, "convention", "ordered tuples"),
    "no parity": (wrong_no_parity, "convention", "both parities"),
    "no subtraction": (wrong_no_subtraction, "value", "subtract n(L + 1)"),
    "natural parity": (wrong_natural_parity, "convention", "parity (-1)^L"),
    "not an integer": (wrong_float, "value", "an integer"),
}
