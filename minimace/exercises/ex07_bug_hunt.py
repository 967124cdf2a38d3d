r"""# Exercise 7 — Equivariance bug hunt: why does this layer fail `assert_equivariant`?

**What you will learn**: to read an `assert_equivariant` report, and the three classic ways to break
equivariance in a layer on features `"mul x 0e + mul x 1o"`: reading the "mul_ir" layout in the wrong axis
order, adding a bias to a vector, and applying a pointwise nonlinearity to vector components.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697), Eq. (12) (a linear map $W_{kL,\tilde k}$ mixes the channels
$k$ of one irrep $L$, never its components $M$); gated nonlinearities as in Weiler et al. (NeurIPS 2018) and e3nn.

## The task

The layer `buggy_self_interaction(x, W0, W1, b)` (printed below) is meant to compute, for features
`x` `[N, mul + 3·mul]` with irreps `mul x 0e + mul x 1o` (channel-major: the 3 components of channel $u$
are contiguous, as in docs/ARCHITECTURE.md),

$$ s'_u = \frac{1}{\sqrt{\text{mul}}}\sum_w W^{(0)}_{wu}\, s_w + b_u , \qquad
\mathbf v'_u = \sigma(s'_u)\, \frac{1}{\sqrt{\text{mul}}}\sum_w W^{(1)}_{wu}\, \mathbf v_w , $$

and returns $[\operatorname{silu}(s'),\ \mathbf v']$ with the same irreps ($\sigma$ is the logistic sigmoid: a
scalar *gate* may multiply a vector). It fails `assert_equivariant`. Find the three bugs and write the
corrected `self_interaction(x, W0, W1, b)`.

The checker runs `assert_equivariant` on the scalar and the vector outputs separately (rotations and
reflections), then compares with a reference built on `minimace.one_particle.IrrepsLinear`.
"""

from __future__ import annotations

import inspect
import math

import torch

from ..one_particle import IrrepsLinear
from ._check import DTYPES, ExerciseFailure, expect_close, expect_equivariant, expect_shape, make_hint, run_checks

TITLE = "Exercise 7 (equivariance bug hunt)"
STUDENT_FUNCTIONS = ("self_interaction",)
META = {"kind": "exercise", "difficulty": "advanced", "minutes": 40, "prerequisites": ("05", "07")}
NOTEBOOK_IMPORTS = ["import math", "import torch"]
HINTS = (
    "A layer is equivariant when it mixes channels of the same irrep with scalar weights and never mixes the "
    "components x, y, z; only invariants (scalars) may be biased or passed through a nonlinearity.",
    "Read the vectors as [N, mul, 3] (channel-major: the 3 components of channel u are contiguous); a bias is allowed "
    "on s only; the vector nonlinearity is a gate: a function of the scalars times the vector.",
    "v = x[:, mul:].reshape(-1, mul, 3); v_out = torch.einsum('nwi,wu->nui', v, W1) / math.sqrt(mul); "
    "v_out = torch.sigmoid(s_out)[..., None] * v_out (no + b, no silu on the components)",
)
hint = make_hint(HINTS)

MUL = 4
PRELUDE = ("## The buggy layer\n\nHere is its source, and what the checker says about it: the scalars pass, the "
           "vectors do not.", "exercise.show_bug()")


def buggy_self_interaction(x: torch.Tensor, W0: torch.Tensor, W1: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The layer with three equivariance bugs: ``x`` [N, mul + 3 mul] -> [N, mul + 3 mul]."""
    mul = W0.shape[0]
    s, v = x[:, :mul], x[:, mul:]  # [N, mul], [N, 3 mul]
    s_out = s @ W0 / math.sqrt(mul) + b  # [N, mul]
    v = v.reshape(-1, 3, mul)  # [N, 3, mul]
    v_out = torch.einsum("niw,wu->niu", v, W1) / math.sqrt(mul) + b  # [N, 3, mul]
    v_out = torch.nn.functional.silu(v_out)
    return torch.cat([torch.nn.functional.silu(s_out), v_out.reshape(-1, 3 * mul)], dim=-1)


def inputs(dtype: torch.dtype = torch.float64):
    """``(x, W0, W1, b)`` with ``mul = MUL`` and 10 atoms."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(10, 4 * MUL, dtype=torch.float64, generator=gen)
    W0, W1 = torch.randn(2, MUL, MUL, dtype=torch.float64, generator=gen)
    b = torch.randn(MUL, dtype=torch.float64, generator=gen)
    return tuple(t.to(dtype) for t in (x, W0, W1, b))


def show_bug() -> None:
    """Print the buggy layer and the report of ``assert_equivariant`` on it."""
    print(inspect.getsource(buggy_self_interaction))
    check(buggy_self_interaction)


def check(fn, verbose: bool = True):
    """Check ``fn(x, W0, W1, b)``: equivariance of each output block, then the values."""

    def step_equivariant():
        x, W0, W1, b = inputs(torch.float64)
        expect_shape(fn(x, W0, W1, b), tuple(x.shape), "the output")
        irreps_in = (f"{MUL}x0e+{MUL}x1o",)
        for name, part, kind in (("scalars", slice(0, MUL), "0e"), ("vectors", slice(MUL, None), f"{MUL}x1o")):
            block = lambda bias: lambda x: fn(x, W0, W1, bias)[:, part]  # noqa: E731
            try:
                expect_equivariant(block(b), (x,), irreps_in, kind, tests=("rotation", "reflection"))
            except ExerciseFailure as err:
                message = f"the {name} (out[:, {part.start}:{part.stop or ''}]) break the symmetry"
                try:
                    expect_equivariant(block(torch.zeros_like(b)), (x,), irreps_in, kind, tests=("rotation",))
                    message += " — only when b != 0: a bias may be added to scalars, never to vectors"
                except ExerciseFailure:
                    pass
                raise ExerciseFailure("equivariance", f"{message}\n       {err.message}") from None
        return "scalars invariant, vectors rotate and flip as 1o"

    def reference(x, W0, W1, b):  # the package's equivariant linear map IrrepsLinear and a sigmoid gate
        irreps = f"{MUL}x0e+{MUL}x1o"
        linear = IrrepsLinear(irreps, irreps).to(x.dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.cat([W0.reshape(-1), W1.reshape(-1)]))
        y = linear(x)  # [N, mul + 3 mul]
        s_out, v_out = y[:, :MUL] + b, y[:, MUL:].reshape(-1, MUL, 3)
        v_out = torch.sigmoid(s_out)[..., None] * v_out
        return torch.cat([torch.nn.functional.silu(s_out), v_out.reshape(-1, 3 * MUL)], dim=-1).detach()

    def step_value(dtype):
        def step():
            x, W0, W1, b = inputs(dtype)
            out, ref = fn(x, W0, W1, b), reference(x, W0, W1, b)
            expect_shape(out, tuple(ref.shape), "the output")
            if dtype == torch.float64 and out.dtype == dtype:
                gate = torch.sigmoid(x[:, :MUL] @ W0 / math.sqrt(MUL) + b)[..., None]  # [N, mul, 1]
                ungated = torch.cat([ref[:, :MUL], (ref[:, MUL:].reshape(-1, MUL, 3) / gate).reshape(-1, 3 * MUL)], -1)
                if torch.allclose(out, ungated, rtol=1e-8, atol=1e-10):
                    raise ExerciseFailure("value", "equivariant, but the vectors are not gated by sigmoid(s')")
            return expect_close(out, ref, f"the output ({dtype})", axes=("atom", "feature"))
        return step

    steps = [("equivariance of the scalar and vector outputs", step_equivariant)]
    steps += [(f"values in {str(d)[6:]} vs IrrepsLinear + gate", step_value(d)) for d in DTYPES]
    return run_checks(TITLE, steps, verbose)
