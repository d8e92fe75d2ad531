"""A warm run (every summary from the cache, as in an editor) never imports libcst.

``import libcst`` costs about a quarter of a second, more than the rest of a warm
one-file run of a small project; the engine imports it only to summarise a file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CODE = (
    "import sys; from pathlib import Path; from idemlint.config import load_config;"
    "from idemlint.lint.run.engine import check; root = Path(sys.argv[1]);"
    "result = check([root], load_config([root]), cwd=root);"
    "print(len(result.findings), 'libcst' in sys.modules)"
)


def _run(root: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", CODE, str(root)], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def test_warm_run_does_not_import_libcst(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", "utf-8")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("", "utf-8")
    (tmp_path / "app" / "tasks.py").write_text(
        "import requests\nfrom celery import shared_task\n\n"
        "@shared_task(acks_late=True)\ndef ping(x):\n    requests.post('https://e.x', json=x)\n",
        "utf-8",
    )
    (tmp_path / "app" / "util.py").write_text("def helper():\n    return 1\n", "utf-8")
    cold = _run(tmp_path)
    assert cold.split()[1] == "True", cold  # the cold run parses with libcst
    warm = _run(tmp_path)
    findings, libcst_loaded = warm.split()
    assert findings == cold.split()[0] and int(findings) > 0
    assert libcst_loaded == "False", warm


def test_summaries_hold_no_syntax_trees(tmp_path: Path) -> None:
    # memory stays flat with the tree's size only if no CST outlives its summary
    import gc

    import libcst

    import idemlint.lint.summary.summarize  # noqa: F401  (libcst's module-level default nodes)
    from idemlint.lint.run.summarising import summarize_files

    def live_nodes() -> int:
        gc.collect()
        # type(o), not isinstance: isinstance reads o.__class__, which makes a lazy proxy
        # (Django's settings, left by another test in this process) set itself up and raise
        return sum(issubclass(type(o), libcst.CSTNode) for o in gc.get_objects())

    before = live_nodes()
    files = []
    for i in range(5):
        path = tmp_path / f"m{i}.py"
        path.write_text(f"import requests\n\ndef f{i}(x):\n    requests.post('u', json=x)\n")
        files.append(path)
    summaries = summarize_files(files, tmp_path, cache=None, jobs=1)
    assert all(s.functions for s in summaries)
    assert live_nodes() == before


def test_warm_run_after_an_edit_summarises_only_the_edited_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from idemlint.config import load_config
    from idemlint.lint.run import engine, summarising

    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", "utf-8")
    pkg = tmp_path / "app"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", "utf-8")
    (pkg / "tasks.py").write_text(
        "from celery import shared_task\nfrom app.helpers import push\n\n"
        "@shared_task(acks_late=True)\ndef ping(x):\n    push(x)\n",
        "utf-8",
    )
    (pkg / "helpers.py").write_text(
        "import requests\n\ndef push(x):\n    requests.post('https://e.x', json=x)\n", "utf-8"
    )
    for i in range(10):
        (pkg / f"other{i}.py").write_text(f"def f{i}():\n    return {i}\n", "utf-8")
    config = load_config([tmp_path])
    first = engine.check([tmp_path], config, cwd=tmp_path, jobs=1).findings
    assert first

    summarised: list[str] = []
    original = summarising.summarize_job

    def counting(job: tuple[str, str, str, bool]) -> object:
        summarised.append(job[1])
        return original(job)

    monkeypatch.setattr(summarising, "summarize_job", counting)
    helpers = pkg / "helpers.py"
    helpers.write_text(helpers.read_text("utf-8") + "\nTIMEOUT = 5\n", "utf-8")
    # the editor path: one file reported, the rest of the project from the cache
    again = engine.check([helpers], config, cwd=tmp_path, jobs=1)
    assert summarised == ["app/helpers.py"]
    assert [f.rule for f in again.findings] == [f.rule for f in first if "helpers" in f.path]
