"""Stage 3: the product basis and the symmetric B-functions (MACE, NeurIPS 2022, arXiv:2206.07697 v2, Eq. 10).

Given the atomic basis ``A_i`` of one channel ``k``, a vector of the spherical-harmonic irreps
``V = 0e + 1o + 2e + ... + l_max`` (natural parity, e3nn's real basis, ``d = (l_max+1)**2`` components,
the ``l`` blocks concatenated), MACE forms

* the product basis (the product inside Eq. 10):  ``𝐀_{i,k,lm} = Π_{ξ=1..ν} A_{i,k,l_ξ m_ξ}`` — a symmetric
  tensor of order ν. It is the body-ordered sum of Eq. 7 computed cheaply: because those sums run over all
  neighbour tuples, self-interactions j_1 = j_2 included, ``Σ_{j_1..j_ν} Π_ξ φ_{j_ξ} = Π_ξ Σ_j φ_j``
  (the "density trick"; :func:`neighbour_product_sum` is the left side, for checks);
* the B-functions (Eq. 10):   ``B_{i,ηkLM} = Σ_{lm} C^{LM}_{η,lm} 𝐀_{i,k,lm}``.

The paper's Eq. 10 mixes channels inside the product (each factor is ``Σ_k̃ w_{kk̃l_ξ} A_{i,k̃l_ξm_ξ}``); here,
as in mace-torch, B keeps the channels k separate and the channel mixing is the linear map applied to A
before (``atomic_basis``).

The generalized Clebsch–Gordan coefficients ``C^{LM}_{η,lm}`` (here the tensor ``U[M, i_1, ..., i_ν, η]``)
are a basis of the equivariant linear maps ``Sym^ν(V) → V_L`` of parity ``p``: only the symmetric part of a
coefficient tensor ever meets the (symmetric) product basis, so a basis of symmetric, equivariant,
linearly independent tensors gives every B-function exactly once, with no redundant weight.

How :func:`coupling_basis` computes them (exact count, float64 values):

1. Split ``Sym^ν(V)`` by the multiset ``l_1 <= ... <= l_ν`` of degrees. A block contributes to parity ``p``
   iff ``(-1)^{Σ l} = p`` (natural parity), and different blocks have disjoint supports.
2. In a block, candidates are the recursive couplings ``((l_1 ⊗ l_2 → k_2) ⊗ l_3 → k_3) ... → L`` with
   real Wigner-3j symbols. These span all equivariant maps ``V_{l_1} ⊗ ... ⊗ V_{l_ν} → V_L``.
3. Project every candidate on the tensors symmetric under permutations of equal degrees (the projector
   commutes with rotations, so the images span the symmetric equivariant maps), then keep a linearly
   independent, orthonormal set by Gram–Schmidt in candidate order (each basis vector remembers its
   coupling path).
4. The rank is certified, not guessed: the number of kept vectors must equal the multiplicity of ``V_L``
   in ``⊗_a Sym^{m_a}(V_{l_a})``, counted exactly with integers from weight multiplicities
   (:func:`count_couplings`), and every residual norm must be either below ``_TOL_ZERO`` (dependent) or
   above ``_TOL_KEEP`` (independent), checked at every step; :func:`rank_gap` reports the measured gap.
   Exact arithmetic (sympy) is not used for the values: products of real Wigner-3j symbols are sums of
   square roots of rationals, and a symbolic Gram–Schmidt over hundreds of candidates of size ``(2L+1) d^ν``
   is costly; float64 with a certified rank gives the same space to ~1e-15. Where the entries are simple
   (ν = 2), :func:`to_sympy` recovers them exactly. The tests cross-check the count with the character
   formula, the space with the fixed space of the group (an SVD) and with mace-torch's over-complete tensors.
5. Embed each block tensor into the full ``d^ν`` tensor at every ordering of its degrees (so ``U`` is
   symmetric in its ``d`` indices) and scale it to "component" normalisation:
   ``Σ_{M, i} U[M, i, η] U[M, i, η'] = (2L + 1) δ_{ηη'}`` (orthogonal columns; for ν = 1 the basis is the
   identity on the ``l = L`` block).

Results are cached in memory (``functools.lru_cache``) and on disk under ``~/.cache/minimace``
(``$MINIMACE_CACHE`` overrides the folder; set it to ``"off"`` to disable the disk cache). Disk files are
named by a hash of this module's source and of a few Wigner-3j tensors, so a change of either is never
served a stale basis.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
from pathlib import Path

import numpy as np
import torch

from .so3 import wigner_3j

__all__ = [
    "coupling_basis", "coupling_block", "count_couplings", "product_basis", "b_functions", "degree_multisets", "to_sympy",
    "neighbour_product_sum", "rank_gap", "symbolic_rotation", "reduce_trig", "symbolic_atomic_basis",
    "symbolic_b_functions",
]

# The thresholds sit far inside the measured gap between dependent and independent residuals (rank_gap).
_TOL_ZERO = 1e-10  # relative residual below which a candidate is dependent on the kept ones
_TOL_KEEP = 1e-3  # relative residual above which it is independent; anything between is an error


# ----------------------------------------------------------------------------- exact counting
def _sym_power_weights(l: int, m: int) -> dict[int, int]:
    """Weight multiplicities of ``Sym^m(V_l)``: number of m-multisets of ``{-l..l}`` with a given sum."""
    # multisets = choose how many times each weight w in -l..l appears; generating function Π_w 1/(1 - t q^w)
    table = {(0, 0): 1}  # (size, weight sum) -> count
    for w in range(-l, l + 1):
        new = {}
        for (size, s), c in table.items():
            for extra in range(0, m - size + 1):
                key = (size + extra, s + extra * w)
                new[key] = new.get(key, 0) + c
        table = new
    return {s: c for (size, s), c in table.items() if size == m}


def _multiply_weights(a: dict[int, int], b: dict[int, int]) -> dict[int, int]:
    """Weights of a tensor product = convolution of the weight multiplicities."""
    out: dict[int, int] = {}
    for wa, ca in a.items():
        for wb, cb in b.items():
            out[wa + wb] = out.get(wa + wb, 0) + ca * cb
    return out


def degree_multisets(lmax: int, correlation: int, parity: int | None = None) -> list[tuple[int, ...]]:
    """Sorted degree tuples ``l_1 <= ... <= l_ν <= l_max`` (blocks of ``Sym^ν V``), of parity ``(-1)^{Σl}``."""
    out = []
    for ls in itertools.combinations_with_replacement(range(lmax + 1), correlation):
        if parity is None or (-1) ** sum(ls) == parity:
            out.append(ls)
    return out


def _count_block(ls: tuple[int, ...], L: int, pattern: tuple[int, ...] | None = None) -> int:
    """Exact multiplicity of ``V_L`` in ``⊗_g Sym^{m_g}(V_{l_g})``, one factor per group of equal ``pattern``."""
    pattern = ls if pattern is None else pattern
    weights = {0: 1}
    for label in sorted(set(pattern)):
        group = [l for l, q in zip(ls, pattern) if q == label]
        weights = _multiply_weights(weights, _sym_power_weights(group[0], len(group)))
    return weights.get(L, 0) - weights.get(L + 1, 0)


def count_couplings(lmax: int, correlation: int, L: int, parity: int) -> int:
    """Dimension of ``Hom_{O(3)}(Sym^ν V, V_{L,p})`` for ``V = 0e + 1o + ... + l_max``, counted exactly.

    The multiplicity of ``V_L`` in a representation with integer weight multiplicities ``n(w)`` is
    ``n(L) - n(L+1)``; the weights of ``Sym^m(V_l)`` are counted as multisets of ``{-l, ..., l}``.
    """
    return sum(_count_block(ls, L) for ls in degree_multisets(lmax, correlation, parity))


# ----------------------------------------------------------------------------- one block
def _coupling_candidates(ls: tuple[int, ...], L: int) -> list[np.ndarray]:
    """All coupling trees ``((l_1 ⊗ l_2 → k_2) ⊗ l_3 → k_3) ... → L`` as arrays ``[2L+1, 2l_1+1, ..., 2l_ν+1]``."""
    # partial couplings: list of arrays [2k+1, 2l_1+1, ..., 2l_j+1]
    partial = [np.eye(2 * ls[0] + 1)]  # ν = 1: the identity on V_{l_1}
    for step, l_next in enumerate(ls[1:], start=2):
        remaining = sum(ls[step:])  # degrees still to couple: k_new must stay within reach of L
        new = []
        for T in partial:
            k = (T.shape[0] - 1) // 2
            for k_new in range(abs(k - l_next), k + l_next + 1):
                if abs(k_new - L) > remaining:
                    continue
                w = wigner_3j(k, l_next, k_new, dtype=torch.float64).numpy()  # [2k+1, 2l+1, 2k_new+1]
                new.append(np.einsum("a...,abc->c...b", T, w))  # [2k_new+1, ..., 2l_next+1]
        partial = new
    return [T for T in partial if T.shape[0] == 2 * L + 1]


def _symmetrize_block(T: np.ndarray, pattern: tuple[int, ...]) -> np.ndarray:
    """Average of ``T`` over permutations of the input axes that carry equal labels in ``pattern``."""
    nu = len(pattern)
    perms = [s for s in itertools.permutations(range(nu)) if all(pattern[s[j]] == pattern[j] for j in range(nu))]
    return sum(T.transpose(0, *[1 + s[j] for j in range(nu)]) for s in perms) / len(perms)


@functools.lru_cache(maxsize=None)
def _block_basis(ls: tuple[int, ...], L: int, pattern: tuple[int, ...]) -> np.ndarray:
    """Orthonormal (block inner product) basis of the equivariant maps of one degree block, symmetric under
    permutations of equal labels: ``[n, 2L+1, 2l_1+1, ..., 2l_ν+1]``."""
    expected = _count_block(ls, L, pattern)
    shape = (2 * L + 1,) + tuple(2 * l + 1 for l in ls)
    kept: list[np.ndarray] = []
    for T in _coupling_candidates(ls, L) if expected else []:
        scale = np.linalg.norm(T)
        v = _symmetrize_block(T, pattern).ravel()
        for _ in range(2):  # Gram–Schmidt, twice for numerical orthogonality
            for q in kept:
                v = v - (q @ v) * q
        r = np.linalg.norm(v) / scale
        if _TOL_ZERO < r < _TOL_KEEP:
            raise RuntimeError(f"no rank gap for degrees {ls} -> L={L}: relative residual {r:.2e}")
        if r >= _TOL_KEEP:
            kept.append(v / np.linalg.norm(v))
    if len(kept) != expected:
        raise RuntimeError(f"degrees {ls} -> L={L}: found {len(kept)} independent couplings, expected {expected}")
    return np.stack(kept).reshape((len(kept),) + shape) if kept else np.zeros((0,) + shape)


def coupling_block(ls, L: int, pattern=None, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """Coupling tensors of one ordered degree tuple (the building block of :func:`coupling_basis`).

    Parameters
    ----------
    ls : sequence of int
        Degrees ``(l_1, ..., l_ν)`` of the ν factors, in any order.
    L : int
        Output degree.
    pattern : sequence of hashable, optional
        Labels of the factors (e.g. ACE's ``(n, z, l)``): the tensors are symmetric under permutations of
        factors with equal labels, and only those. Default: the degrees themselves (one channel).

    Returns
    -------
    torch.Tensor
        ``[n, 2L+1, 2l_1+1, ..., 2l_ν+1]``, orthonormal in the Frobenius inner product,
        ``n`` = multiplicity of ``V_L`` in the labelled tensor product (exact count).
    """
    ls = tuple(int(l) for l in ls)
    pattern = ls if pattern is None else tuple(pattern)
    first = {}
    canonical = tuple(first.setdefault(q, len(first)) for q in pattern)  # e.g. ((1,2),(1,2),(0,3)) -> (0,0,1)
    for a in range(len(ls)):
        for b in range(len(ls)):
            if canonical[a] == canonical[b] and ls[a] != ls[b]:
                raise ValueError(f"factors with equal labels must have equal degrees: {ls}, {pattern}")
    return torch.tensor(_block_basis(ls, int(L), canonical), dtype=dtype, device=device)  # a copy: cache stays intact


def _embed(T: np.ndarray, ls: tuple[int, ...], lmax: int) -> np.ndarray:
    """Place a block tensor at every ordering of its degrees in a full ``[2L+1, d, ..., d]`` tensor."""
    nu, d = len(ls), (lmax + 1) ** 2
    full = np.zeros((T.shape[0],) + (d,) * nu)
    seen = set()
    for s in itertools.permutations(range(nu)):
        order = tuple(ls[s[j]] for j in range(nu))
        if order in seen:
            continue
        seen.add(order)
        index = (slice(None),) + tuple(slice(l * l, (l + 1) ** 2) for l in order)
        full[index] = T.transpose(0, *[1 + s[j] for j in range(nu)])
    return full * math.sqrt(T.shape[0] / len(seen))  # component normalisation: ‖U_η‖² = 2L + 1


# ----------------------------------------------------------------------------- the basis
@functools.lru_cache(maxsize=None)
def _fingerprint() -> str:
    """Hash of this module's source and of a few Wigner-3j tensors: a change of either invalidates the disk cache."""
    h = hashlib.sha1(Path(__file__).read_bytes())
    for l1, l2, l3 in [(1, 1, 0), (1, 1, 1), (1, 1, 2), (1, 2, 1), (2, 2, 2), (2, 1, 3), (3, 3, 2)]:
        h.update(np.round(wigner_3j(l1, l2, l3, dtype=torch.float64).numpy(), 12).tobytes())
    return h.hexdigest()[:12]


def _cache_file(lmax: int, correlation: int, L: int, parity: int) -> Path | None:
    folder = os.environ.get("MINIMACE_CACHE", str(Path.home() / ".cache" / "minimace"))
    if folder.lower() == "off":
        return None
    return Path(folder) / f"coupling_{_fingerprint()}_l{lmax}_nu{correlation}_L{L}_p{parity:+d}.npy"


@functools.lru_cache(maxsize=None)
def _coupling_basis_numpy(lmax: int, correlation: int, L: int, parity: int) -> np.ndarray:
    path = _cache_file(lmax, correlation, L, parity)
    if path is not None and path.exists():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass  # unreadable cache: recompute
    d = (lmax + 1) ** 2
    columns = []
    for ls in degree_multisets(lmax, correlation, parity):
        columns += [_embed(T, ls, lmax) for T in _block_basis(ls, L, ls)]
    U = np.stack(columns, axis=-1) if columns else np.zeros((2 * L + 1,) + (d,) * correlation + (0,))
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, U)
            os.replace(tmp, path)
        except OSError:
            pass  # read-only home: the in-memory cache still works
    return U


def coupling_basis(
    lmax: int, correlation: int, L: int, parity: int, dtype: torch.dtype = torch.float64, device=None
) -> torch.Tensor:
    """Generalized Clebsch–Gordan coefficients ``C^{LM}_{η,lm}`` of MACE Eq. (10).

    Parameters
    ----------
    lmax : int
        Largest degree of the input features ``V = 0e + 1o + 2e + ... + (lmax)``.
    correlation : int
        Body order ν of the product (ν >= 1).
    L : int
        Degree of the output irrep.
    parity : int
        Parity of the output irrep, +1 or -1.
    dtype, device
        Of the returned tensor (computed in float64, then cast).

    Returns
    -------
    torch.Tensor
        ``U`` of shape ``[2L+1, d, ..., d (ν times), n_paths]`` with ``d = (lmax+1)**2``: symmetric in the ``d``
        indices, equivariant (``U (D ⊗ ... ⊗ D) = D_L U``), linearly independent, with orthogonal columns of
        squared norm ``2L+1``. ``n_paths = count_couplings(lmax, correlation, L, parity)`` (may be 0).
    """
    if correlation < 1 or lmax < 0 or L < 0 or parity not in (1, -1):
        raise ValueError(f"invalid arguments lmax={lmax}, correlation={correlation}, L={L}, parity={parity}")
    U = _coupling_basis_numpy(int(lmax), int(correlation), int(L), int(parity))
    return torch.tensor(U, dtype=dtype, device=device)  # a copy: in-place edits never reach the cache


# ----------------------------------------------------------------------------- Eqs. (7) and (10)
def product_basis(A: torch.Tensor, correlation: int) -> torch.Tensor:
    """Product basis, the product inside Eq. (10): ``𝐀[..., i_1, ..., i_ν] = Π_ξ A[..., i_ξ]`` (symmetric).

    Parameters
    ----------
    A : torch.Tensor
        ``[..., d]`` features of one channel (the channel may be a batch dimension).
    correlation : int
        ν, the number of factors.

    Returns
    -------
    torch.Tensor
        ``[..., d, ..., d]`` (ν times). Memory grows as ``d^ν``: use :func:`b_functions` for real work.
    """
    out = A
    for _ in range(correlation - 1):
        out = out.unsqueeze(-1) * A.reshape(A.shape[:-1] + (1,) * (out.dim() - A.dim() + 1) + A.shape[-1:])
    return out


def b_functions(A: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """B-functions of Eq. (10): ``B[..., M, η] = Σ_{i_1..i_ν} U[M, i_1, ..., i_ν, η] Π_ξ A[..., i_ξ]``.

    The contraction runs one index at a time (never forming the ``d^ν`` product basis).

    Parameters
    ----------
    A : torch.Tensor
        ``[..., d]`` features (any leading dimensions: atoms, channels).
    U : torch.Tensor
        ``[2L+1, d, ..., d, n_paths]`` from :func:`coupling_basis`.

    Returns
    -------
    torch.Tensor
        ``[..., 2L+1, n_paths]``.
    """
    nu, d = U.dim() - 2, A.shape[-1]
    n_out, n_paths = U.shape[0], U.shape[-1]
    X = U.movedim(-1, 1).reshape(-1, d)  # [(2L+1) n_paths d^(ν-1), d]
    X = A @ X.T  # [..., (2L+1) n_paths d^(ν-1)]
    for _ in range(nu - 1):
        X = (X.reshape(X.shape[:-1] + (-1, d)) @ A.unsqueeze(-1)).squeeze(-1)  # one d index fewer
    return X.reshape(A.shape[:-1] + (n_out, n_paths))


def to_sympy(U: torch.Tensor, max_denominator: int = 10**6):
    """Exact form of a coupling tensor whose entries are ± square roots of rationals (e.g. ν = 2 bases).

    Each entry x is recognised as ``sign(x) * sqrt(p/q)`` from the rational approximation of ``x²`` and the
    recognition is verified to 1e-13; anything else raises ``ValueError``.

    Returns
    -------
    sympy.Array
        Same shape as ``U``.
    """
    import sympy as sp

    values = U.detach().double().cpu().numpy()
    out = []
    for x in values.ravel():
        square = sp.Rational(float(x * x)).limit_denominator(max_denominator)
        exact = sp.sign(sp.Float(x)) * sp.sqrt(square)
        if abs(float(exact) - x) > 1e-13:
            raise ValueError(f"{x!r} is not ± sqrt(p/q) with q <= {max_denominator}")
        out.append(exact)
    return sp.Array(out, values.shape)


# ----------------------------------------------------------------------------- checks: the density trick, the rank gap
def neighbour_product_sum(phi: torch.Tensor, correlation: int) -> torch.Tensor:
    """Left side of the density trick: ``Σ_{j_1, ..., j_ν} φ_{j_1} ⊗ ... ⊗ φ_{j_ν}`` over all neighbour tuples.

    The sums of MACE Eq. 7 run over every tuple, self-interactions ``j_1 = j_2`` included, so this equals
    ``product_basis(phi.sum(0), correlation)``. Here the ``N^ν`` tuples are formed explicitly, which costs
    ``N^ν d^ν`` operations and memory (a check and a lesson, not a way to compute).

    Parameters
    ----------
    phi : torch.Tensor
        ``[N, d]``: the one-particle basis φ of the N neighbours of one atom (one channel).
    correlation : int
        ν, the number of factors.

    Returns
    -------
    torch.Tensor
        ``[d, ..., d]`` (ν times).
    """
    n, d = phi.shape
    T = phi  # [N^k tuples, d^k]: the products of k factors, one row per neighbour tuple (j_1, ..., j_k)
    for _ in range(correlation - 1):
        T = (T[:, None, :, None] * phi[None, :, None, :]).reshape(T.shape[0] * n, T.shape[1] * d)
    return T.sum(0).reshape((d,) * correlation)


def rank_gap(lmax: int, correlation: int) -> tuple[float, float]:
    """The measured gap of the rank certificate (step 4 of the module docstring) for every ``L`` and parity.

    Re-runs the Gram–Schmidt of :func:`coupling_basis` over the candidates of every degree block and records the
    relative residual of each candidate.

    Returns
    -------
    (float, float)
        The largest residual of a candidate found dependent and the smallest residual of one kept
        (``nan`` where there is none). The thresholds ``_TOL_ZERO`` and ``_TOL_KEEP`` must sit between them.
    """
    dependent, kept_min = [], []
    for ls in degree_multisets(lmax, correlation):
        for L in range(0, sum(ls) + 1):
            if not _count_block(ls, L):
                continue
            kept: list[np.ndarray] = []
            for T in _coupling_candidates(ls, L):
                v = _symmetrize_block(T, ls).ravel()
                for _ in range(2):
                    for q in kept:
                        v = v - (q @ v) * q
                r = np.linalg.norm(v) / np.linalg.norm(T)
                if r >= _TOL_KEEP:
                    kept.append(v / np.linalg.norm(v))
                    kept_min.append(r)
                else:
                    dependent.append(r)
    return (max(dependent) if dependent else math.nan, min(kept_min) if kept_min else math.nan)


# ----------------------------------------------------------------------------- exact (sympy) checks
def symbolic_rotation(axis: str):
    """A symbolic rotation about the ``"z"`` or ``"y"`` axis by an angle with cosine ``c`` and sine ``s`` (symbols).

    Rotations about z and about y generate SO(3) (Euler angles: R = R_z(α) R_y(β) R_z(γ)), so an identity
    ``f(R r) = D(R) f(r)`` that holds for both generators at every angle holds for every rotation. Checking the
    generators one at a time keeps the polynomials small. Use :func:`reduce_trig` to apply ``s² + c² = 1``.

    Returns
    -------
    sympy.Matrix
        3×3, entries in ``{0, 1, c, s, -s}``.
    """
    import sympy as sp

    c, s = sp.symbols("c s", real=True)
    if axis == "z":
        return sp.Matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    if axis == "y":
        return sp.Matrix([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    raise ValueError(f"axis must be 'z' or 'y', got {axis!r}")


def reduce_trig(expr):
    """Replace ``s^k`` by ``s^(k mod 2) (1 − c²)^(k // 2)`` (the symbols of :func:`symbolic_rotation`).

    The result is a polynomial in which no power of ``s`` above 1 appears: it is zero iff ``expr`` vanishes at
    every angle.
    """
    import sympy as sp

    c, s = sp.symbols("c s", real=True)
    poly = sp.Poly(sp.expand(expr), s)
    return sp.expand(sum(co * s ** (k % 2) * (1 - c**2) ** (k // 2) for (k,), co in poly.terms()))


def symbolic_atomic_basis(vectors, lmax: int) -> list:
    """``A_lm = Σ_j |r_j|^l Y_lm(r̂_j)`` (solid harmonics, exact polynomials) for sympy vectors ``r_j``.

    Returns the ``(lmax+1)**2`` components in e3nn's order (the radial weight ``r^l`` keeps them polynomial).
    """
    from .so3 import sympy_real_spherical_harmonic
    from .so3.spherical_harmonics import x, y, z

    Y = [sympy_real_spherical_harmonic(l, m) for l in range(lmax + 1) for m in range(-l, l + 1)]
    return [sum(Ylm.subs({x: v[0], y: v[1], z: v[2]}, simultaneous=True) for v in vectors) for Ylm in Y]


def symbolic_b_functions(U, a, path: int | None = None):
    """Eq. (10) on sympy values: ``B[M, η] = Σ U[M, i_1, ..., i_ν, η] Π_ξ a[i_ξ]`` (``U`` from :func:`to_sympy`).

    Parameters
    ----------
    U : sympy.Array
        ``[2L+1, d, ..., d, n_paths]``.
    a : sequence
        ``d`` sympy expressions (e.g. :func:`symbolic_atomic_basis`).
    path : int, optional
        Only this column η.

    Returns
    -------
    sympy.Matrix
        ``[2L+1, n_paths]`` (or ``[2L+1, 1]`` for one path).
    """
    import sympy as sp

    shape = U.shape
    nu, paths = len(shape) - 2, range(shape[-1]) if path is None else [path]
    terms = {(M, e): 0 for M in range(shape[0]) for e in paths}
    for idx in itertools.product(*[range(n) for n in shape[:-1]]):
        for e in paths:
            c = U[idx + (e,)]
            if c != 0:
                terms[(idx[0], e)] += c * sp.Mul(*[a[i] for i in idx[1:]])
    return sp.Matrix(shape[0], len(paths), lambda M, k: terms[(M, list(paths)[k])])
