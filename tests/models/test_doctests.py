"""The examples in the docstrings of macbdf.models run and give what they show."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["macbdf.models", "macbdf.models.config", "macbdf.models.registry", "macbdf.models.encoders",
           "macbdf.models.contrastive", "macbdf.models.clustering", "macbdf.models.fusion",
           "macbdf.models.multiscale", "macbdf.models.heads", "macbdf.models.macbdf", "macbdf.models.losses",
           "macbdf.models.fastpath"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
