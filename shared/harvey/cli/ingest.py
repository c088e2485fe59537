"""`harvey ingest PATH --tenant NAME`, and `harvey ingest PATH --to URL --key KEY` through the API."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from harvey.cli._common import echo_json, friendly_errors, progress_bar

RECORDS = ".jsonl"
MAX_RETRIES = 8  # 503/429 answers honoured (Retry-After) before a file is reported as not uploaded
POLL_S = 1.0
HELD_S = 540  # the function's own cap on `Prefer: wait`


@dataclass(frozen=True)
class Outcome:
    """What became of one file: indexed, unchanged, failed, or not uploaded ("error")."""

    path: str
    document_id: str
    status: str
    chunks: int = 0
    reason: str | None = None


def _files(path: Path) -> tuple[Path, list[Path]]:
    """(base folder, the files under PATH that Harvey reads), sorted."""
    from harvey.search.ingest import CONTENT_TYPES, IngestError

    if not path.exists():
        raise IngestError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() not in {*CONTENT_TYPES, RECORDS}:
            raise IngestError(f"{path}: unsupported file type (use {', '.join(sorted({*CONTENT_TYPES, RECORDS}))})")
        return path.parent, [path]
    found = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in {*CONTENT_TYPES, RECORDS}]
    return path, sorted(found)


def document_id_for(file: Path, base: Path) -> str:
    """The file's path under the folder, '~' between its parts (a document id is one URL path segment)."""
    return "~".join(file.relative_to(base).parts)


@click.command("ingest")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--tenant", "tenant_name", help="Tenant that owns the documents (indexed here, in this process).")
@click.option("--to", "url", metavar="URL", help="Upload through the ingest function at URL instead.")
@click.option("--key", envvar="HARVEY_API_KEY", help="The tenant's API key, with --to (or HARVEY_API_KEY).")
@click.option(
    "--parallel", type=click.IntRange(1, 64), default=4, show_default=True, help="Uploads in flight, with --to."
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(1),
    default=900.0,
    show_default=True,
    help="Seconds to wait for each document to be indexed, with --to.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts (and failures) as JSON.")
@friendly_errors
def ingest(
    path: Path,
    tenant_name: str | None,
    url: str | None,
    key: str | None,
    parallel: int,
    timeout_s: float,
    as_json: bool,
) -> None:
    """Index PATH for a tenant: PDF (text or scanned), DOCX, HTML, .txt and .md files, or a folder of
    them (recursively), and .jsonl records ({"id", "text"[, "title", "metadata"]}).

    Files go through the same parse → chunk → index path as the ingest function's uploads: each becomes
    a document (its id: its path under the folder, parts joined by "~") that ends indexed, unchanged
    (same bytes as before) or failed with the reason. A changed file replaces its old chunks.

    With --to URL --key KEY the files are uploaded to the ingest function (POST /documents), --parallel
    at a time, and followed until the server says each is indexed or failed. Exits 1 if any failed.

    \b
    Examples:
      harvey ingest acervo/ --tenant escritorio-exemplo
      harvey ingest acervo/ --to https://ingest.example.com --key "$KEY" --parallel 8
    """
    if (tenant_name is None) == (url is None):
        raise click.UsageError("give either --tenant NAME (index here) or --to URL --key KEY (upload)")
    if url is not None and not key:
        raise click.UsageError("--to needs --key (or HARVEY_API_KEY)")
    base, files = _files(path)
    if url is not None:
        records = [f for f in files if f.suffix.lower() == RECORDS]
        if records:
            raise click.UsageError(f"{records[0]}: .jsonl records are indexed with --tenant, not uploaded")
        outcomes = _upload_all(url.rstrip("/"), str(key), base, files, parallel, timeout_s)
        counts = Counter(o.status for o in outcomes)
        summary = {
            "indexed": counts["indexed"],
            "unchanged": counts["unchanged"],
            "failed": counts["failed"] + counts["error"],
            "chunks": sum(o.chunks for o in outcomes),
        }
    else:
        summary, outcomes = _index_here(str(tenant_name), base, files)
    failures = [o for o in outcomes if o.status in ("failed", "error")]
    _report(len(files), summary, failures, as_json)
    if failures:
        raise SystemExit(1)


def _index_here(tenant_name: str, base: Path, files: list[Path]) -> tuple[dict[str, int], list[Outcome]]:
    from harvey.intake.ocr import OcrUnavailable
    from harvey.search import ingest as pipeline
    from harvey.store import documents, tenants

    owner = tenants.by_name(tenant_name)
    records = [f for f in files if f.suffix.lower() == RECORDS]
    uploads = [f for f in files if f.suffix.lower() != RECORDS]
    summary = {"added": 0, "updated": 0, "unchanged": 0, "failed": 0, "chunks": 0}
    if records:
        docs = [doc for file in records for doc in pipeline.read_path(file)]
        with progress_bar(len(docs), "doc", "records") as bar:
            result = pipeline.ingest(owner.id, docs, progress=bar.update)
        for name in ("added", "updated", "unchanged", "chunks"):
            summary[name] += getattr(result, name)
    outcomes = []
    with progress_bar(len(uploads), "file", "files") as bar:
        for file in uploads:
            document_id = document_id_for(file, base)
            existed = documents.get(owner.id, document_id) is not None
            content_type = pipeline.CONTENT_TYPES[file.suffix.lower()]
            upload = pipeline.Upload(file.read_bytes(), content_type, document_id, origin="cli")
            try:
                accepted, doc = pipeline.ingest_upload(owner.id, upload)
            except OcrUnavailable as exc:
                raise click.ClickException(f"{file}: {exc}") from None
            except ValueError as exc:  # an unsupported or mismatched type, a bad id: knowable before parsing
                outcomes.append(Outcome(str(file), document_id, "failed", reason=str(exc)))
                summary["failed"] += 1
                bar.update(1)
                continue
            status = "unchanged" if accepted.status == "unchanged" else doc.status
            outcomes.append(Outcome(str(file), document_id, status, doc.chunks, doc.error))
            if status == "indexed":
                summary["updated" if existed else "added"] += 1
                summary["chunks"] += doc.chunks
            else:
                summary["unchanged" if status == "unchanged" else "failed"] += 1
            bar.update(1)
    return summary, outcomes


def _report(total: int, summary: dict[str, int], failures: list[Outcome], as_json: bool) -> None:
    if as_json:
        echo_json({**summary, "failures": [f.__dict__ for f in failures]})
        return
    counts = ", ".join(f"{value} {name}" for name, value in summary.items() if name != "chunks")
    click.echo(f"{total} files: {counts}; {summary['chunks']} chunks indexed")
    for failure in failures:
        click.echo(f"  {failure.path}: {failure.status}: {failure.reason}", err=True)


# ---------------------------------------------------------------- --to URL


def _call(method: str, url: str, key: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    """(status, headers, JSON body or None); a connection that fails is a click error naming the URL."""
    request = urllib.request.Request(  # noqa: S310 - the operator's own URL
        url, data=body, method=method, headers={"Authorization": f"Bearer {key}", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return response.status, response.headers, _json(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, _json(error.read())
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise click.ClickException(f"{url}: {getattr(exc, 'reason', exc)}") from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _retry_after(headers) -> float:  # noqa: ANN001 - an http.client.HTTPMessage
    value = headers.get("Retry-After") if headers else None
    return float(value) if value and value.isdigit() else 1.0


def _upload_one(url: str, key: str, file: Path, document_id: str, timeout_s: float) -> Outcome:
    """POST the file (waiting out 503/429 as told), then follow its status until it is final."""
    from harvey.search.ingest import CONTENT_TYPES

    headers = {
        "Content-Type": CONTENT_TYPES[file.suffix.lower()],
        "X-Document-Id": quote(document_id, safe=""),
        # Held while it is indexed: the uploads in flight are the load Knative scales the function out on.
        "Prefer": f"wait={int(min(timeout_s, HELD_S))}",
    }
    data = file.read_bytes()
    for _ in range(MAX_RETRIES):
        status, answer_headers, body = _call("POST", f"{url}/documents", key, data, headers)
        if status not in (429, 503):
            break
        time.sleep(_retry_after(answer_headers))
    if status == 200 and body["status"] == "unchanged":
        return Outcome(str(file), document_id, "unchanged")
    if status not in (200, 202):
        reason = (body or {}).get("error", {}).get("message") if isinstance(body, dict) else None
        return Outcome(str(file), document_id, "error", reason=f"HTTP {status}: {reason or 'no reason given'}")
    location = f"{url}{body['location']}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, _, view = _call("GET", location, key)
        if status == 200 and view["status"] in ("indexed", "failed", "deleted"):
            return Outcome(str(file), document_id, view["status"], view["chunks"], view["error"])
        time.sleep(POLL_S)
    return Outcome(str(file), document_id, "error", reason=f"not indexed within {timeout_s:g} s")


def _upload_all(url: str, key: str, base: Path, files: list[Path], parallel: int, timeout_s: float) -> list[Outcome]:
    outcomes = []
    with ThreadPoolExecutor(parallel) as pool, progress_bar(len(files), "file", "uploaded") as bar:
        futures = [pool.submit(_upload_one, url, key, file, document_id_for(file, base), timeout_s) for file in files]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            bar.set_postfix_str(f"{outcome.document_id}: {outcome.status}", refresh=False)
            bar.update(1)
    return sorted(outcomes, key=lambda o: o.path)
