"""Tests of the irreps vocabulary: parsing, dimensions, slices, products, clear errors."""

import pytest

from minimace.so3 import Irrep, Irreps, MulIrrep


def test_parse_and_print():
    irreps = Irreps("128x0e + 64x1o+2e")
    assert list(irreps) == [MulIrrep(128, Irrep(0, 1)), MulIrrep(64, Irrep(1, -1)), MulIrrep(1, Irrep(2, 1))]
    assert str(irreps) == "128x0e+64x1o+1x2e"
    assert Irreps(str(irreps)) == irreps and hash(Irreps(str(irreps))) == hash(irreps)
    assert Irreps([(2, "1o"), "0e", Irrep(3, -1), MulIrrep(4, Irrep(0, -1))]) == "2x1o+1x0e+1x3o+4x0o"
    assert Irreps(irreps) == irreps and Irreps() == Irreps("") == Irreps(None)
    assert repr(irreps) == "Irreps('128x0e+64x1o+1x2e')"
    assert Irrep.parse("3o") == Irrep(3, -1) and Irrep.parse((1, 1)) == Irrep(1, 1) and str(Irrep(2, -1)) == "2o"


def test_dimensions_slices_and_queries():
    irreps = Irreps("8x0e+8x1o+2x2e")
    assert irreps.dim == 8 + 24 + 10 and irreps.num_irreps == 18 and irreps.lmax == 2
    assert irreps.slices() == [slice(0, 8), slice(8, 32), slice(32, 42)]
    assert irreps.ls == [0] * 8 + [1] * 8 + [2] * 2
    assert irreps.count("1o") == 8 and "2e" in irreps and "2o" not in irreps
    assert Irrep(2, 1).dim == 5 and MulIrrep(3, Irrep(1, -1)).dim == 9
    mul, ir = MulIrrep(3, Irrep(1, -1))
    assert (mul, ir) == (3, Irrep(1, -1))
    assert Irreps.spherical_harmonics(3) == "0e+1o+2e+3o"
    assert Irreps.spherical_harmonics(2, p=1) == "0e+1e+2e"


def test_products_simplify_sort_and_add():
    assert list(Irrep(1, -1) * Irrep(2, -1)) == [Irrep(1, 1), Irrep(2, 1), Irrep(3, 1)]
    assert list(Irrep(0, 1) * Irrep(1, -1)) == [Irrep(1, -1)]
    assert Irreps("1x0e+2x0e+1x1o+0x2e").simplify() == "3x0e+1x1o"
    assert Irreps("1o+0e+1e+0o").sort() == "0e+0o+1o+1e"  # e3nn order: for each l, the parity of Y_l first
    assert Irreps("0e") + "1o" == "0e+1o"
    assert Irreps("0e") != "0o" and Irreps("0e") != "not irreps"


@pytest.mark.parametrize("bad", ["1x", "x1o", "1y", "2x-1e", "16x0e+8x", "abc", "1.5e", "0e + + 1o2"])
def test_bad_strings_raise_clear_errors(bad):
    with pytest.raises(ValueError, match="cannot parse irreps"):
        Irreps(bad)


def test_empty_terms_are_skipped():
    assert Irreps("1o+") == Irreps("+1o") == "1o"


def test_bad_irrep_values():
    with pytest.raises(ValueError, match="cannot parse irrep"):
        Irrep.parse("2x1o")  # a multiplicity is not an irrep
    with pytest.raises(ValueError, match="degree"):
        Irrep(-1, 1)
    with pytest.raises(ValueError, match="parity"):
        Irrep(1, 0)
    with pytest.raises(ValueError, match="lmax"):
        Irreps("").lmax
