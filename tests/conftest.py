"""Fixtures shared by the test modules."""

import pytest

from minimace.datasets import data_dir
from minimace.graph import DataError


@pytest.fixture(scope="module")
def shared():
    """The folder of the shared real datasets (``$MINIMACE_DATA``); the test is skipped where there is none."""
    try:
        return data_dir()
    except DataError as error:
        pytest.skip(str(error))
