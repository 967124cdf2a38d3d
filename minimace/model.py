"""The MACE model: T layers of atomic basis → product basis/message → update → readout; forces and stress.

MACE (Batatia et al. 2022, arXiv:2206.07697 v2), Eqs. 7–13 (map: docs/paper_equations.md), structured exactly as mace-torch 0.3.16's
``MACE`` / ``ScaleShiftMACE`` with ``RealAgnosticInteractionBlock`` (first layer) and
``RealAgnosticResidualInteractionBlock`` (later layers), so that its weights load 1:1 (``interop.py``):

    h_i^{(0)}   = W_{z_i} / sqrt(n_elements)                                  chemical embedding
    A_i^{(t)}   = Σ_j R^{(t)}(r_ij) Y(r̂_ij) ⊗ W h_j^{(t)} / n̄                   Eq. 8  (atomic_basis)
    m_i^{(t)}   = Σ_ν Σ_η W_{z_i,η} Σ_lm C^{LM}_{η,lm} Π A_i^{(t)}               Eq. 10–11 (message)
    h_i^{(t+1)} = W m_i^{(t)} + W_{z_i} h_i^{(t)}                               Eq. 12 (update)
    E           = Σ_i [E0_{z_i} + s · Σ_t R_t(h_i^{(t+1)}) + μ]                   Eq. 13 (readout)

Where the code differs from the paper: Eq. 8 has the linear map on h_j before the sum and none after it (the
code, like mace-torch, has one after it too); Eq. 10 mixes channels inside the product (the code multiplies one
channel k); E0, the scale s and the shift μ come from the official code's ScaleShiftMACE, not from Eq. 13.
The last layer keeps only scalar features (only they reach the energy). Forces are F = −∂E/∂r by
autograd; with ``compute_stress`` a symmetric strain ε is applied to positions and cell (the
displacement trick of mace-torch / nequip), virials W = −∂E/∂ε and stress σ = −W / volume.
"""

from __future__ import annotations

import contextlib
from typing import Optional, Sequence, Union

import torch
from torch.utils.checkpoint import checkpoint

from .atomic_basis import AtomicBasis
from .message import SymmetricContraction
from .one_particle import ChemicalEmbedding, EdgeEmbedding
from .readout import AtomicEnergies, LinearReadout, NonLinearReadout, ScaleShift
from .so3 import Irrep, Irreps
from .update import Update

__all__ = ["MACE", "DEFAULT_CHUNK_SIZE"]

#: edges per chunk above which a structure is evaluated in chunks (see ``MACE.chunk_size``)
DEFAULT_CHUNK_SIZE = 32768


class MACE(torch.nn.Module):
    """MACE interatomic potential (keyword names of mace-torch).

    Parameters
    ----------
    r_max : float
        Cutoff radius (Å).
    num_bessel : int
        Number of radial Bessel functions.
    num_polynomial_cutoff : int
        Order p of the polynomial envelope.
    max_ell : int
        Largest degree of the spherical harmonics.
    correlation : int or list of int
        Body order ν of the product basis (one value, or one per layer).
    num_interactions : int
        Number of layers T.
    hidden_irreps : str
        Irreps of the hidden features, scalars first, e.g. ``"128x0e+128x1o"``.
    MLP_irreps : str
        Hidden irreps of the last (non-linear) readout.
    radial_MLP : sequence of int
        Hidden widths of the radial MLPs.
    avg_num_neighbors : float
        Normalisation n̄ of the sum over neighbours.
    atomic_numbers : sequence of int
        Elements the model knows, in the order of its element index.
    atomic_energies : sequence of float, optional
        E0 per element (same order); zeros if omitted.
    atomic_inter_scale, atomic_inter_shift : float
        s and μ of the interaction energy.
    gate : str
        Activation of the non-linear readout and of the radial MLP (``"silu"``).

    Attributes
    ----------
    config : dict
        JSON-serialisable; ``MACE(**model.config)`` rebuilds the same architecture.
    chunk_size : int or None
        Memory bound for large structures (not part of ``config``): inputs with more than ``chunk_size``
        edges are processed ``chunk_size`` edges (and ``chunk_size // 16`` atoms in the product basis) at a
        time under gradient checkpointing. Same numbers; the per-edge memory no longer grows with the
        structure, for about 1.3x the time of the chunked stages. Default :data:`DEFAULT_CHUNK_SIZE`
        (a 600-atom water box or a training batch is not chunked); ``None`` never chunks.
    embedding : ChemicalEmbedding
        h^{(0)} (mace ``node_embedding``).
    edge_embedding : EdgeEmbedding
        Y(r̂_ij) and Bessel × envelope features (mace ``spherical_harmonics``, ``radial_embedding``).
    atomic_bases, messages, updates, readouts : ModuleList, one entry per layer t
        ``AtomicBasis`` (mace ``interactions[t]`` without its ``skip_tp`` for t > 0),
        ``SymmetricContraction`` (``products[t].symmetric_contractions``), ``Update`` (``products[t].linear``
        and, for t > 0, ``interactions[t].skip_tp``), ``LinearReadout`` / ``NonLinearReadout`` (``readouts[t]``).
    atomic_energies, scale_shift
        E0 per element and (s, μ).
    atomic_numbers, z_to_index : buffers
        Known elements and the lookup Z -> element index (-1 for unknown Z).
    """

    def __init__(
        self,
        r_max: float = 5.0,
        num_bessel: int = 8,
        num_polynomial_cutoff: int = 5,
        max_ell: int = 3,
        correlation: Union[int, Sequence[int]] = 3,
        num_interactions: int = 2,
        hidden_irreps: str = "128x0e+128x1o",
        MLP_irreps: str = "16x0e",
        radial_MLP: Sequence[int] = (64, 64, 64),
        avg_num_neighbors: float = 1.0,
        atomic_numbers: Sequence[int] = (1, 6, 8),
        atomic_energies: Optional[Sequence[float]] = None,
        atomic_inter_scale: float = 1.0,
        atomic_inter_shift: float = 0.0,
        gate: str = "silu",
    ):
        super().__init__()
        atomic_numbers = [int(z) for z in atomic_numbers]
        n_el = len(atomic_numbers)
        if atomic_energies is None:
            atomic_energies = [0.0] * n_el
        atomic_energies = [float(e) for e in atomic_energies]
        if len(atomic_energies) != n_el:
            raise ValueError(f"{len(atomic_energies)} atomic_energies for {n_el} atomic_numbers")
        if isinstance(correlation, int):
            correlation = [correlation] * num_interactions
        correlation = [int(c) for c in correlation]
        if len(correlation) != num_interactions:
            raise ValueError(f"correlation {correlation} needs one value per layer ({num_interactions})")
        self.config = dict(
            r_max=float(r_max), num_bessel=int(num_bessel), num_polynomial_cutoff=int(num_polynomial_cutoff),
            max_ell=int(max_ell), correlation=correlation, num_interactions=int(num_interactions),
            hidden_irreps=str(Irreps(hidden_irreps)), MLP_irreps=str(Irreps(MLP_irreps)),
            radial_MLP=[int(h) for h in radial_MLP], avg_num_neighbors=float(avg_num_neighbors),
            atomic_numbers=atomic_numbers, atomic_energies=atomic_energies,
            atomic_inter_scale=float(atomic_inter_scale), atomic_inter_shift=float(atomic_inter_shift), gate=gate,
        )
        self._build(**self.config)
        self.chunk_size: Optional[int] = DEFAULT_CHUNK_SIZE

    def _build(self, r_max, num_bessel, num_polynomial_cutoff, max_ell, correlation, num_interactions,
               hidden_irreps, MLP_irreps, radial_MLP, avg_num_neighbors, atomic_numbers, atomic_energies,
               atomic_inter_scale, atomic_inter_shift, gate):
        hidden = Irreps(hidden_irreps)
        scalars = Irreps([hidden[0]])
        if hidden[0].ir != Irrep(0, 1):
            raise ValueError(f"hidden_irreps must start with the even scalars, got {hidden}")
        k, n_el = hidden[0].mul, len(atomic_numbers)
        table = torch.full((max(atomic_numbers) + 1,), -1, dtype=torch.long)
        table[torch.tensor(atomic_numbers)] = torch.arange(n_el)
        self.register_buffer("atomic_numbers", torch.tensor(atomic_numbers, dtype=torch.long))
        self.register_buffer("z_to_index", table)
        self.num_elements = n_el
        self.embedding = ChemicalEmbedding(n_el, k)
        self.edge_embedding = EdgeEmbedding(r_max, num_bessel, num_polynomial_cutoff, max_ell)
        A_irreps = Irreps([(k, Irrep(l, (-1) ** l)) for l in range(max_ell + 1)])
        self.atomic_bases, self.messages = torch.nn.ModuleList(), torch.nn.ModuleList()
        self.updates, self.readouts = torch.nn.ModuleList(), torch.nn.ModuleList()
        h_irreps = scalars
        for t in range(num_interactions):
            last = t == num_interactions - 1
            out_irreps = scalars if last else hidden
            self.atomic_bases.append(
                AtomicBasis(h_irreps, max_ell, A_irreps, num_bessel, radial_MLP, avg_num_neighbors, n_el, t == 0)
            )
            self.messages.append(SymmetricContraction(A_irreps, out_irreps, correlation[t], n_el))
            self.updates.append(Update(h_irreps, out_irreps, n_el, residual=t > 0))
            if last and num_interactions > 1:
                self.readouts.append(NonLinearReadout(out_irreps, MLP_irreps, gate))
            else:
                self.readouts.append(LinearReadout(out_irreps))
            h_irreps = out_irreps
        self.atomic_energies = AtomicEnergies(atomic_energies)
        self.scale_shift = ScaleShift(atomic_inter_scale, atomic_inter_shift)

    # ------------------------------------------------------------------ inputs
    def species(self, Z: torch.Tensor) -> torch.Tensor:
        """Element index of each atom; ValueError naming the first atom whose Z the model does not know."""
        n_table = self.z_to_index.shape[0]
        idx = self.z_to_index[Z.clamp(0, n_table - 1)]  # [n_nodes]
        bad = (Z < 0) | (Z >= n_table) | (idx < 0)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0, 0])
            raise ValueError(
                f"atom {i} has atomic number Z={int(Z[i])}, which this model does not know "
                f"(atomic_numbers={self.config['atomic_numbers']})"
            )
        return idx

    def edge_vectors(self, batch: dict, positions: torch.Tensor, displacement: Optional[torch.Tensor] = None):
        """r_ij = r_j − r_i + shift [n_edges, 3]; under a strain ε: r -> r(1+ε), cell -> cell(1+ε)."""
        centre, neighbour = batch["edge_index"][0], batch["edge_index"][1]
        if displacement is None:
            shifts = batch["shifts"].to(positions.dtype)  # [n_edges, 3]
            return positions[neighbour] - positions[centre] + shifts
        graph = batch["batch"]
        eps = 0.5 * (displacement + displacement.transpose(-1, -2))  # [n_graphs, 3, 3] symmetric strain
        positions = positions + torch.einsum("ni,nij->nj", positions, eps[graph])
        cell = batch["cell"].to(positions.dtype).view(-1, 3, 3)
        cell = cell + cell @ eps  # [n_graphs, 3, 3]
        shifts = torch.einsum("ei,eij->ej", batch["unit_shifts"].to(positions.dtype), cell[graph[centre]])
        return positions[neighbour] - positions[centre] + shifts

    # ------------------------------------------------------------------ model
    def node_energies(self, batch: dict, positions: torch.Tensor, displacement=None) -> torch.Tensor:
        """E_i [n_nodes] (Eq. 13), differentiable w.r.t. ``positions`` and ``displacement``."""
        species = self.species(batch["atomic_numbers"])
        vectors = self.edge_vectors(batch, positions, displacement)  # [n_edges, 3]
        Y, radial = self.edge_embedding(vectors)  # [n_edges, (lmax+1)**2], [n_edges, n_bessel]
        h = self.embedding(species)  # [n_nodes, k]
        node_inter = torch.zeros_like(h[:, 0])
        for basis, message, update, readout in zip(self.atomic_bases, self.messages, self.updates, self.readouts):
            A = basis(h, species, Y, radial, batch["edge_index"], chunk_size=self.chunk_size)  # [n_nodes, k·d]
            m = self._message(message, A, species)  # [n_nodes, out_irreps.dim]
            h = update(m, h, species)  # [n_nodes, out_irreps.dim]
            node_inter = node_inter + readout(h)  # [n_nodes]
        return self.atomic_energies(species).to(node_inter.dtype) + self.scale_shift(node_inter)

    def _message(self, message, A: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """m = message(A) (Eqs. 10-11), over chunks of atoms under gradient checkpointing if ``chunk_size`` is set."""
        n_nodes = A.shape[0]
        node_chunk = None if self.chunk_size is None else max(1, self.chunk_size // 16)
        if node_chunk is None or n_nodes <= node_chunk:
            return message(A, species)
        parts = []
        for start in range(0, n_nodes, node_chunk):
            c = slice(start, start + node_chunk)
            parts.append(checkpoint(message, A[c], species[c], use_reentrant=False))
        return torch.cat(parts, dim=0)

    def forward(self, batch: dict, compute_forces: bool = True, compute_stress: bool = False,
                training: bool = False) -> dict:
        """Energies, forces (and stress, virials) of a batch (docs/ARCHITECTURE.md).

        Returns
        -------
        dict
            ``energy`` [n_graphs], ``node_energy`` [n_nodes], ``forces`` [n_nodes, 3] if ``compute_forces``,
            ``stress`` and ``virials`` [n_graphs, 3, 3] if ``compute_stress``.
        """
        dtype = self.embedding.weight.dtype
        inputs_needed = compute_forces or compute_stress
        positions = batch["positions"].to(dtype)
        n_graphs = batch["ptr"].numel() - 1 if "ptr" in batch else int(batch["batch"].max()) + 1
        if inputs_needed and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        displacement = None
        if compute_stress:
            displacement = torch.zeros(n_graphs, 3, 3, dtype=dtype, device=positions.device, requires_grad=True)
        with torch.enable_grad() if inputs_needed else contextlib.nullcontext():
            node_energy = self.node_energies(batch, positions, displacement)  # [n_nodes]
            energy = torch.zeros(n_graphs, dtype=dtype, device=positions.device).index_add(
                0, batch["batch"], node_energy
            )  # [n_graphs]
        out = {"energy": energy, "node_energy": node_energy}
        inputs = ([positions] if compute_forces else []) + ([displacement] if compute_stress else [])
        if inputs:
            grads = torch.autograd.grad(energy.sum(), inputs, create_graph=training, retain_graph=training)
            if compute_forces:
                out["forces"] = -grads[0]
            if compute_stress:
                virials = -grads[-1]  # [n_graphs, 3, 3]
                volume = torch.linalg.det(batch["cell"].to(dtype).view(-1, 3, 3)).abs()  # [n_graphs]
                safe = torch.where(volume > 0, volume, torch.ones_like(volume))
                out["virials"] = virials
                out["stress"] = torch.where((volume > 0)[:, None, None], -virials / safe[:, None, None], 0.0)
        return out
