"""Stage 5, run: the pipeline that drives the stages before it, with the summary cache
and the incremental snapshot of the last run."""
