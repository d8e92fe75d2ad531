"""Stage 2, summary: one file in, one :class:`~idemlint.lint.summary.model.FileSummary`
out (plain data, cached by content hash); libcst is imported only here."""
