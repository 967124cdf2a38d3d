"""A pytest plugin: the ``verify`` fixture checks a potential in another project's tests.

Load it with ``pytest -p minimace.testing.plugin`` (or ``pytest_plugins = ["minimace.testing.plugin"]`` in a
``conftest.py``), then::

    def test_my_potential(verify):
        report = verify(my_calculator, atoms)            # fails the test, with the table, if a check fails
        assert report["forces_gradient"].error < 1e-8     # the report is returned for further assertions

``verify`` takes the arguments of :func:`minimace.testing.verify`. The reports of a test are printed in its
"Captured stdout" section.
"""

from __future__ import annotations

import pytest

from .verify import verify as _verify


@pytest.fixture
def verify():
    """``verify(potential, atoms, **options) -> Report``, failing the test when any check fails."""

    def check(potential, atoms, *args, **kwargs):
        report = _verify(potential, atoms, *args, **kwargs)
        print(report)
        if not report.passed:
            pytest.fail(f"potential failed verification:\n{report}", pytrace=False)
        return report

    return check
