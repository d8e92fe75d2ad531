"""Runs the python blocks of one documentation page, in a child interpreter of their own.

``python tests/doc_runner.py SPEC.json`` (written by tests/test_doc_blocks.py): the
blocks run in order in the spec's folder, each in a fresh namespace; a ``# NAME.py``
block is written to that file and imported, a block with ``test_*`` functions is run
by pytest, ``django`` blocks run with the example shop's Django set up. The result of
each block (and the traceback of a failure) is written to the spec's ``results`` file.
A child interpreter because Django settings, Celery apps and the default store are
process-wide: no page may see another's.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any


def rewrite(code: str, rewrites: list[list[str]]) -> str:
    """The block with the local services' addresses pointed at the page's own."""
    for old, new in rewrites:
        code = code.replace(old, new)
    return code


def setup_django(folder: Path, shop: Path, database: dict[str, str]) -> None:
    """The example shop's Django, as ``manage.py shell`` has it, on a fresh database."""
    for name in ("shop", "manage.py"):
        source = shop / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, folder / name)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="shop.settings",
        SHOP_EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        SHOP_CELERY_ALWAYS_EAGER="1",
        **database,
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def run_block(block: dict[str, Any], folder: Path, code: str) -> None:
    line = block["where"].rsplit(":", 1)[1]
    if block["file"]:
        target = folder / block["file"]
        target.write_text(code, "utf-8")
        importlib.invalidate_caches()
        importlib.import_module(target.stem)
        return
    if block["test"]:
        import pytest

        target = folder / f"test_doc_{Path(block['where']).stem}_{line}.py"
        target.write_text(code, "utf-8")
        code_ = pytest.main([str(target), "-q", "-p", "no:cacheprovider"])
        if code_ != 0:
            raise AssertionError(f"pytest exited {int(code_)} on the block's tests")
        return
    script = folder / f"doc_{Path(block['where']).stem}_{line}.py"
    script.write_text(code, "utf-8")
    runpy.run_path(str(script), run_name="__main__")  # as `python script.py` runs it


def main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text("utf-8"))
    for name in [n for n in os.environ if n.startswith("PYTEST_")]:
        del os.environ[name]  # the block's tests are a run of their own, not an xdist worker
    folder = Path(spec["folder"])
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    results = []
    django_ready = False
    for block in spec["blocks"]:
        print(f"--- {block['where']}", flush=True)
        try:
            if block["django"] and not django_ready:
                setup_django(folder, Path(spec["shop"]), spec["shop_database"])
                django_ready = True
            run_block(block, folder, rewrite(block["code"], spec["rewrites"]))
        except BaseException:
            results.append({"where": block["where"], "error": traceback.format_exc()})
        else:
            results.append({"where": block["where"], "error": None})
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
    Path(spec["results"]).write_text(json.dumps(results), "utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
