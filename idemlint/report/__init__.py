"""From the analyzer's findings to what a user sees: selection (select/ignore,
per-file ignores), inline suppressions, the baseline, and the output formats."""
