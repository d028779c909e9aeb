"""The admin surface: ``/admin/v1`` over HTTP and the ``tessera`` CLI's management commands.

    models/     pydantic request and response bodies, split by area (one validation path)
    services/   the operations, called by the HTTP routes and the CLI alike
    routes.py   the one route table: method, path, models, status, handler, summary, tag
    http.py     the edge: admin bearer, bounded JSON body -> model, errors naming the field
    openapi.py  the OpenAPI 3.1 document generated from the table and the models
"""
