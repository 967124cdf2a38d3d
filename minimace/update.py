"""Update h^{(t+1)}_{i,kLM} = Σ_k̃ W_{kL,k̃} m_{i,k̃LM} + Σ_k̃ W_{z_i kL,k̃} h^{(t)}_{i,k̃LM}.

MACE (Batatia et al. 2022, arXiv:2206.07697), Eq. 12. The first term is an equivariant linear map of the
message (mace-torch ``products[t].linear``); the second, the residual "self-connection", an element-dependent
linear map of the previous features (mace-torch ``interactions[t].skip_tp``). mace-torch's first layer has
no residual (its element-dependent map acts on A instead, see ``atomic_basis.py``).
"""

from __future__ import annotations

import torch

from .atomic_basis import ElementLinear
from .one_particle import IrrepsLinear
from .so3 import Irreps

__all__ = ["Update"]


class Update(torch.nn.Module):
    """h^{(t+1)} = linear(m) [+ self_connection(h^{(t)}, z)].

    Parameters
    ----------
    irreps_h : Irreps
        Irreps of the previous features h^{(t)}.
    irreps_out : Irreps
        Irreps of m and of h^{(t+1)}.
    num_elements : int
        Number of chemical elements.
    residual : bool
        Add the element-dependent self-connection (every layer but the first in mace-torch).

    Attributes
    ----------
    linear : IrrepsLinear
        W_{kL,k̃}.
    self_connection : ElementLinear (only if ``residual``)
        W_{z_i kL,k̃}.
    """

    def __init__(self, irreps_h, irreps_out, num_elements: int, residual: bool):
        super().__init__()
        self.irreps_out = Irreps(irreps_out)
        self.linear = IrrepsLinear(self.irreps_out, self.irreps_out)
        self.residual = bool(residual)
        if self.residual:
            self.self_connection = ElementLinear(irreps_h, num_elements, self.irreps_out)

    def forward(self, m: torch.Tensor, h: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """``m`` [n_nodes, irreps_out.dim], ``h`` [n_nodes, irreps_h.dim] -> [n_nodes, irreps_out.dim]."""
        out = self.linear(m)
        if self.residual:
            out = out + self.self_connection(h, species)
        return out
