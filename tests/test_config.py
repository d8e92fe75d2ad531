"""``[tool.idemlint]`` loading: discovery, root, strict validation, CLI overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli_support import MINIPROJ, clean_env, copy_project, run_idemlint

from idemlint.config import Config, accepted_keys, knowledge_keys, load_config
from idemlint.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_walks_up_to_the_pyproject_with_the_table(tmp_path: Path) -> None:
    write(tmp_path / ".git" / "HEAD", "ref: refs/heads/main\n")
    top = write(tmp_path / "pyproject.toml", '[tool.idemlint]\nignore = ["IDM602"]\n')
    write(tmp_path / "pkg" / "pyproject.toml", '[project]\nname = "pkg"\n')
    target = write(tmp_path / "pkg" / "src" / "mod.py", "x = 1\n")

    config = load_config([target])

    assert config.source == top
    assert config.root == tmp_path
    assert config.ignore == ("IDM602",)
    assert config.cache_dir == tmp_path / ".idemlint_cache"


def test_walk_stops_at_the_repository_boundary(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.idemlint]\nignore = ["IDM602"]\n')
    repo = tmp_path / "repo"
    write(repo / ".git" / "HEAD", "ref: refs/heads/main\n")
    target = write(repo / "app" / "tasks.py", "x = 1\n")

    config = load_config([target])

    assert config.source is None
    assert config.root == repo
    assert config.ignore == ()


def test_root_without_config_is_nearest_marker(tmp_path: Path) -> None:
    write(tmp_path / "setup.cfg", "[metadata]\nname = x\n")
    target = write(tmp_path / "a" / "b" / "c.py", "x = 1\n")
    config = load_config([target])
    assert config.root == tmp_path
    assert config.source is None
    assert config == Config.default(tmp_path)


def test_config_file_option_wins_and_sets_root(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.idemlint]\nignore = ["IDM602"]\n')
    other = write(tmp_path / "conf" / "idemlint.toml", 'select = ["IDM3"]\n')
    config = load_config([tmp_path], config_file=other)
    assert config.source == other
    assert config.root == other.parent
    assert config.select == ("IDM3",)
    assert config.ignore == ()


def test_isolated_ignores_config(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.idemlint]\nignore = ["IDM602"]\n')
    config = load_config([tmp_path], isolated=True)
    assert config.source is None
    assert config.ignore == ()
    assert config.root == tmp_path


def test_every_plain_key_parses(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        """
[tool.idemlint]
select = ["IDM3", "IDM4"]
ignore = ["idm301"]
extend-select = ["IDM101"]
exclude = ["legacy/"]
extend-exclude = ["scripts/*.py"]
task-frameworks = ["celery", "rq"]
cache-dir = "build/cache"

[tool.idemlint.per-file-ignores]
"tests/**" = ["IDM"]
""",
    )
    config = load_config([tmp_path])
    assert config.select == ("IDM3", "IDM4")
    assert config.ignore == ("IDM301",)
    assert config.extend_select == ("IDM101",)
    assert config.exclude == ("legacy/",)
    assert config.extend_exclude == ("scripts/*.py",)
    assert config.task_frameworks == frozenset({"celery", "rq"})
    assert config.cache_dir == tmp_path / "build" / "cache"
    assert dict(config.per_file_ignores) == {"tests/**": ("IDM",)}
    hash(config)  # plain, hashable data: it crosses process pools and keys caches


def test_knowledge_extensions_are_validated_and_kept(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        """
[tool.idemlint]
locks = ["myapp.locks.distributed_lock"]

[[tool.idemlint.side-effects]]
call = "myapp.notify.send_push"
kind = "message"
""",
    )
    config = load_config([tmp_path])
    assert config.knowledge["locks"] == ["myapp.locks.distributed_lock"]
    assert config.knowledge["side-effects"] == [
        {"call": "myapp.notify.send_push", "kind": "message"}
    ]


@pytest.mark.parametrize(
    ("table", "key", "accepted"),
    [
        ('slect = ["IDM3"]', "slect", "select"),
        ('select = ["IDM9"]', "select", "IDM301"),
        ('ignore = ["E501"]', "ignore", "IDM301"),
        ("select = 3", "select", "IDM3"),
        ('task-frameworks = ["celeryy"]', "task-frameworks", "django-q"),
        ('exclude = "legacy"', "exclude", None),
        ("cache-dir = 1", "cache-dir", None),
        ('per-file-ignores = ["x"]', "per-file-ignores", "IDM3"),
        (
            '[tool.idemlint.per-file-ignores]\n"a/*" = ["IDM99X"]',
            "per-file-ignores.a/*",
            "IDM301",
        ),
        (
            '[[tool.idemlint.side-effects]]\ncall = "x.y"\nkind = "explodes"',
            "side-effects[0]",
            "message",
        ),
        ('locks = "x.y"', "locks", None),
    ],
)
def test_bad_config_names_file_key_and_accepted(
    tmp_path: Path, table: str, key: str, accepted: str | None
) -> None:
    pyproject = write(tmp_path / "pyproject.toml", "[tool.idemlint]\n" + table + "\n")
    with pytest.raises(ConfigError) as info:
        load_config([tmp_path])
    message = str(info.value)
    assert str(pyproject) in message
    assert key in message
    if accepted is not None:
        assert "accepted:" in message
        assert accepted in message


@pytest.mark.parametrize(
    ("table", "key", "expected"),
    [
        ('ignore = "IDM301"', "ignore", 'ignore = ["IDM301"]'),
        ('select = "IDM3, IDM4"', "select", 'select = ["IDM3", "IDM4"]'),
        ('extend-select = "IDM101"', "extend-select", 'extend-select = ["IDM101"]'),
        ('exclude = "legacy/"', "exclude", 'exclude = ["legacy/"]'),
        ('extend-exclude = "x.py"', "extend-exclude", 'extend-exclude = ["x.py"]'),
        ('task-frameworks = "celery"', "task-frameworks", 'task-frameworks = ["celery"]'),
        ('locks = "myapp.lock"', "locks", 'locks = ["myapp.lock"]'),
        ('guards = "myapp.once"', "guards", 'guards = ["myapp.once"]'),
        ('state-fields = "*_at"', "state-fields", 'state-fields = ["*_at"]'),
        (
            '[tool.idemlint.per-file-ignores]\n"tests/**" = "IDM3"',
            "per-file-ignores.tests/**",
            '"tests/**" = ["IDM3"]',
        ),
    ],
)
def test_a_string_for_a_list_is_one_error_for_every_list_key(
    tmp_path: Path, table: str, key: str, expected: str
) -> None:
    """One behaviour for every list key, strict as the house style is: ``ignore = "X"``
    is refused like ``locks = "x"``, and the message says what to write."""
    pyproject = write(tmp_path / "pyproject.toml", "[tool.idemlint]\n" + table + "\n")
    with pytest.raises(ConfigError) as info:
        load_config([tmp_path])
    message = str(info.value)
    assert message.startswith(
        f"{pyproject}: [tool.idemlint] {key}: expected a list, got the string"
    )
    assert message.endswith(f"write {expected}")


def test_task_frameworks_error_names_the_bad_value(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.idemlint]\ntask-frameworks = ["rq", "celry"]\n')
    with pytest.raises(ConfigError) as info:
        load_config([tmp_path])
    message = str(info.value)
    assert "task-frameworks: unknown task framework 'celry'; did you mean 'celery'?" in message
    assert "(accepted: arq, celery, django-q, dramatiq, huey, rq, taskiq)" in message


def test_force_exclude_parses(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.idemlint]\nforce-exclude = true\n")
    assert load_config([tmp_path]).force_exclude is True
    assert Config.default(tmp_path).force_exclude is False
    assert Config.default(tmp_path).with_overrides(force_exclude=True).force_exclude is True


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    pyproject = write(tmp_path / "pyproject.toml", "[tool.idemlint\nselect = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML") as info:
        load_config([tmp_path])
    assert str(pyproject) in str(info.value)


def test_missing_config_file_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([tmp_path], config_file=tmp_path / "nope.toml")


def test_overrides_replace_and_extend(tmp_path: Path) -> None:
    base = Config.default(tmp_path)
    changed = base.with_overrides(select=["IDM3"], ignore=["IDM301"], extend_select=["IDM1"])
    assert changed.select == ("IDM3",)
    assert changed.ignore == ("IDM301",)
    assert changed.extend_select == ("IDM1",)
    assert base.with_overrides(no_cache=True).cache_dir is None
    with pytest.raises(ConfigError, match="--select"):
        base.with_overrides(select=["IDM3x"])


def test_accepted_keys_include_knowledge_keys() -> None:
    keys = accepted_keys()
    assert {"select", "ignore", "per-file-ignores", "task-frameworks"} <= set(keys)
    assert set(knowledge_keys()) <= set(keys)
    assert {"side-effects", "locks", "guards", "task-decorators"} <= set(keys)


def test_cli_config_error_exits_2_with_one_line(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.idemlint]\nslect = ["IDM3"]\n')
    done = run_idemlint("check", ".", cwd=project)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pyproject.toml" in lines[0]
    assert "slect" in lines[0]
    assert "accepted:" in lines[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_cli_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    for args in (
        ("check", "does-not-exist"),
        ("check", "--format", "xml"),
        ("check", "--select", "IDM9"),
        ("check", "--show-fixed"),
        ("check", "--baseline", "missing.json"),
        ("check", "--config", "missing.toml"),
        ("explain", "IDM999"),
        ("frobnicate",),
    ):
        done = run_idemlint(*args, cwd=MINIPROJ, env=clean_env())
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
        assert done.stderr.startswith("idemlint: "), (args, done.stderr)
