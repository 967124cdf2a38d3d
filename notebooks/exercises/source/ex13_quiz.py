"""Teacher source of quiz 13: the answers, their notes and the wrong answers (negative controls)."""

NOTES = r"""**Why**: (1) $b_t = 1 + \nu\, b_{t-1}$, $b_0 = 1$: $b_1 = 4$, $b_2 = 1 + 3 \cdot 4 = 13$ — not $\nu T + 1 = 7$,
because each factor $A^{(2)}_i = \sum_j \phi(\mathbf r_{ij}) h^{(1)}_j$ brings $j$ *and* the 3 atoms $h^{(1)}_j$ depends
on (`minimace.body_order`; notebook 06 measures it). (2) Two factors couple to $L = 0$ only when $l = l'$: one
invariant per $l = 0, 1, 2$ (the power spectrum of exercise 5). (3) $1 \otimes 1 \to 1$ is the cross product,
antisymmetric, so it vanishes on the symmetric $A \otimes A$: 0 (exercise 8 counts it). (4) Parities multiply:
$0e + 1e + 2e$, the cross product is a pseudovector. (5) Information travels one cutoff per layer: $T r_c = 10$ Å."""


def answers() -> dict:
    """Your answers to exercise.QUESTIONS."""
    # BEGIN SOLUTION
    return {"body order": 13, "invariants": 3, "vanishing coupling": 0, "parity": "0e+1e+2e", "receptive field": 10}
    # END SOLUTION


def _with(**changes):
    right = {"body order": 13, "invariants": 3, "vanishing coupling": 0, "parity": "0e+1e+2e", "receptive field": 10}
    return lambda: {**right, **changes}


WRONG_ANSWERS = {
    "body order ν T + 1": (_with(**{"body order": 7}), "answer", "1 + ν·b_1"),
    "body order ν + 1": (_with(**{"body order": 4}), "answer", "one layer"),
    "invariants 9": (_with(invariants=9), "answer", "l = l'"),
    "cross product on A ⊗ A": (_with(**{"vanishing coupling": 1}), "answer", "antisymmetric"),
    "parity of the cross product": (_with(parity="0e+1o+2e"), "answer", "pseudovector"),
    "receptive field one cutoff": (_with(**{"receptive field": 5}), "answer", "T cutoffs"),
    "missing key": (lambda: {"body order": 13}, "answer", "no answer for"),
}
