"""Irreducible representations of O(3) as plain data: ``"128x0e+128x1o"``.

An irrep of O(3) is labelled by its degree ``l`` (dimension ``2l+1``) and its parity ``p = ±1``
(``e`` even, ``o`` odd). A feature vector of type ``"8x0e+8x1o"`` holds 8 scalars then 8 vectors,
in the "mul_ir" layout used by e3nn and mace-torch: for each irrep block, ``[mul, 2l+1]`` flattened
channel-major, so the block of ``8x1o`` is ``[u0_x, u0_y, u0_z, u1_x, ...]``.

This module is the vocabulary every other stage uses; it has no maths beyond bookkeeping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Union

_IR_RE = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(\d+)\s*([eo])\s*$")


@dataclass(frozen=True, order=True)
class Irrep:
    """One irrep of O(3): degree ``l`` and parity ``p`` (+1 even, -1 odd)."""

    l: int
    p: int

    def __post_init__(self):
        if self.l < 0:
            raise ValueError(f"irrep degree must be >= 0, got l={self.l}")
        if self.p not in (1, -1):
            raise ValueError(f"irrep parity must be +1 or -1, got p={self.p}")

    @property
    def dim(self) -> int:
        """Dimension ``2l + 1``."""
        return 2 * self.l + 1

    def __str__(self) -> str:
        return f"{self.l}{'e' if self.p == 1 else 'o'}"

    def __repr__(self) -> str:
        return str(self)

    def __mul__(self, other: "Irrep") -> Iterator["Irrep"]:
        """Irreps in the tensor product: ``|l1-l2| <= l <= l1+l2`` with parity ``p1*p2``."""
        p = self.p * other.p
        for l in range(abs(self.l - other.l), self.l + other.l + 1):
            yield Irrep(l, p)

    @classmethod
    def parse(cls, s: Union[str, "Irrep", tuple]) -> "Irrep":
        """``"1o"`` -> ``Irrep(1, -1)``; also accepts an Irrep or an ``(l, p)`` tuple."""
        if isinstance(s, Irrep):
            return s
        if isinstance(s, tuple):
            return cls(*s)
        m = _IR_RE.match(s)
        if m is None or m.group(1) is not None:
            raise ValueError(f"cannot parse irrep {s!r}: expected e.g. '1o' or '2e'")
        return cls(int(m.group(2)), 1 if m.group(3) == "e" else -1)


@dataclass(frozen=True)
class MulIrrep:
    """``mul`` copies (channels) of one irrep."""

    mul: int
    ir: Irrep

    @property
    def dim(self) -> int:
        return self.mul * self.ir.dim

    def __str__(self) -> str:
        return f"{self.mul}x{self.ir}"

    def __iter__(self):  # allows ``for mul, ir in irreps``
        yield self.mul
        yield self.ir


class Irreps(tuple):
    """A direct sum of irreps with multiplicities, e.g. ``Irreps("128x0e+128x1o")``.

    Examples
    --------
    >>> irreps = Irreps("8x0e+8x1o")
    >>> irreps.dim, irreps.lmax, str(irreps)
    (32, 1, '8x0e+8x1o')
    >>> [s for s in irreps.slices()]
    [slice(0, 8, None), slice(8, 32, None)]
    """

    def __new__(cls, irreps: Union[str, Iterable, "Irreps", None] = None):
        if irreps is None:
            items = []
        elif isinstance(irreps, Irreps):
            items = list(irreps)
        elif isinstance(irreps, str):
            items = []
            for part in irreps.split("+"):
                if not part.strip():
                    continue
                m = _IR_RE.match(part)
                if m is None:
                    raise ValueError(
                        f"cannot parse irreps {irreps!r}: bad term {part.strip()!r} "
                        "(expected terms like '128x0e' or '1o' joined by '+')"
                    )
                mul = int(m.group(1)) if m.group(1) is not None else 1
                items.append(MulIrrep(mul, Irrep(int(m.group(2)), 1 if m.group(3) == "e" else -1)))
        else:
            items = []
            for x in irreps:
                if isinstance(x, MulIrrep):
                    items.append(x)
                elif isinstance(x, Irrep):
                    items.append(MulIrrep(1, x))
                elif isinstance(x, str):
                    items.extend(Irreps(x))
                else:
                    mul, ir = x
                    items.append(MulIrrep(int(mul), Irrep.parse(ir)))
        return super().__new__(cls, items)

    @classmethod
    def spherical_harmonics(cls, lmax: int, p: int = -1) -> "Irreps":
        """``1x0e+1x1o+1x2e+...`` up to ``lmax`` (parity ``p**l``)."""
        return cls([(1, Irrep(l, p**l)) for l in range(lmax + 1)])

    @property
    def dim(self) -> int:
        """Total dimension ``Σ mul (2l+1)``."""
        return sum(mi.dim for mi in self)

    @property
    def num_irreps(self) -> int:
        """Total number of channels ``Σ mul``."""
        return sum(mi.mul for mi in self)

    @property
    def lmax(self) -> int:
        if len(self) == 0:
            raise ValueError("empty irreps have no lmax")
        return max(mi.ir.l for mi in self)

    @property
    def ls(self) -> list:
        """The degree of every channel, e.g. ``[0, 0, 1]`` for ``2x0e+1x1o``."""
        return [mi.ir.l for mi in self for _ in range(mi.mul)]

    def slices(self) -> list:
        """The slice of each ``MulIrrep`` block in a flat feature vector."""
        out, start = [], 0
        for mi in self:
            out.append(slice(start, start + mi.dim))
            start += mi.dim
        return out

    def count(self, ir) -> int:  # type: ignore[override]
        """Number of channels of irrep ``ir``."""
        ir = Irrep.parse(ir)
        return sum(mi.mul for mi in self if mi.ir == ir)

    def __contains__(self, ir) -> bool:  # type: ignore[override]
        ir = Irrep.parse(ir)
        return any(mi.ir == ir for mi in self)

    def simplify(self) -> "Irreps":
        """Merge neighbouring blocks of the same irrep: ``1x0e+1x0e`` -> ``2x0e``."""
        out = []
        for mi in self:
            if out and out[-1].ir == mi.ir:
                out[-1] = MulIrrep(out[-1].mul + mi.mul, mi.ir)
            elif mi.mul > 0:
                out.append(mi)
        return Irreps(out)

    def sort(self) -> "Irreps":
        """Irreps sorted by (l, p) as e3nn sorts them (even before odd for one l)."""
        key = lambda mi: (mi.ir.l, -mi.ir.p * (-1) ** mi.ir.l)  # noqa: E731
        return Irreps(sorted(self, key=key))

    def __add__(self, other) -> "Irreps":
        return Irreps(list(self) + list(Irreps(other)))

    def __str__(self) -> str:
        return "+".join(str(mi) for mi in self)

    def __repr__(self) -> str:
        return f"Irreps('{self}')"

    def __eq__(self, other) -> bool:
        try:
            other = Irreps(other)
        except (ValueError, TypeError):
            return False
        return tuple.__eq__(self, other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)
