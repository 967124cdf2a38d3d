"""Teacher source of exercise 2: the solution, its notes and the wrong answers (negative controls)."""

import math

import torch

from minimace.so3 import spherical_harmonics

NOTES = r"""**Line ↔ equation**: `r_hat` is $\hat{\mathbf r}$; `l1` is $Y_1 = \sqrt3 (x, y, z)$; `l2` stacks the five
$l = 2$ polynomials in the order $m = -2, \dots, 2$ of e3nn's basis. Check by hand: $\sum_m Y_{1m}^2 = 3$ and
$\sum_m Y_{2m}^2 = 5$ on the unit sphere (component normalisation)."""


def sh_l1_l2(vectors: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics l = 1, 2 of r̂ in e3nn's basis: ``vectors`` [n, 3] -> [n, 3 + 5]."""
    # BEGIN SOLUTION
    r_hat = vectors / vectors.norm(dim=-1, keepdim=True)  # [n, 3]
    x, y, z = r_hat.unbind(-1)  # [n] each
    l1 = math.sqrt(3) * r_hat  # [n, 3]
    l2 = torch.stack([
        math.sqrt(15) * x * z,
        math.sqrt(15) * x * y,
        math.sqrt(5) * (y**2 - (x**2 + z**2) / 2),
        math.sqrt(15) * y * z,
        math.sqrt(15) / 2 * (z**2 - x**2),
    ], dim=-1)  # [n, 5]
    return torch.cat([l1, l2], dim=-1)  # [n, 8]
    # END SOLUTION


def wrong_unnormalised_vectors(vectors):
    """Evaluates the polynomials at r instead of r̂."""
    return spherical_harmonics(2, vectors, normalize=False)[..., 1:]


def wrong_unit_norm(vectors):
    """Orthonormal ("norm") normalisation: each block divided by sqrt(2l+1)."""
    Y = sh_l1_l2(vectors)
    return torch.cat([Y[..., :3] / math.sqrt(3), Y[..., 3:] / math.sqrt(5)], dim=-1)


def wrong_textbook_axes(vectors):
    """Textbook convention: z is the polar axis, l = 1 in the order (y, z, x)."""
    return sh_l1_l2(vectors[..., [1, 2, 0]])


def wrong_l2_sign(vectors):
    """A sign slip in one l = 2 component."""
    Y = sh_l1_l2(vectors)
    return torch.cat([Y[..., :6], -Y[..., 6:7], Y[..., 7:]], dim=-1)


def wrong_l2_textbook(vectors):
    """Right l = 1, but the l = 2 block in the textbook basis (z polar axis)."""
    Y = sh_l1_l2(vectors)
    return torch.cat([Y[..., :3], sh_l1_l2(vectors[..., [1, 2, 0]])[..., 3:]], dim=-1)


WRONG_ANSWERS = {
    "r instead of r_hat": (wrong_unnormalised_vectors, "value", "unit vector"),
    "unit norm": (wrong_unit_norm, "normalisation", "the l=1 block"),
    "textbook axes": (wrong_textbook_axes, "convention", "the l=1 block"),
    "sign slip": (wrong_l2_sign, "convention", "l=1 is right; the l=2 block"),
    "l=2 in the textbook basis": (wrong_l2_textbook, "convention", "l=1 is right; the l=2 block"),
}
