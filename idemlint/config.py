"""``[tool.idemlint]``: the one place a project tells idemlint what to check.

The loader is strict on purpose: a misspelt key that is silently ignored makes a
team believe a rule is off (or a lock is known) when it is not. Every unknown
key or malformed value is a :class:`~idemlint.errors.ConfigError` naming the
file, the key and what is accepted, which the CLI turns into exit code 2.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from idemlint.errors import ConfigError
from idemlint.lint.files.patterns import compiled, pattern_error
from idemlint.lint.files.project_root import (
    find_config_file,
    find_project_root,
    idemlint_table,
    read_toml,
)

TASK_FRAMEWORKS = ("arq", "celery", "django-q", "dramatiq", "huey", "rq", "taskiq")
"""Values accepted by ``task-frameworks``."""


def knowledge_keys() -> tuple[str, ...]:
    """Knowledge extensions: keys that add to the built-in knowledge of what calls mean.

    :mod:`idemlint.lint.knowledge` owns their names and shapes (and validates their
    values); this module only routes them there.
    """
    from idemlint.lint.knowledge import EXTENSION_KEYS

    return tuple(EXTENSION_KEYS)


DEFAULT_CACHE_DIR = ".idemlint_cache"
"""Cache folder, relative to the project root (git-ignored by the project template)."""

KEY_DOCS: dict[str, tuple[str, str, str]] = {
    "select": (
        "list of codes or prefixes",
        '`["IDM"]` (all)',
        "Rules to report. A prefix selects a family: `IDM3` is every check-prior-art rule.",
    ),
    "extend-select": (
        "list of codes or prefixes",
        "`[]`",
        "Rules to report on top of `select`, e.g. to re-enable one rule of an ignored family.",
    ),
    "ignore": (
        "list of codes or prefixes",
        "`[]`",
        "Rules not to report. The most specific of select and ignore wins; at a tie, ignore.",
    ),
    "per-file-ignores": (
        "table: pattern = list of codes",
        "`{}`",
        "Rules not to report in files matching the pattern (a `.gitignore` line, relative to "
        "the project root). A pattern starting with `!` applies to the files it does not match.",
    ),
    "exclude": (
        "list of patterns",
        "`[]`",
        "Paths never read, as `.gitignore` lines relative to the project root, on top of "
        "git-ignored files, virtualenvs, `build/`, `dist/`, `node_modules/` and "
        "`__pycache__/`. A file named on the command line is still checked, unless "
        "`force-exclude` is set.",
    ),
    "extend-exclude": ("list of patterns", "`[]`", "More paths never read, added to `exclude`."),
    "force-exclude": (
        "`true` or `false`",
        "`false`",
        "Apply `exclude` and `extend-exclude` to files named on the command line too, as "
        "pre-commit, flake8 and editors name them (ruff's option of the same name). Also "
        "`--force-exclude`.",
    ),
    "task-frameworks": (
        "list of: " + ", ".join(f"`{name}`" for name in TASK_FRAMEWORKS),
        "all",
        "Detect tasks of these frameworks only.",
    ),
    "min-severity": (
        "`error`, `warning` or `info`",
        "`warning`",
        "Report findings of this severity and above: `error` for money, messages to people "
        "and writes to other services, `warning` for business rows, relative updates and "
        "races, `info` for audit, log and marker rows.",
    ),
    "cache-dir": (
        "folder path",
        f"`{DEFAULT_CACHE_DIR}`",
        "Where per-file summaries are cached: a folder inside the project root (a folder "
        "elsewhere is given with `--cache-dir` or `IDEMLINT_CACHE_DIR`).",
    ),
}
"""What each plain key means: rendered into docs/configuration.md by the docs hook."""

PLAIN_KEYS = tuple(sorted(KEY_DOCS))
"""Keys handled here (the knowledge keys go to :mod:`idemlint.lint.knowledge`)."""


_CODE = re.compile(r"IDM[0-9]{0,3}")


def accepted_keys() -> tuple[str, ...]:
    """Every key ``[tool.idemlint]`` accepts, sorted, for error messages and docs."""
    return tuple(sorted((*PLAIN_KEYS, *knowledge_keys())))


@dataclass(frozen=True)
class Config:
    """The resolved configuration of one run. Plain data: it crosses process pools."""

    root: Path
    """Project root: the config file's folder, else the nearest ancestor with a root marker."""
    source: Path | None = None
    """The config file read, or None (defaults, or ``--isolated``)."""
    select: tuple[str, ...] = ("IDM",)
    """Rule codes or prefixes to report."""
    ignore: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()
    per_file_ignores: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    """Glob (relative to ``root``) to the codes or prefixes not reported in matching files."""
    exclude: tuple[str, ...] = ()
    """Gitignore patterns of paths never read (on top of git-ignored files, venvs, build
    output), relative to ``root``."""
    extend_exclude: tuple[str, ...] = ()
    force_exclude: bool = False
    """``exclude`` applies to paths named on the command line too (pre-commit's files)."""
    task_frameworks: frozenset[str] | None = None
    """Frameworks whose tasks are detected; None means all of :data:`TASK_FRAMEWORKS`."""
    knowledge: Mapping[str, object] = field(default_factory=dict, hash=False)
    """Raw knowledge-extension tables keyed by ``side-effects``, ``locks``, ... (validated)."""
    cache_dir: Path | None = None
    """Folder of the on-disk summary cache; None means run without the cache."""
    cache_in_project: bool = False
    """The cache folder came from the project (the default, or ``cache-dir``): it must
    then stay inside the root, symlinks included. False for one given on the command
    line (``--cache-dir``) or in :data:`CACHE_DIR_VARIABLE`, which may be anywhere."""
    min_severity: str = "warning"
    """Findings below this severity are not reported (see :data:`idemlint.findings.SEVERITIES`)."""

    @classmethod
    def default(cls, root: Path) -> Config:
        """Defaults for a project at ``root``, as if it had no ``[tool.idemlint]`` table."""
        root = root.absolute()
        return cls(root=root, cache_dir=root / DEFAULT_CACHE_DIR, cache_in_project=True)

    def excluded(self, path: Path) -> bool:
        """Whether ``exclude``/``extend-exclude`` match ``path`` (absolute, or relative to
        the working directory). A path outside the root matches nothing."""
        patterns = compiled((*self.exclude, *self.extend_exclude))
        if not patterns:
            return False
        absolute = Path(os.path.abspath(path))
        try:
            relative = absolute.relative_to(self.root.absolute()).as_posix()
        except ValueError:
            return False
        return patterns.matches(relative, is_dir=os.path.isdir(absolute))

    def with_overrides(
        self,
        *,
        select: Sequence[str] | None = None,
        ignore: Sequence[str] | None = None,
        extend_select: Sequence[str] | None = None,
        no_cache: bool = False,
        min_severity: str | None = None,
        cache_dir: str | None = None,
        force_exclude: bool | None = None,
    ) -> Config:
        """This config with command-line options applied (``select``/``ignore`` replace,
        ``extend_select`` adds), each validated like the file's keys. ``cache_dir``
        (``--cache-dir``) may be anywhere; relative to the working directory."""
        changes: dict[str, Any] = {}
        if force_exclude is not None:
            changes["force_exclude"] = force_exclude
        if cache_dir is not None:
            changes["cache_dir"] = explicit_cache_dir(cache_dir, key="--cache-dir")
            changes["cache_in_project"] = False
        if select is not None:
            changes["select"] = rule_codes(list(select), key="--select")
        if ignore is not None:
            changes["ignore"] = rule_codes(list(ignore), key="--ignore")
        if extend_select is not None:
            codes = rule_codes(list(extend_select), key="--extend-select")
            changes["extend_select"] = (*self.extend_select, *codes)
        if no_cache:
            changes["cache_dir"] = None
        if min_severity is not None:
            changes["min_severity"] = _severity(min_severity, key="--min-severity", file=None)
        return replace(self, **changes)


def load_config(
    paths: Sequence[Path], *, config_file: Path | None = None, isolated: bool = False
) -> Config:
    """The configuration for checking ``paths``.

    ``config_file`` (``--config``) wins over the walk; ``isolated`` ignores
    every config file. The root is the config file's folder when one is read,
    so relative globs mean the same whatever folder idemlint is run from.
    """
    config = _load_config(paths, config_file=config_file, isolated=isolated)
    from_environment = os.environ.get(CACHE_DIR_VARIABLE)
    if from_environment:
        config = replace(
            config,
            cache_dir=explicit_cache_dir(from_environment, key=CACHE_DIR_VARIABLE),
            cache_in_project=False,
        )
    return config


def _load_config(paths: Sequence[Path], *, config_file: Path | None, isolated: bool) -> Config:
    if isolated:
        return Config.default(find_project_root(paths))
    source = config_file if config_file is not None else find_config_file(paths)
    if source is None:
        return Config.default(find_project_root(paths))
    source = source.absolute()
    if not os.path.isfile(source):
        raise ConfigError("config file not found", file=source)
    data = read_toml(source)
    table = idemlint_table(data)
    if table is None:
        # A pyproject.toml without the table configures nothing; a dedicated
        # file (``--config idemlint.toml``) holds the keys at its top level.
        table = {} if source.name == "pyproject.toml" else data
    return parse_table(table, root=source.parent, file=source)


CACHE_DIR_VARIABLE = "IDEMLINT_CACHE_DIR"
"""Environment variable naming a cache folder anywhere (relative to the working directory)."""


def explicit_cache_dir(value: str, *, key: str) -> Path:
    """A cache folder the user named on the command line or in the environment."""
    if not value or "\0" in value:
        raise ConfigError(f"expected a folder path, got {value!r}", key=key)
    return Path(os.path.abspath(value))


def _project_cache_dir(value: object, *, root: Path, file: Path | None) -> Path:
    """``cache-dir`` of ``[tool.idemlint]``: a folder inside the project root. idemlint
    writes and prunes there, so a repository must not be able to point it elsewhere
    (``"/home/me"``, ``"../.."``); a folder outside is named with ``--cache-dir`` or
    :data:`CACHE_DIR_VARIABLE`. Symlinks are checked when the run opens the folder."""
    key = "cache-dir"
    if not isinstance(value, str) or not value or "\0" in value:
        raise ConfigError(f"expected a folder path as a string, got {value!r}", file=file, key=key)
    folder = Path(os.path.normpath(root.absolute() / value))
    if folder != root.absolute() and root.absolute() not in folder.parents:
        raise ConfigError(
            f"{value!r} is outside the project root {root}; a cache folder elsewhere is "
            f"given with --cache-dir or {CACHE_DIR_VARIABLE}",
            file=file,
            key=key,
            accepted=("a folder inside the project, such as '.idemlint_cache' or 'build/cache'",),
        )
    return folder


def parse_table(table: Mapping[str, Any], *, root: Path, file: Path | None) -> Config:
    """Build a :class:`Config` from a ``[tool.idemlint]`` table, validating every key."""
    config = Config.default(root)
    changes: dict[str, Any] = {"source": file}
    knowledge: dict[str, object] = {}
    extension_keys = knowledge_keys()
    for key, value in table.items():
        if isinstance(value, str) and key in list_keys():
            raise _string_for_list(key, value, file)
        if key in extension_keys:
            from idemlint.lint.knowledge import validate_extension

            validate_extension(key, value, file)
            knowledge[key] = value
        elif key in ("select", "ignore", "extend-select"):
            changes[key.replace("-", "_")] = rule_codes(value, key=key, file=file)
        elif key in ("exclude", "extend-exclude"):
            changes[key.replace("-", "_")] = _globs(value, key=key, file=file)
        elif key == "per-file-ignores":
            changes["per_file_ignores"] = _per_file_ignores(value, file=file)
        elif key == "force-exclude":
            if not isinstance(value, bool):
                raise ConfigError(f"expected true or false, got {value!r}", file=file, key=key)
            changes["force_exclude"] = value
        elif key == "min-severity":
            changes["min_severity"] = _severity(value, key=key, file=file)
        elif key == "task-frameworks":
            changes["task_frameworks"] = _frameworks(value, file=file)
        elif key == "cache-dir":
            changes["cache_dir"] = _project_cache_dir(value, root=config.root, file=file)
        else:
            raise ConfigError(f"unknown key {key!r}", file=file, key=key, accepted=accepted_keys())
    changes["knowledge"] = knowledge
    return replace(config, **changes)


_RULE_CODE_KEYS = ("select", "ignore", "extend-select")


def list_keys() -> tuple[str, ...]:
    """Keys whose value is a list: a string there is one error, the same for every key."""
    from idemlint.lint.knowledge import EXTENSION_KEYS

    knowledge = (k for k, shape in EXTENSION_KEYS.items() if shape.startswith("list"))
    return (*_RULE_CODE_KEYS, "exclude", "extend-exclude", "task-frameworks", *knowledge)


def _string_for_list(key: str, value: str, file: Path | None) -> ConfigError:
    """``ignore = "IDM301"`` is refused like ``locks = "x"``: strict, and the message
    holds the line to write instead. A string was once read as a comma-separated list
    for the rule-code keys only; one rule for all list keys is easier to predict."""
    prefix = "per-file-ignores."
    codes = key in _RULE_CODE_KEYS or key.startswith(prefix)
    items = re.split(r"[,\s]+", value.strip()) if codes else [value]
    listed = ", ".join(json.dumps(item) for item in items if item) or '"..."'
    left = json.dumps(key[len(prefix) :]) if key.startswith(prefix) else key
    return ConfigError(
        f"expected a list, got the string {value!r}; write {left} = [{listed}]",
        file=file,
        key=key,
    )


def known_rule_ids() -> tuple[str, ...]:
    """Rule ids of the shipped catalog (what a code or prefix must match)."""
    from idemlint.catalog import load_catalog

    return tuple(load_catalog())


def rule_codes(value: object, *, key: str, file: Path | None = None) -> tuple[str, ...]:
    """A list of rule codes or prefixes (``IDM``, ``IDM3``, ``IDM301``), each matching a rule.

    A code matching no rule is an error rather than a silent no-op: ``IDM31O``
    (letter O) in ``ignore`` would otherwise leave the rule on unnoticed.
    """
    if isinstance(value, str):
        raise _string_for_list(key, value, file)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"expected a list of rule codes or prefixes, got {value!r}",
            file=file,
            key=key,
            accepted=("IDM", "IDM3", "IDM301", "..."),
        )
    known = known_rule_ids()
    codes: list[str] = []
    for raw in value:
        code = raw.strip().upper()
        if not _CODE.fullmatch(code) or (known and not any(r.startswith(code) for r in known)):
            raise ConfigError(
                f"{raw!r} is not a rule code or a prefix of one",
                file=file,
                key=key,
                accepted=known or ("IDM", "IDM3", "IDM301"),
            )
        codes.append(code)
    return tuple(codes)


def _globs(value: object, *, key: str, file: Path | None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(
            f"expected a list of path patterns, got {value!r}",
            file=file,
            key=key,
            accepted=("a list of .gitignore patterns such as 'migrations/', 'legacy/**/*.py'",),
        )
    for pattern in value:
        _check_pattern(pattern, key=key, file=file)
    return tuple(value)


def _check_pattern(pattern: str, *, key: str, file: Path | None) -> None:
    problem = pattern_error(pattern)
    if problem is not None:
        raise ConfigError(f"bad pattern {pattern!r}: {problem}", file=file, key=key)


def _per_file_ignores(value: object, *, file: Path | None) -> dict[str, tuple[str, ...]]:
    key = "per-file-ignores"
    if not isinstance(value, dict):
        raise ConfigError(
            f"expected a table of glob = [codes], got {value!r}",
            file=file,
            key=key,
            accepted=('"tests/**" = ["IDM3"]',),
        )
    for pattern in value:
        _check_pattern(str(pattern).removeprefix("!"), key=f"{key}.{pattern}", file=file)
    return {
        str(pattern): rule_codes(codes, key=f"{key}.{pattern}", file=file)
        for pattern, codes in value.items()
    }


def _frameworks(value: object, *, file: Path | None) -> frozenset[str]:
    key = "task-frameworks"
    if not isinstance(value, list):
        raise ConfigError(
            f"expected a list of task frameworks, got {value!r}",
            file=file,
            key=key,
            accepted=TASK_FRAMEWORKS,
        )
    for item in value:
        if item not in TASK_FRAMEWORKS:
            import difflib

            close = difflib.get_close_matches(str(item), TASK_FRAMEWORKS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown task framework {item!r}{hint}",
                file=file,
                key=key,
                accepted=TASK_FRAMEWORKS,
            )
    return frozenset(value)


def _severity(value: object, *, key: str, file: Path | None) -> str:
    from idemlint.findings import SEVERITIES

    if value not in SEVERITIES:
        raise ConfigError(f"bad severity {value!r}", file=file, key=key, accepted=SEVERITIES)
    return str(value)
