"""Signing the tests' HTTP clients in: tests that are not about access read and write as admin.

Layers are not public unless their definition says so, so a test of paging, tiles or filters
that made its own layer reads it with an admin key (``TWIN_API_KEYS``), as an operator would.
What each role may see is tested in ``tests/test_access*.py``.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

ADMIN_KEY = "tests-admin-key"
ADMIN = {"X-API-Key": ADMIN_KEY}


def signed_in(client: TestClient) -> TestClient:
    """The client, sending the admin key with every request."""
    client.headers.update(ADMIN)
    return client
