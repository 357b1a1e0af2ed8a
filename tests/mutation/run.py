"""Mutation check: one deliberate bug at a time, then the tests that should catch it.

``make mutation`` (or ``.venv/bin/python tests/mutation/run.py``) copies the working tree (tracked and
untracked, not ignored files) into a throw-away folder, makes ``leadtier.*`` import from that copy (a
``sitecustomize`` on ``PYTHONPATH`` re-points the venv's editable install), runs every chosen test once
unmutated (the baseline), then applies each mutation of :mod:`mutations` in turn, runs its tests and
puts the file back. It never writes to the repository, so other people may edit it meanwhile.

One line per mutation: ``caught`` (a chosen test failed), ``survived`` (all passed: a test is missing),
``no longer applies`` (the exact text to change was not found exactly once: update the mutation), and a
summary ``N caught, M survived``. Exit status 0 only when every mutation was applied and caught.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from mutations import MUTATIONS, Mutation  # noqa: E402

# the copy imports leadtier.* from itself: the editable install's finder maps the package names to REPO
SITECUSTOMIZE = """
import sys
OLD, NEW = {old!r}, {new!r}
for _name, _mod in list(sys.modules.items()):
    if _name.startswith("__editable__") and _name.endswith("_finder"):
        for _k, _v in list(getattr(_mod, "MAPPING", {{}}).items()):
            if _v == OLD or _v.startswith(OLD + "/"):
                _mod.MAPPING[_k] = NEW + _v[len(OLD):]
        for _k, _paths in list(getattr(_mod, "NAMESPACES", {{}}).items()):
            _mod.NAMESPACES[_k] = [NEW + p[len(OLD):] if p == OLD or p.startswith(OLD + "/") else p for p in _paths]
"""

CHECK_IMPORTS = (
    "import leadtier.features.queries as q, leadtier.models.classifier as c, leadtier.pipelines.predict as p; "
    "from importlib import resources; "
    "print(q.__file__); print(c.__file__); print(p.__file__); "
    "print(resources.files('leadtier.features').joinpath('sql', 'rfm.sql'))"
)


def copy_tree(dest: Path, head: bool) -> None:
    """The working tree as it is now (default), or the last commit, into ``dest``."""
    if head:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
        return
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        rel = raw.decode()
        src = REPO / rel
        if not src.is_file():  # deleted in the working tree, or a submodule
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def environment(copy: Path) -> dict[str, str]:
    site = copy / ".mutation-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(old=str(REPO), new=str(copy)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LEADTIER_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(copy)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def check_isolation(copy: Path, env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK_IMPORTS], cwd=copy, env=env, capture_output=True, text=True, check=False
    )
    paths = out.stdout.split()
    if out.returncode or len(paths) != 4 or not all(p.startswith(str(copy) + os.sep) for p in paths):
        raise SystemExit(f"mutation: leadtier does not import from the copy {copy}:\n{out.stdout}{out.stderr}")


def pytest_run(copy: Path, env: dict[str, str], tests: list[str], timeout: float, stop_first: bool):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header"]
    cmd += ["-x"] if stop_first else []
    cmd += ["--timeout", str(int(timeout)), *tests]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout + 60)
        return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired as exc:
        return -1, f"timed out after {timeout} s\n{exc.stdout or ''}", time.perf_counter() - t0


def failed_tests(output: str) -> list[str]:
    lines = [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return [line.split(" ", 1)[1].split(" - ", 1)[0] for line in lines]


def apply(copy: Path, m: Mutation) -> str | None:
    """Write the mutated file; returns its original text, or None when the patch does not apply."""
    path = copy / m.file
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    if text.count(m.old) != 1:
        return None
    path.write_text(text.replace(m.old, m.new), encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="run only these mutations (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutations and their tests, run nothing")
    ap.add_argument("--head", action="store_true", help="mutate the last commit instead of the working tree")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per pytest run (default 600)")
    ap.add_argument("--keep", action="store_true", help="keep the throw-away copy (its path is printed)")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTATIONS}
    if unknown:
        raise SystemExit(f"mutation: unknown mutation(s) {sorted(unknown)}; see --list")
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.file} -> {' '.join(m.tests)}")
        return 0

    t_start = time.perf_counter()
    copy = Path(tempfile.mkdtemp(prefix="leadtier-mutation-"))
    try:
        copy_tree(copy, args.head)
        env = environment(copy)
        check_isolation(copy, env)
        tests = list(dict.fromkeys(t for m in chosen for t in m.tests))
        rc, out, secs = pytest_run(copy, env, tests, args.timeout, stop_first=False)
        print(f"baseline: {len(tests)} test selections, unmutated, {'pass' if rc == 0 else 'FAIL'} ({secs:.0f} s)")
        broken = set(failed_tests(out)) if rc else set()
        if rc and not broken:  # collection or usage error: nothing to compare against
            print(out[-3000:])
            return 2
        caught = survived = other = 0
        for m in chosen:
            if any(b == t or b.startswith(t + "[") or b.startswith(t + "::") for t in m.tests for b in broken):
                other += 1
                print(f"{'not run':<10} {m.name}: its tests fail without the mutation")
                continue
            original = apply(copy, m)
            if original is None:
                other += 1
                print(
                    f"{'stale':<10} {m.name}: patch no longer applies ({m.file}: the text to change is not there once)"
                )
                continue
            try:
                rc, out, secs = pytest_run(copy, env, list(m.tests), args.timeout, stop_first=True)
            finally:
                (copy / m.file).write_text(original, encoding="utf-8")
            if rc == 0:
                survived += 1
                print(f"{'SURVIVED':<10} {m.name} ({m.file}; {secs:.0f} s): {m.why}")
            elif rc in (1, 2, -1):  # a test failed, collection broke, or the run hung
                caught += 1
                by = failed_tests(out)[:1] or (["timeout"] if rc == -1 else ["collection error"])
                print(f"{'caught':<10} {m.name} ({m.file}; {secs:.0f} s) by {by[0]}")
            else:
                other += 1
                print(f"{'error':<10} {m.name}: pytest exit status {rc}\n{out[-1500:]}")
        total = time.perf_counter() - t_start
        extra = f", {other} not applied or not run" if other else ""
        print(f"{caught} caught, {survived} survived{extra} ({len(chosen)} mutations, {total / 60:.1f} min)")
        return 0 if survived == 0 and other == 0 else 1
    finally:
        if args.keep:
            print(f"copy kept at {copy}")
        else:
            shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
