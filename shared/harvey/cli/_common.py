"""What the sub-commands share: friendly errors and JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one clear line and exit code 1, not a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from harvey import logs
        from harvey.config import get_settings
        from harvey.search.ingest import IngestError
        from harvey.store.db import DatabaseUnavailable
        from harvey.store.tenants import TenantExists, UnknownTenant

        logs.setup(get_settings().log_level, stream=sys.stderr)
        try:
            return command(*args, **kwargs)
        except (DatabaseUnavailable, IngestError, TenantExists, UnknownTenant, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        except Exception as exc:
            code = getattr(exc, "args", [{}])[0]
            if isinstance(code, dict) and code.get("C") == "42P01":
                raise click.ClickException("the database schema is missing: run `harvey db migrate`") from exc
            raise

    return wrapper


def progress_bar(total: int | None, unit: str, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, disable=None, dynamic_ncols=True)
