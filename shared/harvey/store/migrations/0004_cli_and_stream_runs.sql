-- Drafts made by `harvey generate` and streamed drafts are runs too: a row with their document,
-- so feedback, Word export and the review page work on them like on any HTTP draft.
ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_origin_check;
ALTER TABLE runs ADD CONSTRAINT runs_origin_check CHECK (origin IN ('sync', 'async', 'event', 'cli', 'stream'));
