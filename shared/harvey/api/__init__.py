"""Each function's HTTP surface: its routes, their handlers, and what they answer.

A handler parses, makes one library call and responds; `functions/<name>/main.py` only hands the
request to `API.handle`. The same `Route` objects feed the OpenAPI document (`edge.openapi`).
Heavy modules are imported inside handlers, so a cold start pays only for what a request uses.
"""

FUNCTIONS = ("generate", "feedback", "maintenance", "ingest")


def load(function: str):  # noqa: ANN201 - an http.Function; typed lazily to keep this import free
    """The `API` of a function by name."""
    import importlib

    return importlib.import_module(f"harvey.api.{function}").API
