"""Exports of a finished draft into the formats lawyers work in (Word), rendered from the run alone so that
the same run always gives the same file and a printed page leads back to its audit row."""
