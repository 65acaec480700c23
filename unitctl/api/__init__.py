"""unitctl's HTTP API server (``unitctl serve``): fleet's v1 API and unitctl's own.

- :mod:`.routes`: the one route table (method, path, role, handler); the
  OpenAPI document (``openapi.json``, served at ``/openapi.json``) is tested
  to list exactly these routes.
- :mod:`.errors`, :mod:`.fleetschema`, :mod:`.jsonbody`: pure parts (error
  format, fleet's JSON schema and page tokens, request body checks).
- :mod:`.auth`: tokens and client certificates to a role.
- :mod:`.fleetv1`, :mod:`.reads`, :mod:`.actions`, :mod:`.streams`,
  :mod:`.events`: the handlers; every one works through the client layer
  (:class:`~unitctl.client.facade.Client`, :mod:`unitctl.client.agents`) over
  the :class:`~unitctl.registry.registry.Registry`, as the CLI does.
- :mod:`.app`: the aiohttp application (middlewares: errors, auth, audit).
- :mod:`.server`: opening etcd, TLS and running the server.

aiohttp is imported only here, never on the CLI's import path.
"""
