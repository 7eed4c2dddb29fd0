"""The mutant runner itself (tests/mutants/runner.py), on a tiny project of its own in a temp directory:
a killed mutant passes, a surviving one fails the run, a drifted one fails before anything runs, a
documented equivalent must survive, and the working tree is never touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.mutants import runner

CHECK = '''
def admitted(age: int) -> bool:
    """Adults only."""
    if age < 0:
        raise ValueError("no negative ages")
    return age >= 18
'''
TESTS = '''
from pkg.check import admitted


def test_adults_are_admitted():
    assert admitted(30)


def test_children_are_not():
    assert not admitted(17)
'''
KILLED = '''
[[mutant]]
id = "age-limit"
file = "pkg/check.py"
original = "return age >= 18"
replacement = "return True"
protects = "children are refused"
tests = ["tests/test_check.py::test_children_are_not"]
'''
SURVIVES = '''
[[mutant]]
id = "negative-ages"
file = "pkg/check.py"
original = """    if age < 0:
        raise ValueError("no negative ages")
"""
replacement = ""
protects = "negative ages are an error"
tests = ["tests/test_check.py::test_adults_are_admitted", "tests/test_check.py::test_children_are_not"]
'''
EQUIVALENT = '''
[[mutant]]
id = "boundary-spelling"
file = "pkg/check.py"
original = "age >= 18"
replacement = "age > 17"
protects = "children are refused"
tests = ["tests/test_check.py::test_children_are_not"]
equivalent = "ages are integers: > 17 and >= 18 admit the same ages"
'''
DRIFTED = '''
[[mutant]]
id = "gone"
file = "pkg/check.py"
original = "return age >= 21"
replacement = "return True"
protects = "children are refused"
tests = ["tests/test_check.py::test_children_are_not"]
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "check.py").write_text(CHECK)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("")
    (tmp_path / "tests" / "test_check.py").write_text(TESTS)
    return tmp_path


def _run(project: Path, catalogue: str, jobs: int = 1) -> subprocess.CompletedProcess[str]:
    (project / "catalogue.toml").write_text(catalogue)
    return subprocess.run([sys.executable, "-m", "tests.mutants.runner", "--root", str(project), "--jobs", str(jobs),
                           "--catalogue", str(project / "catalogue.toml")],
                          cwd=runner.ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_a_killed_mutant_and_a_documented_equivalent_pass(project: Path) -> None:
    """A mutant a listed test kills, and one marked equivalent (with its reason) that survives, give exit 0
    and a 100% score that does not count the equivalent; the report is written; the tree is unchanged."""
    done = _run(project, KILLED + EQUIVALENT, jobs=2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Mutation score: 100.0% (1 of 1 killed; 1 documented equivalent(s) not counted)" in done.stdout
    assert (project / "build" / "mutants" / "report.md").read_text().startswith("# Defence mutants")
    assert (project / "pkg" / "check.py").read_text() == CHECK


def test_a_surviving_mutant_fails_the_run(project: Path) -> None:
    """A mutant every listed test passes with is reported as surviving, by id and with what it protects,
    and the run fails."""
    done = _run(project, KILLED + SURVIVES)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Mutation score: 50.0% (1 of 2 killed" in done.stdout
    assert "- negative-ages (pkg/check.py): SURVIVED" in done.stdout
    assert "protects: negative ages are an error" in done.stdout
    assert (project / "pkg" / "check.py").read_text() == CHECK


def test_a_drifted_mutant_fails_before_any_test_runs(project: Path) -> None:
    """A mutant whose original text is no longer in its file fails the run loudly, by id, with exit 2."""
    done = _run(project, KILLED + DRIFTED)
    assert done.returncode == 2
    assert "gone: drifted: the original text occurs 0 times in pkg/check.py" in done.stderr
    assert "baseline" not in done.stdout


def test_an_ambiguous_mutant_is_drifted_too(project: Path) -> None:
    """An original text that occurs twice could mutate the wrong place: refused like a drifted one."""
    (project / "pkg" / "check.py").write_text(CHECK + "\n\ndef again(age: int) -> bool:\n    return age >= 18\n")
    done = _run(project, KILLED)
    assert done.returncode == 2
    assert "age-limit: drifted: the original text occurs 2 times" in done.stderr


def test_an_equivalent_mark_on_a_killed_mutant_fails(project: Path) -> None:
    """`equivalent` is a claim no test can tell the mutant apart; a mutant a test kills proves it wrong."""
    done = _run(project, KILLED.replace('tests = ["tests/test_check.py::test_children_are_not"]',
                                        'tests = ["tests/test_check.py::test_children_are_not"]\n'
                                        'equivalent = "wrongly claimed"'))
    assert done.returncode == 1
    assert "KILLED although marked equivalent" in done.stdout


def test_a_test_failing_without_any_mutant_stops_the_run(project: Path) -> None:
    """A listed test that fails on the unmutated tree would 'kill' every mutant: the run fails instead."""
    (project / "tests" / "test_check.py").write_text(TESTS.replace("assert not admitted(17)", "assert False"))
    done = _run(project, KILLED)
    assert done.returncode == 1
    assert "do not all pass on the unmutated tree" in done.stdout


def test_a_node_id_that_does_not_exist_is_an_error(project: Path) -> None:
    """A misspelt test id must not count as a kill (pytest exits 4, not 1)."""
    done = _run(project, KILLED.replace("test_children_are_not", "test_no_such_test"))
    assert done.returncode == 1
    assert "do not all pass on the unmutated tree" in done.stdout


def test_the_catalogue_runs_as_written() -> None:
    """The project's own catalogue: at least 60 mutants, each with a reason, tests, and an original text
    found exactly once, so an edit that moves a defence's code fails here, in the ordinary suite."""
    mutants = runner.load(runner.CATALOGUE, runner.ROOT)
    assert len([m for m in mutants if m.equivalent is None]) >= 60
    for mutant in mutants:
        assert mutant.file.startswith(("proxy/", "verifier/oauth_facade_verifier/")), mutant.id
        assert all(node.startswith(("tests/", "verifier/tests/")) for node in mutant.tests), mutant.id


def test_a_known_survivor_is_reported_and_may_only_be_removed(project: Path) -> None:
    """A surviving mutant marked `survives` (the test still to write) does not fail the run but counts as
    not killed and is listed; once a test kills it, the stale mark fails the run, so the list only shrinks."""
    marked = SURVIVES + 'survives = "write a test with a negative age"\n'
    done = _run(project, KILLED + marked)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Mutation score: 50.0% (1 of 2 killed" in done.stdout
    assert "- negative-ages (pkg/check.py): write a test with a negative age" in done.stdout
    done = _run(project, KILLED.replace("[[mutant]]", "[[mutant]]\nsurvives = \"stale\"", 1))
    assert done.returncode == 1
    assert "KILLED although marked `survives`" in done.stdout


SIDE_TESTS = '''
import os

import oauth_facade_verifier
from oauth_facade_verifier.check import admitted


def test_the_scratch_copy_is_imported():
    assert oauth_facade_verifier.__file__.startswith(os.getcwd() + os.sep), oauth_facade_verifier.__file__


def test_children_are_not():
    assert not admitted(17)
'''
SIDE_KILLED = KILLED.replace('file = "pkg/check.py"', 'file = "verifier/oauth_facade_verifier/check.py"').replace(
    'tests = ["tests/test_check.py::test_children_are_not"]',
    'tests = ["tests/test_side.py::test_the_scratch_copy_is_imported", "tests/test_side.py::test_children_are_not"]')


def test_a_mutant_in_the_verifier_distribution_is_the_code_the_tests_import(project: Path) -> None:
    """The venv installs oauth-facade-verifier editable from some checkout (its finder sits in site-packages):
    the runner puts the scratch tree's verifier/ first on the path, so the tests import the scratch copy (the
    unmutated baseline passes there) and a mutant applied to it is killed, not silently tested elsewhere."""
    package = project / "verifier" / "oauth_facade_verifier"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "check.py").write_text(CHECK)
    (project / "tests" / "test_side.py").write_text(SIDE_TESTS)
    done = _run(project, SIDE_KILLED)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Mutation score: 100.0% (1 of 1 killed" in done.stdout
    assert (package / "check.py").read_text() == CHECK
