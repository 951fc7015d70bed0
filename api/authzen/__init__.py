"""The OpenID AuthZEN Authorization API 1.0 over the engine: AuthZEN's questions as engine
operations (`api.authzen.decisions`) and the search pages' tokens (`api.authzen.paging`). The
HTTP side is `api/routes/authzen.py`, the wire format `api/models/authzen.py`."""
