"""Imports flow one way: numerical core -> gradients -> model and training -> the study
(odejac.study) -> the command line (odejac.cli). The library never imports the study."""
import ast
import pathlib
import subprocess
import sys

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "odejac"
LIBRARY = sorted(p for p in PACKAGE.glob("*.py") if p.name != "__main__.py")


def _imported_names(path):
    """Every module a file imports, resolved to absolute ``odejac.*`` names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "odejac" if node.level == 1 else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_library_modules_do_not_import_the_study_or_the_cli():
    assert len(LIBRARY) > 10
    offenders = {p.name: sorted(n for n in _imported_names(p)
                                if n.startswith(("odejac.study", "odejac.cli")))
                 for p in LIBRARY}
    assert not {k: v for k, v in offenders.items() if v}, offenders


def test_the_layering_check_sees_a_relative_study_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from .study import experiments\nfrom . import cli\n")
    assert {"odejac.study.experiments", "odejac.cli"} <= _imported_names(bad)


def test_importing_the_library_loads_no_study_module():
    code = ("import sys, odejac, odejac.train, odejac.gradcheck, odejac.trace; "
            "print(sorted(m for m in sys.modules if m.startswith(('odejac.study', 'odejac.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
