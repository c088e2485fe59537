"""The Redis retrieval cache, CloudEvents out to K_SINK, and idempotent ingest — on the real services."""

from __future__ import annotations

import uuid

import pytest
from harvey import events
from harvey.search import cache
from harvey.search.ingest import IngestError, SourceDocument, ingest, read_path
from harvey.store import kvstore


@pytest.fixture
def fresh_cache():
    kvstore.reset()
    yield
    kvstore.reset()


def test_cache_round_trip_and_invalidation_on_ingest(fresh_cache):
    tenant = str(uuid.uuid4())
    hits = [{"source_id": "CC:art186", "score": 0.5, "text": "Aquele que…"}]
    assert cache.get(tenant, "v1", "dano moral", 5) is None
    cache.put(tenant, "v1", "dano moral", 5, hits)
    assert cache.get(tenant, "v1", "dano moral", 5) == hits
    assert cache.get(tenant, "v2", "dano moral", 5) is None  # another index version
    assert cache.get(tenant, "v1", "dano moral", 6) is None  # another top_k
    assert cache.get(str(uuid.uuid4()), "v1", "dano moral", 5) is None  # another tenant
    cache.bump_generation(tenant)
    assert cache.get(tenant, "v1", "dano moral", 5) is None


def test_cache_is_off_without_redis_url(fresh_cache, settings_env, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    settings_env()
    assert kvstore.client() is None
    cache.put("t", "v1", "q", 5, [{"x": 1}])
    assert cache.get("t", "v1", "q", 5) is None


def test_unreachable_redis_never_fails_a_request(fresh_cache, settings_env):
    settings_env(REDIS_URL="redis://127.0.0.1:1/0")
    cache.put("t", "v1", "q", 5, [{"x": 1}])
    assert cache.get("t", "v1", "q", 5) is None
    cache.bump_generation("t")


def test_emit_is_binary_mode_with_k_ce_overrides(sink, settings_env):
    settings_env(K_SINK=sink.url, K_CE_OVERRIDES='{"extensions": {"cluster": "prod-sp"}}')
    assert events.emit("com.harvey.document.generated", {"run_id": "r1"}, subject="r1")
    [event] = sink.events
    assert event["type"] == "com.harvey.document.generated"
    assert event["subject"] == "r1" and event["cluster"] == "prod-sp"
    assert event["data"] == {"run_id": "r1"}


@pytest.mark.parametrize("overrides", ["", "not json"])
def test_emit_tolerates_empty_or_malformed_overrides(sink, settings_env, overrides):
    settings_env(K_SINK=sink.url, K_CE_OVERRIDES=overrides)
    assert events.emit("com.harvey.document.generated", {"run_id": "r2"})
    assert sink.events[0]["type"] == "com.harvey.document.generated"


def test_a_failed_send_is_counted_not_raised(sink, settings_env):
    from harvey import metrics

    settings_env(K_SINK=sink.url)
    sink.statuses = [500]
    before = metrics.EVENTS_EMITTED.labels(type="t.fail", outcome="failed")._value.get()
    assert events.emit("t.fail", {"a": 1}) is False
    assert metrics.EVENTS_EMITTED.labels(type="t.fail", outcome="failed")._value.get() == before + 1
    settings_env(K_SINK="http://127.0.0.1:1/")
    assert events.emit("t.fail", {"a": 1}) is False


def test_no_sink_means_no_event(settings_env, monkeypatch):
    monkeypatch.delenv("K_SINK", raising=False)
    settings_env()
    assert events.emit("com.harvey.document.generated", {}) is False


def _docs(text: str) -> list[SourceDocument]:
    return [
        SourceDocument("CC:art186", "Código Civil", text, {"law": "CC", "article": "186"}),
        SourceDocument("memo.md", "Memorando", "Orientação interna sobre danos morais em relações de consumo."),
    ]


def test_reingest_is_a_noop_and_changed_content_replaces_old_chunks(make_tenant):
    from harvey.search.retrieval import open_index
    from harvey.store import db

    tenant, _ = make_tenant("ingest")
    original = "Art. 186. Aquele que, por ação ou omissão voluntária, negligência ou imprudência, viola direito."
    first = ingest(tenant.id, _docs(original))
    assert (first.added, first.updated, first.unchanged) == (2, 0, 0)
    chunks = open_index().count(tenant.id)
    again = ingest(tenant.id, _docs(original))
    assert (again.added, again.updated, again.unchanged, again.chunks) == (0, 0, 2, 0)
    assert open_index().count(tenant.id) == chunks
    changed = ingest(tenant.id, _docs(original.replace("viola direito", "viola direito e causa dano")))
    assert (changed.added, changed.updated, changed.unchanged) == (0, 1, 1)
    assert open_index().count(tenant.id) == chunks
    texts = [h.chunk.text for h in open_index().search(tenant.id, "ação ou omissão voluntária viola direito", 5)]
    assert any("causa dano" in t for t in texts) and not any(t.endswith("viola direito.") for t in texts)
    row = db.one(
        "SELECT status, chunk_count FROM documents WHERE tenant_id = CAST(:t AS uuid) AND document_id = 'CC:art186'",
        t=tenant.id,
    )
    assert row["status"] == "indexed" and row["chunk_count"] >= 1


def test_bad_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "text": "ok"}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(IngestError, match=r"bad.jsonl:2: 'text' must be a non-empty string"):
        list(read_path(path))
    with pytest.raises(IngestError, match="no such file"):
        list(read_path(tmp_path / "missing.jsonl"))
