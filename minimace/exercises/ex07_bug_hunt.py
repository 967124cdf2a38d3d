r"""# Exercise 7 — Equivariance bug hunt: why does this layer fail `assert_equivariant`?

**What you will learn**: to read an `assert_equivariant` report, and the three classic ways to break
equivariance in a layer on features `"mul x 0e + mul x 1o"`: reading the "mul_ir" layout in the wrong axis
order, adding a bias to a vector, and applying a pointwise nonlinearity to vector components.

**Prerequisites**: notebooks 05 (update) and 07 (equivariance lab).

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
from ._check import DTYPES, ExerciseFailure, expect_close, expect_equivariant, expect_shape, run_checks

TITLE = "Exercise 7 (equivariance bug hunt)"
STUDENT_FUNCTION = "self_interaction"
NOTEBOOK_IMPORTS = ["import math", "import torch"]
HINT = ("start from buggy_self_interaction printed above; the vectors are [N, mul, 3], "
        "a bias is allowed only on scalars, and a vector may only be multiplied by a scalar")
NOTES = r"""**Line ↔ equation**: `s` and `v` are the blocks `mul x 0e` and `mul x 1o`; `v` is read as `[N, mul, 3]`
(channel-major); `s_out` is $s'$ (a bias on scalars is equivariant); the `einsum` is $\sum_w W^{(1)}_{wu}\mathbf v_w$,
mixing channels and never the components $x, y, z$; `torch.sigmoid(s_out)[..., None]` is the gate $\sigma(s'_u)$.
The three bugs were: `reshape(-1, 3, mul)` (mixes the components of different channels), `+ b` on the vectors
(a constant vector does not rotate), and `silu` applied to each component (not a function of rotation
invariants)."""

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


def self_interaction(x: torch.Tensor, W0: torch.Tensor, W1: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The corrected gated self-interaction: ``x`` [N, mul + 3 mul] -> [N, mul + 3 mul]."""
    # BEGIN SOLUTION
    mul = W0.shape[0]
    s, v = x[:, :mul], x[:, mul:]  # [N, mul], [N, 3 mul]
    s_out = s @ W0 / math.sqrt(mul) + b  # [N, mul]
    v = v.reshape(-1, mul, 3)  # [N, mul, 3]: channel-major
    v_out = torch.einsum("nwi,wu->nui", v, W1) / math.sqrt(mul)  # [N, mul, 3]
    v_out = torch.sigmoid(s_out)[..., None] * v_out  # gate: scalar × vector
    return torch.cat([torch.nn.functional.silu(s_out), v_out.reshape(-1, mul * 3)], dim=-1)
    # END SOLUTION


def reference(x: torch.Tensor, W0: torch.Tensor, W1: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The same layer from the package's equivariant linear map ``IrrepsLinear`` and a sigmoid gate."""
    mul = W0.shape[0]
    irreps = f"{mul}x0e+{mul}x1o"
    linear = IrrepsLinear(irreps, irreps).to(x.dtype)
    with torch.no_grad():
        linear.weight.copy_(torch.cat([W0.reshape(-1), W1.reshape(-1)]))
    y = linear(x)  # [N, mul + 3 mul]
    s_out, v_out = y[:, :mul] + b, y[:, mul:].reshape(-1, mul, 3)
    v_out = torch.sigmoid(s_out)[..., None] * v_out
    return torch.cat([torch.nn.functional.silu(s_out), v_out.reshape(-1, 3 * mul)], dim=-1).detach()


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
            return expect_close(out, ref, f"the output ({dtype})")
        return step

    steps = [("equivariance of the scalar and vector outputs", step_equivariant)]
    steps += [(f"values in {str(d)[6:]} vs IrrepsLinear + gate", step_value(d)) for d in DTYPES]
    return run_checks(TITLE, steps, verbose)


# plausible wrong answers, used by the tests as negative controls
def wrong_layout_kept(x, W0, W1, b):
    """Removes the vector bias and gates, but still reads the vectors as [N, 3, mul]."""
    mul = W0.shape[0]
    s_out = x[:, :mul] @ W0 / math.sqrt(mul) + b
    v_out = torch.einsum("niw,wu->niu", x[:, mul:].reshape(-1, 3, mul), W1) / math.sqrt(mul)
    v_out = torch.sigmoid(s_out)[:, None, :] * v_out
    return torch.cat([torch.nn.functional.silu(s_out), v_out.reshape(-1, 3 * mul)], dim=-1)


def wrong_pointwise_silu(x, W0, W1, b):
    """Fixes the layout and the bias, keeps silu on every vector component."""
    mul = W0.shape[0]
    s_out = x[:, :mul] @ W0 / math.sqrt(mul) + b
    v_out = torch.einsum("nwi,wu->nui", x[:, mul:].reshape(-1, mul, 3), W1) / math.sqrt(mul)
    return torch.cat([torch.nn.functional.silu(s_out), torch.nn.functional.silu(v_out).reshape(-1, 3 * mul)], dim=-1)


def wrong_no_gate(x, W0, W1, b):
    """Equivariant, but drops the gate altogether (a linear map on the vectors)."""
    mul = W0.shape[0]
    s_out = x[:, :mul] @ W0 / math.sqrt(mul) + b
    v_out = torch.einsum("nwi,wu->nui", x[:, mul:].reshape(-1, mul, 3), W1) / math.sqrt(mul)
    return torch.cat([torch.nn.functional.silu(s_out), v_out.reshape(-1, 3 * mul)], dim=-1)


WRONG_ANSWERS = {"the buggy layer": buggy_self_interaction, "layout kept": wrong_layout_kept,
                 "pointwise silu": wrong_pointwise_silu, "no gate": wrong_no_gate}
