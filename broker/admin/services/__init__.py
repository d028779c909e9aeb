"""The admin operations, one module per area, shared by the HTTP routes
(``broker.admin.routes``) and the CLI: they take validated request models
(``broker.admin.models``) and return response models. Refusals are ``OAuthError``s:
``InvalidRequest`` (400) for a change that cannot be made, ``NotFound`` (404) for an object
that is not there (or belongs to another tenant), ``Conflict`` (409) for a create of what
exists already (the route declares ``conflict=EXISTS``, ``broker.admin.route``). Audit events
name the actor set at the edge (``tenants.audit.acting_as``)."""
