"""Bad config and an incompatible Synapse stop Synapse at startup with a clear message."""

from __future__ import annotations

import pytest
import synapse

from tests.harness.constants import MODULE
from tests.harness.synapse import module_entry, startup_failure_output

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"base_cs_url": "ftp://cs.example.com"}, "base_cs_url: 'ftp://cs.example.com' has scheme"),
        ({"base_cs_url": "cs.example.com"}, "base_cs_url: 'cs.example.com' is a relative URL"),
        ({"well_known": "yes"}, "well_known: must be true or false, not 'yes'"),
        ({"base_url": "https://x"}, "unknown key 'base_url'"),
    ],
)
def test_bad_config_fails_startup_naming_the_key(tmp_path, config, expected) -> None:  # type: ignore[no-untyped-def]
    output = startup_failure_output(tmp_path, [module_entry(**config)])
    assert "Error in configuration" in output
    assert MODULE in output
    assert expected in output


def test_incompatible_synapse_fails_startup_naming_versions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    output = startup_failure_output(
        tmp_path,
        [
            {
                "module": "tests.in_synapse.incompatible_synapse.ReshapeLoginServlet",
                "config": {},
            },
            module_entry(),
        ],
    )
    assert f"synapse-base-cs-url cannot run on Synapse {synapse.__version__}" in output
    assert "LoginRestServlet.on_POST is no longer a coroutine function" in output
    assert "takes (self, request, extra), expected (self, request)" in output
    assert "Supported Synapse versions: 1.100.0 to 1.163.2" in output
