"""Operations: the scheduled maintenance tasks (retention, reindex, purge, audit verification,
stale-run recovery, golden-set evaluation), run by the maintenance function and the CLI."""
