"""Shared test configuration.

Docker and bubblewrap tests need their backend. A newcomer without them sees those tests skipped with the
reason and how to enable them; CI sets RLVR_REQUIRE_SANDBOXES=1 so a missing backend fails loudly instead.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_SANDBOXES = os.environ.get("RLVR_REQUIRE_SANDBOXES") == "1"


def missing_backend(reason: str) -> None:
    """Skip (locally) or fail (CI) a test whose sandbox backend is not available."""
    hint = "; run `make sandboxes` (needs root: installs docker.io and bubblewrap, builds the runtime image)"
    if REQUIRE_SANDBOXES:
        pytest.fail(f"RLVR_REQUIRE_SANDBOXES=1 but {reason}{hint}", pytrace=False)
    pytest.skip(f"{reason}{hint}")
