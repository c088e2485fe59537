"""Drafting: a request becomes a cited draft.

`pipeline` runs retrieval → prompt → model → critique → references → audit; `runs` is the lifecycle
around it (sync, async, from events, stale-run recovery); `llm` is the only way out to a model.
"""
