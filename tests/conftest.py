"""Shared fixtures: a real local Ray cluster, started once per test process."""

from __future__ import annotations

import logging
import os

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """A real Ray instance on this machine (2 CPUs, no dashboard), shut down at the end."""
    import ray

    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(
        address="local",  # never join a cluster another test started with `ray start`
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        help="run the soak test long: more driver kills, more trials (tests/e2e/test_soak.py)",
    )
    parser.addoption(
        "--soak-seed",
        type=int,
        default=None,
        help="the soak test's random seed (default: a new one, printed when the test fails)",
    )
