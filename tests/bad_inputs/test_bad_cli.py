"""The CLI's one guard: a user's fault is one line and a non-zero exit, a bug keeps its traceback.

Permission cases run the real CLI as an unprivileged user (uid/gid 65534 when the tests run as
root, as in CI; root ignores permission bits), so the OS itself refuses the access.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
VGTRAIN = ["-c", "from cli import vgtrain_app; vgtrain_app()"]
NOBODY = 65534


def _unprivileged_prefix() -> list[str]:
    """Run as uid/gid 65534 when the tests run as root (root ignores permission bits)."""
    if os.getuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: the OS would not refuse anything")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def run_cli(*args: object, unprivileged: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, *(VGTRAIN if args[0] == "vgtrain" else ["-m", "cli"]), *map(str, args[1:])]
    if unprivileged:
        cmd = _unprivileged_prefix() + cmd
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def one_line_error(res: subprocess.CompletedProcess, *fragments: str, code: int = 1) -> None:
    assert res.returncode == code, (res.returncode, res.stdout[-1500:], res.stderr[-3000:])
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def _world_readable(path: Path) -> None:
    """Let the unprivileged user read (not write) a tree made by root in a private tmp folder."""
    for p in [path, *path.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode | stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0))
    for parent in path.parents:
        if parent == Path(parent.anchor) or parent == Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)


@pytest.fixture
def catalog_copy(tiny_catalog, tmp_path) -> Path:
    dst = tmp_path / "cat"
    shutil.copytree(tiny_catalog, dst)
    _world_readable(tmp_path)
    return dst


@pytest.mark.slow
def test_a_read_only_catalog_refuses_a_writer_in_one_line(catalog_copy):
    res = run_cli("vgdata", "split-val", catalog_copy, "--size", "2", unprivileged=True)
    one_line_error(res, "ermission denied", str(catalog_copy))


def test_a_catalog_in_a_read_only_folder_is_one_line(raw_panos, tmp_path):
    pano_dir, csv_path = raw_panos
    locked = tmp_path / "locked"
    locked.mkdir()
    _world_readable(tmp_path)
    _world_readable(pano_dir.parent)
    res = run_cli(
        "vgdata", "build-catalog", locked / "cat", "--panoramas", pano_dir, "--metadata", csv_path, unprivileged=True
    )
    one_line_error(res, "ermission denied", str(locked / "cat"))


def test_an_unreadable_catalog_database_is_one_line(catalog_copy):
    (catalog_copy / "catalog.duckdb").chmod(0)
    res = run_cli("vgdata", "info", catalog_copy, unprivileged=True)
    one_line_error(res, "ermission denied", "catalog.duckdb")


@pytest.mark.slow
def test_eval_into_a_read_only_folder_is_one_line(catalog_copy, tmp_path):
    from vgdata.evalset import eval_set

    manifest = eval_set(catalog_copy, name="v2", database="database", queries="queries_v2").manifest
    _world_readable(tmp_path)
    out = tmp_path / "ro"
    out.mkdir(mode=0o555)
    res = run_cli(
        "vgtrain", "eval", "--weights", "random", "--backbone", "ResNet18", "--fc-output-dim", "16",
        "--eval-set", manifest, "--out", out / "eval", "--image-size", "32", "--num-workers", "0", "--device", "cpu",
        unprivileged=True,
    )  # fmt: skip
    one_line_error(res, "ermission denied", str(out / "eval"))


def test_export_into_a_read_only_folder_is_one_line(catalog_copy, tmp_path):
    out = tmp_path / "ro"
    out.mkdir(mode=0o555)
    res = run_cli("vgdata", "export", catalog_copy, out / "at", "--copy", unprivileged=True)
    one_line_error(res, "ermission denied", str(out / "at"))


# ---------------------------------------------------------------- the guard itself, on a throwaway app


def _app(exc: BaseException) -> typer.Typer:
    from cli import _command

    app = typer.Typer()

    @_command(app, "boom")
    def boom(name: str = "x") -> None:
        raise exc

    @_command(app, "other")
    def other() -> None:  # a second command, so that "boom" is a subcommand
        pass

    return app


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/cat/part-0.parquet"), "the disk is full"),
        (PermissionError(errno.EACCES, "Permission denied", "/data/cat"), "check the permissions"),
        (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/cat"), "read-only"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/nope.csv"), "check the path"),
    ],
)
def test_user_os_errors_are_one_line_naming_the_path(exc, line):
    res = CliRunner().invoke(_app(exc), ["boom"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert exc.filename in res.output and line in res.output and "Traceback" not in res.output


@pytest.mark.parametrize(
    "exc", [RuntimeError("a bug"), KeyError("k"), ValueError("not a user error"), OSError(5, "EIO")]
)
def test_anything_else_is_a_bug_and_keeps_its_exception(exc):
    res = CliRunner().invoke(_app(exc), ["boom"])
    assert res.exit_code == 1 and res.exception is exc  # not turned into a one-line user error


def test_library_errors_keep_their_exit_code():
    from vgdata.errors import UsageError
    from vgtrain.errors import VgtrainError

    res = CliRunner().invoke(_app(UsageError("no such [bold]folder[/bold]")), ["boom"])
    assert res.exit_code == 2 and "no such [bold]folder[/bold]" in res.output  # printed as is, not as markup
    res = CliRunner().invoke(_app(VgtrainError("bad run folder")), ["boom"])
    assert res.exit_code == 1 and "error: bad run folder" in res.output


def test_a_warning_is_one_clean_line(tmp_path):
    import warnings

    from cli import _showwarning

    path = tmp_path / "w.txt"
    with path.open("w") as f:
        _showwarning(warnings.WarningMessage("the backbone is randomly initialised", UserWarning, "x.py", 3).message,
                     UserWarning, "x.py", 3, file=f)  # fmt: skip
    assert path.read_text() == "warning: the backbone is randomly initialised\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "-1"], "--workers must be >= 0"),
        (["--quality", "0"], "--quality must be in 1..95"),
        (["--shard-size", "0"], "--shard-size must be >= 1"),
    ],
)
def test_build_options_are_checked_at_the_door(raw_panos, tmp_path, flags, message):
    pano_dir, csv_path = raw_panos
    res = run_cli("vgdata", "build-catalog", tmp_path / "cat", "--panoramas", pano_dir, "--metadata", csv_path, *flags)
    one_line_error(res, message, code=2)
    assert not (tmp_path / "cat" / "build.json").exists()


def _shard_that_warns(payload: int) -> dict:
    import warnings

    warnings.warn(f"shard {payload} looks odd", UserWarning, stacklevel=1)
    return {"n": payload}


def test_a_warning_in_a_worker_process_is_one_clean_line(tmp_path, capfd):
    from vgdata.jobs import run_shards

    stats = run_shards(tmp_path / "job", [("a", 1), ("b", 2)], _shard_that_warns, workers=2)
    assert stats == {"a": {"n": 1}, "b": {"n": 2}}
    err = capfd.readouterr().err
    lines = sorted(line for line in err.splitlines() if "looks odd" in line)
    assert lines == ["warning: shard 1 looks odd", "warning: shard 2 looks odd"], err
    assert "warnings.warn" not in err and "UserWarning" not in err
