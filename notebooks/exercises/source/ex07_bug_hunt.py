"""Teacher source of exercise 7: the solution, its notes and the wrong answers (negative controls)."""

import math

import torch

from minimace.exercises.ex07_bug_hunt import buggy_self_interaction

NOTES = r"""**Line ↔ equation**: `s` and `v` are the blocks `mul x 0e` and `mul x 1o`; `v` is read as `[N, mul, 3]`
(channel-major); `s_out` is $s'$ (a bias on scalars is equivariant); the `einsum` is $\sum_w W^{(1)}_{wu}\mathbf v_w$,
mixing channels and never the components $x, y, z$; `torch.sigmoid(s_out)[..., None]` is the gate $\sigma(s'_u)$.
The three bugs were: `reshape(-1, 3, mul)` (mixes the components of different channels), `+ b` on the vectors
(a constant vector does not rotate), and `silu` applied to each component (not a function of rotation
invariants)."""


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


WRONG_ANSWERS = {
    "the buggy layer": (buggy_self_interaction, "equivariance", "the vectors (out[:, 4:]) break the symmetry"),
    "layout kept": (wrong_layout_kept, "equivariance", "the vectors (out[:, 4:]) break the symmetry"),
    "pointwise silu": (wrong_pointwise_silu, "equivariance", "the vectors (out[:, 4:]) break the symmetry"),
    "no gate": (wrong_no_gate, "value", "not gated"),
}
