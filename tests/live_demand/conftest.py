"""Fixtures of the /ws tests: a real aggregator in this process, users of each role."""

from tests.aggregator.conftest import pg_database  # noqa: F401
from tests.api.conftest import api, db_url, password_hash, template_db  # noqa: F401
