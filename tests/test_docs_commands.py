"""Every ``callwise`` command in README.md and docs/*.md runs, as written, in the test suite.

Each fenced shell block (```bash, ```sh, ```console or ```shell) that calls ``callwise`` is run as
a bash script (``set -euo pipefail``) in a workspace per document, blocks in the order the
document gives them, so a ``fit`` writes the policy file the next block's ``route`` reads. The
workspace sits beside a link to the shared data, so ``../shared/data/...`` means what it means
from the repository root, and ``docs/`` links to the repository's docs (``docs/examples/...``).
Synopses (``[--flag]``, placeholders such as ``DATA``) belong in ```text blocks, which are not run.

What a user brings is supplied here when a command reads it and no earlier command wrote it:
``outcomes.csv`` (the bundled sample as a long CSV), ``train.parquet`` / ``held_out.parquet``
(the bundled sample's split), ``prompts.jsonl`` / ``new.jsonl`` (MMLU prompts of
rational-cascades with references) and ``endpoints.yaml`` (``small`` and ``large`` behind a
replay server started by the test). ``callwise serve`` runs in the background until ``/health``
answers, then stops. Other lines of a block run too, except ``pip`` and ``python`` ones (installs,
the test suite and the ``benchmarks/`` scripts, which run on their own).
Commands get flags that only cut repetitions (``SPEED``: fewer bootstrap rounds, budgets,
stream orders, folds), and a ``plan`` without ``--task`` is run on its data's first task, so the
suite stays within minutes; the command line itself — the part a newcomer copies — runs as
written, with those flags after it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from livekit import free_port, prompts_of, split

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}

#: Per subcommand, flags appended to cut repetitions only (the last occurrence of an option wins).
SPEED = {
    "bench": ["--bootstrap", "10"],
    "cascade": ["--budgets", "8", "--orders", "1"],
    "aggregate": ["--reps", "10"],
    "plan": ["--folds", "2"],
    "allocate": [],
    "scale": [],
}


def shell_blocks(path: Path) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each fenced shell block that runs ``callwise``."""
    out, lang, lines, start = [], None, [], 0
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        s = line.strip()
        if s.startswith("```"):
            if lang is None:
                lang, lines, start = s[3:].strip().lower(), [], no + 1
            else:
                if lang in SHELL and any(_is_callwise(x) for x in _commands(lines)):
                    out.append((start, lines))
                lang = None
            continue
        if lang is not None:
            lines.append(line)
    return out


def _commands(lines: list[str]) -> list[str]:
    """The block's commands: continuation lines joined, ``$ `` prompts and trailing comments dropped."""
    cmds, cur = [], ""
    for line in lines:
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        cur = f"{cur} {s}" if cur else s.removeprefix("$ ")
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        cmds.append(_strip_comment(cur))
        cur = ""
    return cmds


def _strip_comment(cmd: str) -> str:
    """Drop a trailing ``# comment`` outside quotes."""
    for m in re.finditer(r"\s+#", cmd):
        head = cmd[:m.start()]
        if head.count('"') % 2 == 0 and head.count("'") % 2 == 0:
            return head.rstrip()
    return cmd


def _is_callwise(cmd: str) -> bool:
    return cmd.startswith("callwise ") or " && callwise " in cmd


def _speed(cmd: str) -> str:
    """A callwise command with its SPEED flags; ``pip install ... && callwise ...`` runs only the callwise part."""
    if " && callwise " in cmd and not cmd.startswith("callwise "):
        cmd = "callwise " + cmd.split(" && callwise ", 1)[1]
    words = shlex.split(cmd)
    extra = list(SPEED.get(words[1], [])) if len(words) > 1 else []
    if words[1] == "plan" and "--task" not in words:  # plan weighs every family on every task: one task here
        extra += ["--task", _first_task(words[2])]
    return cmd + "".join(f" {shlex.quote(x)}" for x in extra)


def _first_task(data: str) -> str:
    from callwise.io import load

    path = ROOT.parent / data.removeprefix("../") if data.startswith("../shared/") else Path(data)
    return load(path).tasks()[0] if path.exists() else "gsm8k"  # a table the test brings: the sample's


# -- what a user brings ----------------------------------------------------------------------------

def _sample():
    from callwise.io import load_sample

    return load_sample()


def _outcomes_csv(path: Path, _: dict) -> None:
    t = _sample()
    f = t.frame[t.frame["sample"] == 0]
    f[["task", "prompt_id", "prompt", "model", "quality", "cost"]].to_csv(path, index=False)


def _split_sample(path: Path, _: dict) -> None:
    from callwise.core.split import split_outcomes

    train, test, _info = split_outcomes(_sample(), seed=0)
    train.to_parquet(path.parent / "train.parquet")
    test.to_parquet(path.parent / "held_out.parquet")


#: The models the documents call ``small`` and ``large``: recorded by rational-cascades on MMLU, and
#: priced in LiteLLM's map, so the recipes run without a price table as they would on OpenAI.
SMALL, LARGE = "gpt-4o-mini", "gpt-4o"


def upstream_table(shared: Path):
    from callwise.io import load

    t = load(shared / "rational-cascades").for_task("mmlu-qwen_oai")
    t = t.for_prompts(t.prompt_ids()[:300])
    return t.select(t.frame["model"].isin([SMALL, LARGE]))


def _prompts(path: Path, env: dict) -> None:
    _, test = split(upstream_table(env["shared"]))
    ids = test.prompt_ids()[:40] if path.name == "prompts.jsonl" else test.prompt_ids()[40:60]
    ref = test.frame[test.frame["model"] == SMALL].set_index("prompt_id")
    path.write_text("".join(json.dumps({"id": str(p), "prompt": t, "reference": str(ref.loc[p, "answer"])}) + "\n"
                            for p, t in zip(ids, prompts_of(test, ids))))


def _endpoints(path: Path, env: dict) -> None:
    spec = {"defaults": {"api_base": env["upstream"], "api_key": "none"},
            "models": {"small": {"model": f"openai/{SMALL}"}, "large": {"model": f"openai/{LARGE}"}}}
    path.write_text(json.dumps(spec))


BROUGHT = {"outcomes.csv": _outcomes_csv, "train.parquet": _split_sample, "held_out.parquet": _split_sample,
           "prompts.jsonl": _prompts, "new.jsonl": _prompts, "endpoints.yaml": _endpoints}
WRITES = {"--out", "-o", "--save"}


def _bring(cmd: str, ws: Path, env: dict) -> None:
    words = shlex.split(cmd)
    for prev, w in zip(["", *words], words):
        if w in BROUGHT and prev not in WRITES and not (ws / w).exists():
            BROUGHT[w](ws / w, env)


def _serve(cmd: str, ws: Path, environ: dict) -> None:
    """Start ``callwise serve ...``, wait for /health, stop it."""
    words = shlex.split(cmd)
    port = int(words[words.index("--port") + 1]) if "--port" in words else 8000
    proc = subprocess.Popen([sys.executable, "-m", "callwise.cli", *words[1:]], cwd=ws, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, f"{cmd!r} exited: {proc.stdout.read().decode()[-3000:]}"  # type: ignore[union-attr]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, f"{cmd!r} did not answer /health in 60 s"
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def upstream(shared_data):
    from callwise.live.http_util import BackgroundServer
    from callwise.live.replay_server import build_replay_app

    with BackgroundServer(build_replay_app(upstream_table(shared_data))) as up:
        yield up.url + "/v1"


def test_documents_have_commands() -> None:
    """The extraction finds the README's recipes (a test of the test: it cannot pass on nothing)."""
    blocks = shell_blocks(ROOT / "README.md")
    cmds = [c for _, b in blocks for c in _commands(b)]
    assert sum(_is_callwise(c) for c in cmds) >= 10
    assert any("--param models=small,large" in c for c in cmds)
    assert _strip_comment('callwise route r.json "a # b"   # the choice') == 'callwise route r.json "a # b"'


#: Documents whose commands regenerate the published tables (minutes each): run where ``CI`` is set
#: (``.ci/run`` sets it), skipped in a local run of the suite unless ``CALLWISE_DOCS_ALL=1``.
HEAVY = {"results.md"}


@pytest.mark.slow
@pytest.mark.parametrize("doc", [d for d in DOCS if shell_blocks(d)], ids=lambda d: d.name)
def test_every_documented_command_runs(doc: Path, shared_data, upstream, tmp_path: Path) -> None:
    if doc.name in HEAVY and not (os.environ.get("CI") or os.environ.get("CALLWISE_DOCS_ALL")):
        pytest.skip(f"{doc.name} regenerates the published tables (minutes): run in CI, or set CALLWISE_DOCS_ALL=1")
    (tmp_path / "shared").symlink_to(shared_data.parent)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "docs").symlink_to(ROOT / "docs")
    env = {"shared": shared_data, "upstream": upstream}
    environ = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               "CALLWISE_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "160"}
    port = free_port()
    for start, lines in shell_blocks(doc):
        script = ["set -euo pipefail"]
        for cmd in _commands(lines):
            if not _is_callwise(cmd):
                if cmd.startswith(("pip ", "python ")):  # installs, the test suite, benchmarks/ scripts: not commands
                    continue
                script.append(cmd)
                continue
            cmd = _speed(cmd).replace("--port 8000", f"--port {port}")
            _bring(cmd, ws, env)
            if shlex.split(cmd)[1] == "serve":
                _flush(script, ws, environ, doc, start)
                script = ["set -euo pipefail"]
                _serve(cmd, ws, environ)
            else:
                script.append(cmd)
        _flush(script, ws, environ, doc, start)


def _flush(script: list[str], ws: Path, environ: dict, doc: Path, start: int) -> None:
    if len(script) == 1:
        return
    t = time.perf_counter()
    r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=ws, env=environ, capture_output=True, text=True,
                       timeout=1200)
    took = time.perf_counter() - t
    print(f"{doc.name}:{start}: {took:.1f} s")
    assert r.returncode == 0, (f"{doc.name}, block at line {start} failed (exit {r.returncode}):\n"
                               + "\n".join(script[1:]) + f"\n--- stdout ---\n{r.stdout[-3000:]}\n--- stderr ---\n"
                               + r.stderr[-3000:])
