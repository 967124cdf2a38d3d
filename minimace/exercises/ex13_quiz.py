r"""# Quiz 13 — Concepts: body order, coupling counts, parity, receptive field

**What you will learn**: to reason about a MACE without running it — how far it sees, how many atoms one term
of its energy can couple, which irreps a product contains and which couplings vanish by symmetry.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697 v2), sections 3–4 (higher-order messages, body order and
receptive field); the answers are checked with `minimace.body_order`, `minimace.symmetric` and `minimace.so3`.

## The questions

Answer in `answers()`, a dict with the keys of `exercise.QUESTIONS` (printed below); each value is an `int`
or, for the irreps, a string such as `"0e+1o"`.

1. **body order**: a MACE with correlation order $\nu = 3$ and $T = 2$ layers. What is the largest number of
   atoms (centre included) that one term of a layer-2 feature $h_i^{(2)}$ depends on jointly?
2. **invariants**: how many independent invariant ($L = 0$, even) B-functions of order $\nu = 2$ does *one*
   channel of $A$ with $l_\max = 2$ have?
3. **vanishing coupling**: how many independent *even* $L = 1$ B-functions of order $\nu = 2$ does one
   channel with $l_\max = 1$ have?
4. **parity**: which irreps does the product of two polar vectors, $1o \otimes 1o$, contain?
5. **receptive field**: with a cutoff $r_c = 5$ Å and $T = 2$ layers, how far (Å) from atom $i$ can an atom be
   and still change $E_i$?
"""

from __future__ import annotations

from ..body_order import body_order
from ..so3 import clebsch_gordan
from ..symmetric import count_couplings
from ._check import ExerciseFailure, expect_answer, make_hint, run_checks

TITLE = "Quiz 13 (concepts)"
STUDENT_FUNCTIONS = ("answers",)
META = {"kind": "quiz", "difficulty": "intermediate", "minutes": 15, "prerequisites": ("03", "05", "06")}
NOTEBOOK_IMPORTS = ["import torch"]
PRELUDE = ("## The keys of `answers()`", "for key, text in exercise.QUESTIONS.items():\n    print(f\"{key!r:22s} {text}\")")
HINTS = (
    "Each layer is a product of ν atomic bases, and each factor A_i^(t) = Σ_j φ(r_ij) h_j^(t-1) carries the "
    "features of a neighbour, which already depend on that neighbour's environment. Parity multiplies; an "
    "antisymmetric coupling vanishes on a symmetric product A ⊗ A.",
    "b_t = 1 + ν b_(t-1) with b_0 = 1; count multisets of components for the B-functions (exercise 8); "
    "the cross product of two polar vectors is a pseudovector; each layer reaches one cutoff further.",
    "b_1 = 1 + 3 = 4, b_2 = 1 + 3·4; the ν = 2 invariants are one per l = 0..l_max; 1 ⊗ 1 → 1 is antisymmetric; "
    "(-1)·(-1) = +1 for every L; T · r_c",
)
hint = make_hint(HINTS)

QUESTIONS = {
    "body order": "ν = 3, T = 2: largest number of atoms one term of h_i^(2) depends on",
    "invariants": "ν = 2, l_max = 2, one channel: number of independent L = 0 even B-functions",
    "vanishing coupling": "ν = 2, l_max = 1, one channel: number of independent L = 1 even B-functions",
    "parity": "irreps of 1o ⊗ 1o",
    "receptive field": "r_c = 5 Å, T = 2: farthest atom (Å) that changes E_i",
}


def _irreps_of_product(l1: int, p1: int, l2: int, p2: int) -> str:
    parity = "e" if p1 * p2 > 0 else "o"
    return "+".join(f"{L}{parity}" for L in range(abs(l1 - l2), l1 + l2 + 1)
                    if clebsch_gordan(l1, l2, L).abs().max() > 0)


def check(answers, verbose: bool = True):
    """Check ``answers()`` question by question against the package's own functions."""
    state = {}

    def step_format():
        given = answers()
        if not isinstance(given, dict):
            raise ExerciseFailure("answer", f"answers() should return a dict, got {type(given).__name__}")
        missing = [k for k in QUESTIONS if k not in given]
        if missing:
            raise ExerciseFailure("answer", f"no answer for {missing} (keys: {list(QUESTIONS)})")
        state["given"] = given
        return f"{len(QUESTIONS)} answers"

    def question(key, correct, explanations):
        def step():
            given = state["given"][key]
            if isinstance(given, str):
                given = given.replace(" ", "")
            return expect_answer(QUESTIONS[key], given, correct, explanations)
        return step

    nu, T = 3, 2
    b1 = body_order(nu, 1)
    steps = [("the answers are a dict with every key", step_format),
             ("1. body order", question("body order", body_order(nu, T), {
                 nu * T + 1: f"ν·T + 1 counts each layer as adding ν atoms to the centre; but each of the ν factors "
                             f"of layer 2 carries h_j^(1), which already couples j with ν atoms: 1 + ν·b_1 = "
                             f"1 + {nu}·{b1}",
                 nu + 1: "ν + 1 is the body order of one layer (a message of ν neighbours and the centre)",
                 (nu + 1) * T: "the body orders of the layers do not add up: they compose, b_2 = 1 + ν b_1",
                 (nu + 1) ** T: "close, but the centre atom i is shared: b_2 = 1 + ν b_1, not (ν + 1)^T"})),
             ("2. invariants", question("invariants", count_couplings(2, 2, 0, 1), {
                 9: "9 counts ordered pairs of degrees (l, l'); an invariant needs l = l' (one per l)",
                 45: "45 is the number of products A_a A_b (multisets of 2 of the 9 components), not of invariants",
                 6: "6 counts the pairs l ≤ l'; an invariant of two factors needs l = l'"})),
             ("3. vanishing coupling", question("vanishing coupling", count_couplings(1, 2, 1, 1), {
                 1: "1 ⊗ 1 → 1 is the cross product u × v, antisymmetric: it vanishes on A ⊗ A (A × A = 0)",
                 2: "the couplings of a tensor product are not those of the symmetric product A ⊗ A"})),
             ("4. parity", question("parity", _irreps_of_product(1, -1, 1, -1), {
                 "0e+1o+2e": "the product of two odd vectors is even for every L: the cross product is a "
                             "pseudovector (1e), it does not flip under inversion",
                 "0o+1o+2o": "parity multiplies: (-1)·(-1) = +1",
                 "0e+2e": "1 ⊗ 1 contains L = 1 too (the cross product), even if it vanishes for u = v"})),
             ("5. receptive field", question("receptive field", int(T * 5), {
                 5: "one cutoff is the reach of one layer; after T layers information has travelled T cutoffs",
                 20: "each layer adds one cutoff: T · r_c, not 2^T · r_c"})),
             ]
    return run_checks(TITLE, steps, verbose, keep_going=True)  # every question is answered and graded
