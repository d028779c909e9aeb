"""Browser tests run against a real ``tessera serve`` (the interop fixtures)."""

from tests.interop.conftest import login_tenant, tessera_server  # noqa: F401 (fixtures)
