"""The pre-commit hook, run through real pre-commit against a temporary git repository.

pre-commit builds a virtualenv from this repository and pip-installs it, which
is slow. ``pre-commit try-repo`` does that on every call (it installs into a
temporary store of its own), so only the test that is about ``try-repo`` uses it;
the others run ``pre-commit run`` with a ``.pre-commit-config.yaml`` naming a
snapshot of this work tree at a fixed commit, whose environment is built once in
the module's pre-commit home and reused by every run. The module's tests share one
xdist worker (``GROUPS`` in tests/conftest.py), so that home is built once per run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_cli_support import REPO, clean_env, copy_project

GIT_IDENTITY = ["-c", "user.name=idemlint tests", "-c", "user.email=tests@idemlint.invalid"]

CLEAN_TASK = """from celery import shared_task

from shop.models import Payment


@shared_task(acks_late=True)
def refund_once(idempotency_key, user_id, amount_cents):
    payment, _created = Payment.objects.get_or_create(
        idempotency_key=idempotency_key,
        defaults={"user_id": user_id, "amount_cents": -amount_cents},
    )
    return payment.pk
"""

PROFILE_TASK = """from celery import shared_task

from shop.models import Profile


@shared_task(acks_late=True)
def import_profile(email, name):
    Profile.objects.get_or_create(email=email, defaults={"name": name})
"""


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_hook_definition() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert len(hooks) == 1
    hook = hooks[0]
    assert hook["id"] == "idemlint"
    assert hook["entry"] == "idemlint check"
    assert hook["language"] == "python"
    assert hook["types_or"] == ["python", "pyi"]
    assert hook["require_serial"] is True
    assert hook.get("pass_filenames", True) is True


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A git snapshot of this work tree (committed and not), and its commit."""
    snapshot = tmp_path_factory.mktemp("hook-repo") / "idemlint"
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO)
    snapshot.mkdir()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = snapshot / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git("init", "-q", cwd=snapshot)
    git("add", "-A", cwd=snapshot)
    git("commit", "-q", "-m", "snapshot", cwd=snapshot)
    yield snapshot, git("rev-parse", "HEAD", cwd=snapshot)


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def hook_env(home: Path) -> dict[str, str]:
    """pre-commit's environment: its home, no colour, no virtualenv of the caller's."""
    env = clean_env(PRE_COMMIT_HOME=str(home), PRE_COMMIT_COLOR="never")
    env.pop("VIRTUAL_ENV", None)
    return env


def try_repo(
    target: Path, hook_repo: tuple[Path, str], home: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    repo, ref = hook_repo
    env = hook_env(home)
    command = [sys.executable, "-m", "pre_commit", "try-repo", str(repo), "idemlint"]
    return subprocess.run(
        [*command, "--ref", ref, *extra],
        cwd=target,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def run_hook(
    target: Path, hook_repo: tuple[Path, str], home: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """``pre-commit run`` with the hook from the snapshot, its environment kept in ``home``."""
    repo, ref = hook_repo
    config = target / ".pre-commit-config.yaml"
    config.write_text(
        yaml.safe_dump({"repos": [{"repo": str(repo), "rev": ref, "hooks": [{"id": "idemlint"}]}]})
    )
    env = hook_env(home)
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--config", str(config), *extra],
        cwd=target,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def test_pre_commit_fails_on_bad_tasks_and_passes_on_clean_ones(
    tmp_path: Path, hook_repo: tuple[Path, str], pre_commit_home: Path
) -> None:
    target = copy_project(tmp_path, name="app")
    git("init", "-q", cwd=target)
    git("add", "-A", cwd=target)
    git("commit", "-q", "-m", "app", cwd=target)
    (target / ".git" / "info" / "exclude").write_text(".pre-commit-config.yaml\n")

    # Every file: the naive tasks fail the hook.
    done = run_hook(target, hook_repo, pre_commit_home, "--all-files")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "shop/tasks.py" in output
    assert "IDM301 [check-prior-art]" in output
    assert "shop/helpers.py" in output

    # Only the staged files are passed: a clean new task passes, although
    # shop/tasks.py (not staged) still has findings.
    (target / "shop" / "refunds.py").write_text(CLEAN_TASK)
    git("add", "shop/refunds.py", cwd=target)
    done = run_hook(target, hook_repo, pre_commit_home)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Passed" in output
    git("commit", "-q", "-m", "refunds", cwd=target)

    # A staged file whose problem needs another, unstaged file (the model's
    # fields in shop/models.py): still found, and only that file is reported.
    (target / "shop" / "profiles.py").write_text(PROFILE_TASK)
    git("add", "shop/profiles.py", cwd=target)
    done = run_hook(target, hook_repo, pre_commit_home)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "shop/profiles.py:8:5: IDM401 [database-constraints]" in output
    assert "shop/tasks.py" not in output
    assert os.listdir(pre_commit_home), "pre-commit kept the environment in the module's home"


NOTIFY_TASK = """import requests
from celery import shared_task


@shared_task(acks_late=True)
def notify(order_id):
    requests.post("https://hooks.example.com/orders", json={"id": order_id})
"""


def test_pre_commit_skips_a_staged_file_that_exclude_matches_with_force_exclude(
    tmp_path: Path, hook_repo: tuple[Path, str], pre_commit_home: Path
) -> None:
    """pre-commit names every staged file: with force-exclude, exclude still applies."""
    target = copy_project(tmp_path, name="app")
    pyproject = target / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        + '\n[tool.idemlint]\nexclude = ["shop/legacy/"]\nforce-exclude = true\n'
    )
    git("init", "-q", cwd=target)
    git("add", "-A", cwd=target)
    git("commit", "-q", "-m", "app", cwd=target)

    (target / "shop" / "legacy").mkdir()
    (target / "shop" / "legacy" / "notify.py").write_text(NOTIFY_TASK)
    # the same file outside the excluded folder: it fails the hook, which shows the hook
    # ran on this commit's files (try-repo builds its environment on every call, so
    # one call checks both)
    (target / "shop" / "notify.py").write_text(NOTIFY_TASK)
    git("add", "shop/legacy/notify.py", "shop/notify.py", cwd=target)
    done = try_repo(target, hook_repo, pre_commit_home)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "shop/notify.py:7:5: IDM304" in output
    assert "shop/legacy/notify.py" not in output
    # pre-commit did name the excluded file: it is staged, and the hook passes files
    staged = git("diff", "--cached", "--name-only", cwd=target).splitlines()
    assert "shop/legacy/notify.py" in staged
