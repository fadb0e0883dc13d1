"""The ``aurora-async`` tool: ``check`` on every kind of bad token file, the entry
points, ``bench`` on a suite of stand-in scripts (and the series over time that the real
``bench_tiers.py`` records for its chart), and the demo command's wiring.

Every output is scanned for the secrets written into the files: none may appear.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner, Result

import aurora_async
from aurora_async._cli import main
from aurora_async._cli.app import app
from aurora_async._cli.bench import BenchRun, ScriptRun, find_benchmarks, render_markdown
from aurora_async._cli.chart import build_figure, parse_target, write_chart
from aurora_async._cli.check import CheckReport, check_token_file, render_text
from aurora_async._cli.demo_view import PlainView, RichView, choose_view
from aurora_async._io import tokenfile as tokenfile_io

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
NO_MATPLOTLIB = "no chart: matplotlib is not installed (pip install 'aurora_async[plot]')"

SECRET_A = "sk-live-4f9c2e7a1b8d3f60"
SECRET_B = "sk-live-9a0b1c2d3e4f5a6b"
SECRET_C = "ghp_R2d2C3po0123456789abcdef"
SECRETS = (SECRET_A, SECRET_B, SECRET_C)
# What a leak of part of a secret would look like: 9 characters or more of any of them.
FRAGMENTS = {s[i : i + 9] for s in SECRETS for i in range(len(s) - 8)}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own, without $AURORA_TOKENS_FILE."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AURORA_TOKENS_FILE", raising=False)
    return tmp_path


def no_secret(*texts: str) -> None:
    for text in texts:
        leaked = [f for f in FRAGMENTS if f in text]
        assert leaked == [], f"a secret leaked into the output: {text!r}"


def invoke(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> Result:
    result = runner.invoke(app, list(args), env=env)
    no_secret(result.stdout, result.stderr)
    return result


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


# -- check: usable files --------------------------------------------------------------


def test_a_good_file_is_usable(runner: CliRunner, isolated: Path) -> None:
    write(isolated / "tokens.txt", f"# ours\n\n{SECRET_A}\r\n  {SECRET_B}  \n{SECRET_C}")
    result = invoke(runner, "check", "tokens.txt")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"token file: {isolated / 'tokens.txt'} (given)"
    assert lines[1] == "tokens: 3 (2 lines blank or comments)"
    assert lines[-1] == "result: usable: 3 tokens"


def test_a_bom_at_the_start_is_fine(runner: CliRunner, isolated: Path) -> None:
    write(isolated / "t.txt", b"\xef\xbb\xbf" + SECRET_A.encode() + b"\n")
    result = invoke(runner, "check", "t.txt")
    assert result.exit_code == 0
    assert "tokens: 1\n" in result.stdout


def test_duplicates_are_a_warning_with_masked_names_and_lines(
    runner: CliRunner, isolated: Path
) -> None:
    write(isolated / "t.txt", f"{SECRET_A}\n{SECRET_B}\n{SECRET_A}\n\n{SECRET_A}\n{SECRET_B}\n")
    result = invoke(runner, "check", "t.txt")
    assert result.exit_code == 0
    assert "duplicates: 2 tokens listed more than once, each kept once (the first line):" in (
        result.stdout
    )
    assert "  sk-l…3f60 on lines 1, 3, 5\n" in result.stdout
    assert "  sk-l…5a6b on lines 2, 6\n" in result.stdout
    assert result.stdout.splitlines()[-1] == "result: usable (with warnings): 2 tokens"


def test_names_lists_masked_names(runner: CliRunner, isolated: Path) -> None:
    write(isolated / "t.txt", f"{SECRET_A}\n{SECRET_C}\n")
    result = invoke(runner, "check", "--names", "t.txt")
    assert "  sk-l…3f60\n  ghp_…cdef\n" in result.stdout


def test_default_file_in_the_working_directory(runner: CliRunner, isolated: Path) -> None:
    write(isolated / "access_tokens.txt", SECRET_A + "\n")
    result = invoke(runner, "check")
    assert result.exit_code == 0
    assert (
        f"token file: {isolated / 'access_tokens.txt'} "
        "(default ./access_tokens.txt in the working directory)"
    ) in result.stdout


def test_file_from_the_environment(runner: CliRunner, isolated: Path) -> None:
    path = write(isolated / "mounted.txt", SECRET_A + "\n")
    result = invoke(runner, "check", env={"AURORA_TOKENS_FILE": str(path)})
    assert result.exit_code == 0
    assert f"token file: {path} (from $AURORA_TOKENS_FILE)" in result.stdout


def test_quiet_prints_nothing(runner: CliRunner, isolated: Path) -> None:
    write(isolated / "t.txt", SECRET_A + "\n")
    assert invoke(runner, "check", "-q", "t.txt").stdout == ""
    write(isolated / "bad.txt", "a b\n")
    result = invoke(runner, "check", "--quiet", "bad.txt")
    assert (result.exit_code, result.stdout) == (1, "")


# -- check: every bad file ------------------------------------------------------------

BAD_LINES = [
    pytest.param(f"{SECRET_A} {SECRET_B}\n", 1, "white space inside a token", id="space"),
    pytest.param(f"{SECRET_A}\n{SECRET_B}\t# note\n", 2, "a comment must be on", id="comment"),
    pytest.param(f"{SECRET_A}\n\n{SECRET_B}\x07\n", 3, "U+0007 (BELL)", id="control"),
    pytest.param(f"{SECRET_A}\n\ufeff{SECRET_B}\n", 2, "BYTE ORDER MARK", id="bom-later"),
    pytest.param(f"{SECRET_A}\u200b\n", 1, "invisible character U+200B", id="zero-width"),
    pytest.param(f"x\n{SECRET_A}\u00a0{SECRET_B}\n", 2, "NO-BREAK SPACE", id="nbsp"),
    pytest.param(
        SECRET_A.encode() + b"\n" + SECRET_B.encode() + b"\xe9\n", 2, "not valid UTF-8", id="latin1"
    ),
    pytest.param(b"\xff\xfe" + f"{SECRET_A}\n".encode("utf-16-le"), 1, "UTF-16", id="utf16"),
    pytest.param(f"{SECRET_A}\n".encode("utf-16-le"), 1, "is the file UTF-16?", id="utf16-nobom"),
]


@pytest.mark.parametrize(("content", "line", "reason"), BAD_LINES)
def test_a_bad_line_is_reported_by_number(
    runner: CliRunner, isolated: Path, content: str | bytes, line: int, reason: str
) -> None:
    write(isolated / "t.txt", content)
    result = invoke(runner, "check", "t.txt")
    assert result.exit_code == 1
    assert f"  line {line}: " in result.stdout
    assert reason in result.stdout
    assert result.stdout.splitlines()[-1].startswith("result: NOT usable: fix 1 line")


@pytest.mark.parametrize(("content", "line", "reason"), BAD_LINES)
def test_a_bad_line_in_json(
    runner: CliRunner, isolated: Path, content: str | bytes, line: int, reason: str
) -> None:
    write(isolated / "t.txt", content)
    result = invoke(runner, "check", "--json", "t.txt")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["usable"] is False
    assert [bad["line"] for bad in report["bad_lines"]] == [line]
    assert reason in report["bad_lines"][0]["reason"]


def test_every_bad_line_is_listed_not_just_the_first(runner: CliRunner, isolated: Path) -> None:
    content = (
        f"# tokens\n{SECRET_A}\n{SECRET_B} trailing\n\n{SECRET_C}\x1b\n{SECRET_A}\n\xe9t\xe9\n"
    ).encode()
    content = content.replace("\xe9t\xe9".encode(), b"\xe9t\xe9") + b"fine-token-ok\r\n"
    write(isolated / "t.txt", content)
    result = invoke(runner, "check", "--json", "t.txt")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [bad["line"] for bad in report["bad_lines"]] == [3, 5, 7]
    assert report["tokens"] == 2  # SECRET_A and fine-token-ok; bad lines are not tokens
    assert report["duplicates"] == [{"name": "sk-l…3f60", "lines": [2, 6]}]
    assert report["skipped_lines"] == 2
    text = invoke(runner, "check", "t.txt").stdout
    assert "tokens: 2 valid (2 lines blank or comments)" in text
    assert "bad lines: 3\n" in text
    assert text.splitlines()[-1].startswith("result: NOT usable: fix 3 lines")


FILE_PROBLEMS = [
    pytest.param("", "no tokens found: it is empty", id="empty"),
    pytest.param(
        "# only\n\n   \n# comments\n", "all 4 line(s) are blank or comments", id="comments"
    ),
    pytest.param("\r\n\r\n", "are blank or comments", id="blank-crlf"),
]


@pytest.mark.parametrize(("content", "reason"), FILE_PROBLEMS)
def test_a_file_without_tokens_is_unusable(
    runner: CliRunner, isolated: Path, content: str, reason: str
) -> None:
    write(isolated / "t.txt", content)
    result = invoke(runner, "check", "t.txt")
    assert result.exit_code == 1
    assert reason in result.stdout
    assert "AURORA_TOKENS_FILE" in result.stdout  # says how to point elsewhere
    assert result.stdout.splitlines()[-1] == "result: NOT usable"


def test_missing_given_file(runner: CliRunner, isolated: Path) -> None:
    result = invoke(runner, "check", "nope.txt")
    assert result.exit_code == 1
    assert f"token file not found: {isolated / 'nope.txt'}" in result.stdout


def test_missing_default_file_says_where_it_looked(runner: CliRunner, isolated: Path) -> None:
    result = invoke(runner, "check")
    assert result.exit_code == 1
    assert "default ./access_tokens.txt in the working directory" in result.stdout
    assert "AURORA_TOKENS_FILE" in result.stdout


def test_missing_file_from_the_environment(runner: CliRunner, isolated: Path) -> None:
    result = invoke(runner, "check", env={"AURORA_TOKENS_FILE": "/run/secrets/none.txt"})
    assert result.exit_code == 1
    assert "token file: /run/secrets/none.txt (from $AURORA_TOKENS_FILE)" in result.stdout


def test_environment_variable_set_but_empty(runner: CliRunner, isolated: Path) -> None:
    result = invoke(runner, "check", "--json", env={"AURORA_TOKENS_FILE": " "})
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["path"] == "$AURORA_TOKENS_FILE"
    assert "set but empty" in report["error"]


def test_a_directory_is_not_a_file(runner: CliRunner, isolated: Path) -> None:
    (isolated / "access_tokens.txt").mkdir()
    result = invoke(runner, "check")
    assert result.exit_code == 1
    assert "is a directory, not a file" in result.stdout


def test_a_dangling_symlink(runner: CliRunner, isolated: Path) -> None:
    (isolated / "t.txt").symlink_to(isolated / "gone" / "tokens")
    result = invoke(runner, "check", "t.txt")
    assert result.exit_code == 1
    assert "is a symbolic link to" in result.stdout


def test_file_problems_in_json(runner: CliRunner, isolated: Path) -> None:
    result = invoke(runner, "check", "--json", "nope.txt")
    report = json.loads(result.stdout)
    assert (result.exit_code, report["usable"], report["tokens"]) == (1, False, 0)
    assert report["error"].startswith("token file not found")


def test_unreadable_file(
    runner: CliRunner, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(isolated / "t.txt", SECRET_A)

    def denied(name: str | os.PathLike[str], **_kwargs: object) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tokenfile_io, "read_regular", denied)
    result = invoke(runner, "check", "t.txt")
    assert result.exit_code == 1
    assert "permission denied reading" in result.stdout


# -- check: usage errors --------------------------------------------------------------


def test_an_empty_file_argument_is_a_usage_error(runner: CliRunner, isolated: Path) -> None:
    result = invoke(runner, "check", "")
    assert result.exit_code == 2
    assert "FILE is an empty string" in result.stderr


def test_an_unknown_option_is_a_usage_error(runner: CliRunner, isolated: Path) -> None:
    assert invoke(runner, "check", "--frobnicate").exit_code == 2


def test_two_files_is_a_usage_error(runner: CliRunner, isolated: Path) -> None:
    assert invoke(runner, "check", "a.txt", "b.txt").exit_code == 2


def test_check_report_api(isolated: Path) -> None:
    with pytest.raises(ValueError, match="empty string"):
        check_token_file("")
    report = CheckReport(path=None, how="given", error="broken")
    assert (report.usable, report.exit_code) == (False, 1)
    assert render_text(report).splitlines()[0] == "token file: (none) (given)"


# -- the entry points -----------------------------------------------------------------


def test_main_returns_the_exit_status(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(isolated / "access_tokens.txt", SECRET_A + "\n")
    assert main(["check", "-q"]) == 0
    assert main(["check", "missing.txt", "-q"]) == 1
    assert main(["check", "--bogus"]) == 2
    assert main(["--help"]) == 0
    assert main([]) in (0, 2)  # no command: the help (click's convention for the status)
    out = capsys.readouterr()
    no_secret(out.out, out.err)
    assert "check" in out.out


def test_main_reads_sys_argv(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write(isolated / "access_tokens.txt", SECRET_A + "\n")
    monkeypatch.setattr(sys, "argv", ["aurora-async", "check"])
    assert main() == 0
    assert "result: usable" in capsys.readouterr().out


def run_python(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_python_dash_m(isolated: Path) -> None:
    write(isolated / "access_tokens.txt", SECRET_A + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "aurora_async", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=isolated,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "AURORA_TOKENS_FILE"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "result: usable: 1 token" in proc.stdout
    no_secret(proc.stdout, proc.stderr)


def test_importing_the_package_needs_neither_typer_nor_rich() -> None:
    # structlog imports rich by itself when it is installed: hide both, as without the extra.
    proc = run_python(
        "import sys; sys.modules['typer'] = sys.modules['rich'] = None\n"
        "import aurora_async, aurora_async.testing, aurora_async.__main__, aurora_async._cli\n"
        "print('imported')"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "imported"


@pytest.mark.parametrize("missing", ["typer", "rich"])
def test_without_the_cli_extra_a_one_line_hint(missing: str) -> None:
    proc = run_python(
        f"import sys; sys.modules[{missing!r}] = None\n"
        "from aurora_async._cli import main\n"
        "sys.exit(main(['check']))"
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "pip install 'aurora_async[cli]'" in proc.stderr
    assert missing in proc.stderr


# -- demo: wiring (the demo itself is tested in test_demo.py) --------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_view_follows_the_terminal() -> None:
    assert isinstance(choose_view(plain=False, stream=io.StringIO()), PlainView)
    assert isinstance(choose_view(plain=False, stream=FakeTerminal()), RichView)
    assert isinstance(choose_view(plain=True, stream=FakeTerminal()), PlainView)


def test_demo_command_runs_plain_when_not_a_terminal(runner: CliRunner) -> None:
    result = invoke(runner, "demo", "--seconds", "0.5", "--tokens", "4", "--concurrency", "8")
    assert result.exit_code == 0, result.stderr
    assert "| requests done (200)" in result.stdout
    assert "| tier declared 20/s, really 10/s" in result.stdout
    assert "tolerance=0.02" in result.stdout


@pytest.mark.parametrize(
    "args",
    [["--seconds", "0"], ["--tokens", "3"], ["--concurrency", "0"], ["--seconds", "x"]],
)
def test_demo_options_are_checked(runner: CliRunner, args: list[str]) -> None:
    assert invoke(runner, "demo", *args).exit_code == 2


def test_demo_interrupted(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    import aurora_async._cli.demo as demo

    async def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run_demo", interrupted)
    result = invoke(runner, "demo", "--plain")
    assert result.exit_code == 130
    assert "interrupted" in result.stderr


# -- bench -------------------------------------------------------------------------------

SCRIPT = """\
import json, os, sys
from pathlib import Path
results = Path(__file__).resolve().parent / "results"
results.mkdir(exist_ok=True)
quick = "--quick" in sys.argv or os.environ.get("AURORA_BENCH_QUICK") == "1"  # as _common
print("| figure | value |")
payload = {{"machine": "test machine", "benchmark": "{name}", "figures": {figures},
            "notes": ["quick" if quick else "full"]}}
payload.update({extra})
(results / "{name}.json").write_text(json.dumps(payload))
sys.exit({code})
"""


def fake_suite(root: Path) -> Path:
    bench = root / "benchmarks"
    bench.mkdir()
    figures_ok = [
        {"name": "lease / acquire", "value": 1.5, "unit": "x", "target": "<= 2x", "ok": True},
        {"name": "bare", "value": 1.04, "unit": "µs", "target": "", "ok": None},
        {"name": "share", "value": 99.0, "unit": "%", "target": ">= 97%", "ok": None},
    ]
    figures_missed = [
        {"name": "429 share", "value": 1.2, "unit": "%", "target": "at most 0.5%", "ok": False},
        {"name": "a | b", "value": 12345.0, "unit": "/s", "target": "", "detail": "of 20,000"},
    ]
    series = {"series": {"pool": [[0, 10], [1, 20]], "round robin": [[0, 5], [1, 6]]}}
    scripts = {
        "alpha": (figures_ok, series, 0),
        "beta": (figures_missed, {}, 1),
    }
    for name, (figures, extra, code) in scripts.items():
        (bench / f"bench_{name}.py").write_text(
            SCRIPT.format(name=name, figures=figures, extra=extra, code=code)
        )
    (bench / "bench_gamma.py").write_text("import sys\nprint('boom')\nsys.exit(3)\n")
    (bench / "_common.py").write_text("")
    return bench


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG's header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_bench_runs_every_script_and_writes_one_table(runner: CliRunner, tmp_path: Path) -> None:
    bench = fake_suite(tmp_path)
    out = tmp_path / "out"
    result = invoke(runner, "bench", "--dir", str(bench), "--out", str(out))
    assert result.exit_code == 1  # beta missed a target, gamma crashed
    assert "bench_alpha.py\n" in result.stdout  # full runs by default: no --quick
    assert "boom" in result.stdout  # the scripts' own output is relayed
    assert "bench_alpha.py: ok" in result.stdout
    assert "bench_beta.py: a target was missed" in result.stdout
    assert "bench_gamma.py: failed (exit 3)" in result.stdout
    summary = (out / "summary.md").read_text()
    assert "Mode: full" in summary
    assert "Machine: test machine" in summary
    assert "| alpha | lease / acquire | 1.50 x | <= 2x | yes |" in summary
    assert "| beta | 429 share | 1.20 % | at most 0.5% | **NO** |" in summary
    assert "| beta | a \\| b | 12,345 /s (of 20,000) |  |  |" in summary
    assert "| bench_gamma.py | failed (exit 3) |" in summary
    assert "- full" in summary
    assert (out / "alpha.json").is_file()  # copied beside the summary
    if HAS_MATPLOTLIB:
        assert (out / "summary.png").stat().st_size > 1000
        assert f"chart: {out / 'summary.png'}" in result.stdout
    else:
        assert not (out / "summary.png").exists()
        assert NO_MATPLOTLIB in result.stdout


@pytest.mark.parametrize(
    ("flags", "mode"), [((), "full"), (("--full",), "full"), (("--quick",), "quick")]
)
def test_bench_full_by_default_quick_on_request(
    runner: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: tuple[str, ...],
    mode: str,
) -> None:
    monkeypatch.setenv("AURORA_BENCH_QUICK", "1")  # left over in the shell: the flag wins
    bench = fake_suite(tmp_path)
    result = invoke(runner, "bench", *flags, "--only", "alpha", "--dir", str(bench))
    assert result.exit_code == 0
    assert "bench_beta" not in result.stdout
    quick_flag = " --quick" if mode == "quick" else ""
    assert f"$ {Path(sys.executable).name} bench_alpha.py{quick_flag}\n" in result.stdout
    summary = (bench / "results" / "summary.md").read_text()
    assert f"Mode: {mode}" in summary
    assert f"- {mode}" in summary  # what the script itself saw on its command line


def test_bench_without_matplotlib_still_writes_the_table(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    bench = fake_suite(tmp_path)
    result = invoke(runner, "bench", "--only", "alpha", "--dir", str(bench))
    assert result.exit_code == 0
    assert (
        "| alpha | lease / acquire | 1.50 x | <= 2x | yes |"
        in (bench / "results" / "summary.md").read_text()
    )
    assert not (bench / "results" / "summary.png").exists()
    last = result.stdout.strip().splitlines()[-1]
    assert last == NO_MATPLOTLIB  # one line, and the last one


def test_bench_only_matching_nothing(runner: CliRunner, tmp_path: Path) -> None:
    bench = fake_suite(tmp_path)
    result = invoke(runner, "bench", "--only", "zeta", "--dir", str(bench))
    assert result.exit_code == 1
    assert "no bench_*.py scripts matching zeta" in result.stderr


def test_bench_without_a_suite(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(aurora_async, "__file__", str(tmp_path / "site" / "aurora_async" / "x"))
    result = invoke(runner, "bench")
    assert result.exit_code == 1
    assert "run `aurora-async bench` from the checkout" in result.stderr


def test_bench_finds_the_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path(aurora_async.__file__).resolve().parent.parent
    if (repo / "benchmarks").is_dir():  # an editable install: beside the package
        assert find_benchmarks(tmp_path) == repo / "benchmarks"
    monkeypatch.setattr(aurora_async, "__file__", str(tmp_path / "site" / "aurora_async" / "x"))
    assert find_benchmarks(tmp_path) is None
    bench = fake_suite(tmp_path)
    assert find_benchmarks(tmp_path) == bench  # in the working directory


def test_bench_survives_a_broken_result_file(runner: CliRunner, tmp_path: Path) -> None:
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "bench_bad.py").write_text(
        "from pathlib import Path\n"
        "r = Path(__file__).parent / 'results'\nr.mkdir(exist_ok=True)\n"
        "(r / 'bad.json').write_text('{not json')\n(r / 'list.json').write_text('[]')\n"
    )
    result = invoke(runner, "bench", "--dir", str(bench))
    assert result.exit_code == 0
    assert "could not read bad.json" in result.stdout
    if HAS_MATPLOTLIB:
        assert "no chart: no figure has a target" in result.stdout
    else:
        assert NO_MATPLOTLIB in result.stdout


def test_markdown_of_nothing() -> None:
    text = render_markdown(BenchRun(Path("."), True, ()))
    assert "| benchmark | figure | value | target | met |" in text
    assert BenchRun(Path("."), True, ()).exit_code() == 1  # nothing ran: a failure
    run = ScriptRun("bench_x.py", 2, 1.0, ())
    assert run.status == "failed (exit 2)"


@pytest.mark.parametrize(
    ("target", "parsed"),
    [
        ("<= 2x", (False, 2.0)),
        (">= 98%", (True, 98.0)),
        ("at most 0.5%", (False, 0.5)),
        ("at least 1,000/s", (True, 1000.0)),
        ("≤ 1.5x", (False, 1.5)),
        ("", None),
        ("fast", None),
        ("<= 0", None),
        ("<= 1.2.3", None),
    ],
)
def test_chart_targets(target: str, parsed: tuple[bool, float] | None) -> None:
    assert parse_target(target) == parsed


def test_chart_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    path, why = write_chart([{"figures": []}], tmp_path / "c.png")
    assert path is None
    assert "pip install 'aurora_async[plot]'" in str(why)


BARS = {
    "benchmark": "b",
    "figures": [
        {"name": "x", "value": float("nan"), "target": "<= 2x"},
        {"name": "y", "value": 3.0, "unit": "x", "target": "<= 2x"},
        {"name": "z", "value": 0.0, "unit": "%", "target": "<= 0.5%", "ok": True},
    ],
}
SERIES = {
    "benchmark": "tiers",
    "series": {
        "pool (soonest-fire)": [[0.5, 1150.0], [1.5, 600.0], [2.5, 600.0]],
        "strict round robin": [[0.5, 600.0], [1.5, 120.0], [2.5, 120.0]],
    },
    "series_unit": "grants/s",
    "series_title": "tiers: grants per second",
    "series_marks": {"end of warm-up": 1.0},
    "series_levels": {"summed rate (600/s)": 600.0},
}


def test_chart_draws_a_panel_per_result_with_series(tmp_path: Path) -> None:
    path, why = write_chart([BARS, SERIES], tmp_path / "chart.png")
    if not HAS_MATPLOTLIB:
        assert (path, why) == (None, NO_MATPLOTLIB)
        return
    assert why is None
    assert path is not None
    bars_only, _ = write_chart([BARS], tmp_path / "bars.png")
    assert bars_only is not None
    width, height = png_size(path)
    assert (width, png_size(bars_only)[1] + 360) == (png_size(bars_only)[0], height)

    import matplotlib.pyplot as plt

    fig = build_figure([BARS, SERIES])
    try:
        bars, series = fig.axes
        assert bars.get_title() == "Benchmarks against their targets"
        assert "value / target" in bars.get_xlabel()
        labels = [t.get_text() for t in bars.get_yticklabels()]
        assert labels == ["b: y (<= 2x)", "b: z (<= 0.5%)"]  # NaN left out
        values = [t.get_text() for t in bars.texts]
        assert values == ["3 x", "0 %"]  # each bar says its value, even one of zero
        assert series.get_title() == "tiers: grants per second"
        assert series.get_xlabel() == "seconds since the start of the run"
        assert series.get_ylabel() == "grants/s"
        legend = [t.get_text() for t in series.get_legend().get_texts()]
        assert legend == [
            "pool (soonest-fire)",
            "strict round robin",
            "summed rate (600/s)",
            "end of warm-up",
        ]
        pool_line = series.get_lines()[0]
        assert list(pool_line.get_xdata()) == [0.0, 0.5, 1.5, 2.5, 3.0]  # out to the edges
    finally:
        plt.close(fig)


def test_chart_of_series_only_and_of_bad_series(tmp_path: Path) -> None:
    untitled = {"benchmark": "t", "series": {"pool": [[0, 1], [1, 2]]}, "series_unit": "/s"}
    path, why = write_chart([untitled], tmp_path / "c.png")
    if not HAS_MATPLOTLIB:
        assert (path, why) == (None, NO_MATPLOTLIB)
        return
    assert why is None
    assert path is not None
    assert path.stat().st_size > 1000
    import matplotlib.pyplot as plt

    fig = build_figure([untitled])
    try:
        (ax,) = fig.axes
        assert ax.get_title() == "t: /s over time, per strategy"
    finally:
        plt.close(fig)
    bad = {
        "benchmark": "bad",
        "series": {"a": [[0, 1]], "b": "nope", "c": [[0, "x"], [1, None], [2, float("inf")], 3]},
        "series_marks": {"m": "not a number"},
    }
    path, why = write_chart([bad], tmp_path / "e.png")
    assert path is None
    assert "no result has series" in str(why)


# -- the series the real benchmarks record -------------------------------------------------

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``benchmarks/<name>.py`` as a module, with ``_common`` importable beside it (and
    both gone from ``sys.modules`` after the test)."""
    if not (BENCHMARKS / f"{name}.py").is_file():
        pytest.skip("the benchmarks/ directory is not beside the tests")
    modules = {}
    for module_name in ("_common", name):
        spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / f"{module_name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, module_name, module)
        spec.loader.exec_module(module)
        modules[module_name] = module
    return modules[name]


def test_throughput_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    common = load_benchmark("_common", monkeypatch)
    assert [common.bucket_for(s) for s in (65, 25, 20, 13, 7, 2, 0.5)] == [
        1.0,
        1.0,
        1.0,
        0.5,
        0.25,
        0.1,
        0.05,
    ]
    now = [10.0]
    counter = common.Throughput(lambda: now[0], 0.5)
    for t in (10.0, 10.1, 10.49, 10.5, 11.7, 12.9):  # 12.9 is past the end: left out
        now[0] = t
        counter.tick()
    assert counter.points(2.5) == [[0.25, 6.0], [0.75, 2.0], [1.25, 0.0], [1.75, 2.0], [2.25, 0.0]]


def test_bench_tiers_records_grants_per_second_per_strategy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("looptime")
    tiers = load_benchmark("bench_tiers", monkeypatch)
    report = tiers.run(seconds=1.0, warmup=1.0)  # 2 virtual seconds: well under a second
    series = report.series
    assert series.unit == "grants/s"
    assert series.marks == {"end of warm-up": 1.0}
    assert series.levels == {"summed rate (600/s)": 600.0}
    assert list(series.lines) == [tiers.POOL, tiers.ROUND_ROBIN]
    for points in series.lines.values():
        assert [x for x, _ in points] == [round(0.05 + 0.1 * i, 6) for i in range(20)]
        assert all(y >= 0 for _, y in points)
    # On virtual time the figures are exact: after the opening burst, the pool grants
    # the summed rate (600/s) and round robin is held to the slowest tokens' pace.
    late = {name: [y for x, y in points if x > 1.0] for name, points in series.lines.items()}
    assert sum(late[tiers.POOL]) / len(late[tiers.POOL]) == pytest.approx(600, rel=0.05)
    assert sum(late[tiers.ROUND_ROBIN]) / len(late[tiers.ROUND_ROBIN]) == pytest.approx(
        120, rel=0.1
    )
    payload = json.loads(json.dumps(report.payload()))  # what lands in tiers.json
    assert payload["series"] == {k: [list(p) for p in v] for k, v in series.lines.items()}
    assert payload["series_unit"] == "grants/s"
    assert [f["name"] for f in payload["figures"]] == [
        "pool / summed rate",
        "round robin / summed rate",
        "pool / round robin",
    ]


def test_the_help_of_every_command(runner: CliRunner) -> None:
    for command in ("check", "demo", "plan", "bench"):
        result = invoke(runner, command, "--help")
        assert result.exit_code == 0
        assert "Usage" in result.stdout
