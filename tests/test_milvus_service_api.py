"""Every /search, /documents and meta test of test_service_api.py, run again with the service on the
Milvus backend (a real milvus-lite server, the bundled corpus published to it by the indexer)."""

from __future__ import annotations

import pytest
from milvus_fixtures import milvus_uri  # noqa: F401
from test_milvus_backend import milvus_app_client, milvus_real_index  # noqa: F401
from test_service_api import *  # noqa: F401,F403 - the same tests, collected again here

pytest.importorskip("pymilvus")
pytestmark = pytest.mark.model


@pytest.fixture(scope="session")
def app_client(milvus_app_client):  # noqa: F811 - the Milvus-backed app in place of the local one
    return milvus_app_client
