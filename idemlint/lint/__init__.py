"""The analyzer: from a project's files to the hits of the retry-safety checks.

Its stages, each a sub-package that imports only the stages before it:

* :mod:`~idemlint.lint.files`: discover the project's files, find its root, and the
  text pre-check that rules out files no task can reach;
* :mod:`~idemlint.lint.summary`: summarise one file (libcst) into plain data, and
  encode it for the cache;
* :mod:`~idemlint.lint.index`: the project index over all summaries, and the tasks
  found in it;
* :mod:`~idemlint.lint.analysis`: facts about functions and the walk from each task;
* :mod:`~idemlint.lint.checks`: one module per checklist item;
* :mod:`~idemlint.lint.knowledge`: what calls mean, as data;
* :mod:`~idemlint.lint.run`: the pipeline, the summary cache and the incremental snapshot.

The analyzer never imports :mod:`idemlint.report`, the CLI or the flake8 plugin
(``lint-imports`` enforces it; see ``docs/how-it-works.md``).
"""
