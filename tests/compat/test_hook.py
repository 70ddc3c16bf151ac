"""The import hook: simpler / simpler_setup resolve to the facade only while it is installed."""

import subprocess
import sys
import types

import pytest

from compat import hook


@pytest.fixture(autouse=True)
def _no_hook_left():
    yield
    assert not hook.installed()
    left = [n for n, m in sys.modules.items() if hook._ours(n) and "compat" in str(getattr(m, "__file__", ""))]
    assert left == []


def test_hook_serves_the_facade_and_restores_what_was_there():
    fake = types.ModuleType("simpler")
    sys.modules["simpler"] = fake
    try:
        with hook.facade_imports():
            import simpler
            from simpler.task_interface import TaskArgs
            from simpler.worker import Worker

            assert simpler is not fake
            from compat.runtime import TaskArgs as FacadeTaskArgs
            from compat.runtime import Worker as FacadeWorker

            assert Worker is FacadeWorker and TaskArgs is FacadeTaskArgs
            assert simpler.Worker is FacadeWorker
            import simpler_setup.kernel_compiler as kc

            assert kc.KernelCompiler.__module__ == "compat.setup_api"
        assert sys.modules["simpler"] is fake
    finally:
        sys.modules.pop("simpler", None)


def test_a_module_the_facade_lacks_is_not_found_under_the_hook():
    with hook.facade_imports(), pytest.raises(ModuleNotFoundError):
        import simpler.comm_region  # noqa: F401


def test_without_the_hook_import_simpler_is_as_before():
    # A fresh interpreter that imported compat (and ran a script through it) but never kept the
    # hook: `import simpler` finds the real package or nothing, exactly as without tierbed.
    code = ("import compat, importlib.util, sys\n"
            "before = importlib.util.find_spec('simpler')\n"
            "compat.install(); compat.uninstall()\n"
            "after = importlib.util.find_spec('simpler')\n"
            "print(repr(getattr(before, 'origin', None)) == repr(getattr(after, 'origin', None)))\n"
            "print(after is None or 'compat' not in str(after.origin))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True"]


def test_other_processes_never_see_the_hook(tmp_path):
    script = tmp_path / "child.py"
    script.write_text("import importlib.util, sys\n"
                      "spec = importlib.util.find_spec('simpler')\n"
                      "print('facade' if spec and 'compat' in str(spec.origin) else 'not-facade')\n")
    parent = tmp_path / "parent.py"
    parent.write_text("import subprocess, sys\n"
                      f"print(subprocess.run([sys.executable, {str(script)!r}], capture_output=True, text=True)"
                      ".stdout.strip())\n")
    from compat import exec_script

    with hook.facade_imports():
        pass
    r = subprocess.run([sys.executable, "-c", f"import compat, sys; sys.exit(compat.exec_script({str(parent)!r}))"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "not-facade"
    assert exec_script  # imported without installing anything
