"""The web console of a tenant's administrators, ``/t/{tenant}/console``: server-rendered
pages (Jinja2, autoescaped) over the admin API's service layer (``broker.admin.dispatch``),
signed in through the tenant's own upstream IdP, one small script, a CSP without
``unsafe-inline`` and a CSRF token on every form."""

from broker.console.app import routes

__all__ = ["routes"]
