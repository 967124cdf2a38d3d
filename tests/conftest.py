"""Fixtures shared by the test modules.

Real data sets (rMD17, BOTNet, ...) are not part of a clone. A test that needs them takes the ``shared`` fixture
and names the data sets with ``@pytest.mark.shared_data("botnet_ethanol", ...)`` (no marker: every data set).
Where they are missing the test is skipped with the command that fetches them (``minimace download NAME``);
under ``CI=true`` (CI has the data) a missing data set is a failure instead.
"""

import os

import pytest

from minimace.datasets import require
from minimace.graph import DataError


def pytest_configure(config):
    config.addinivalue_line("markers", "shared_data(*names): the real data sets a test using `shared` needs")


def need_shared(*names):
    """The data folder holding the data sets ``names``; skip (fail under ``CI=true``) when one is missing."""
    try:
        return require(*names)
    except DataError as error:
        missing = str(error)
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true and a real data set is missing: {missing}", pytrace=False)
    pytest.skip(missing)


@pytest.fixture
def shared(request):
    """The folder of the real data sets named by the test's ``shared_data`` marker (``$MINIMACE_DATA``, ...)."""
    marker = request.node.get_closest_marker("shared_data")
    return need_shared(*(marker.args if marker else ()))
