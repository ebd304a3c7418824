"""Vote, Filter-Vote and best-of-K as policies offline (Replay), in bench, in policy files and in
``callwise scale``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from callwise.cli import app
from callwise.core.errors import PolicyError
from callwise.core.outcomes import OutcomeTable
from callwise.core.policy_files import load_policy, save_policy
from callwise.core.replay import Replay
from callwise.core.split import split_outcomes
from callwise.evaluation.bench import bench
from callwise.voting.engine import vote_curve
from callwise.voting.vote import BestOfK, FilterVote, Vote


def _table(n_prompts=120, samples=8, seed=0, keep=False):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_prompts):
        p = rng.dirichlet([2.0, 1.0, 1.0])
        for m, S, cost, dist in (("small", samples, 0.001, p), ("big", 1, 0.01, [0.8, 0.1, 0.1])):
            for s in range(S):
                a = int(rng.choice(3, p=dist))
                row = dict(prompt_id=f"p{i}", task="t", prompt=f"question {i}", model=m, sample=s, answer=f"ans{a}",
                           quality=float(a == 0), cost=cost * (1 + 0.1 * s))
                if keep:
                    row["keep"] = float(a == 0) if rng.random() < 0.9 else float(a != 0)
                rows.append(row)
    return OutcomeTable.from_frame(pd.DataFrame(rows))


def test_vote_offline_is_the_expected_vote_of_recorded_samples():
    t = _table()
    r = Replay(t)
    q = r.queries()
    pol = Vote().fit(t)
    assert pol.model_ == "small" and pol.samples_ == 8
    sweep = pol.sweep()
    assert [p.k for p in sweep] == list(range(1, 9))
    d = sweep[4].decide(q, r)
    j = d.models.index("small")
    assert (d.calls[:, j] == 5).all() and (d.chosen == j).all()
    rec = r.samples("small", q)
    np.testing.assert_allclose(d.cost, 5 * np.nanmean(rec.cost, axis=1))
    from callwise.voting.engine import encode

    s = encode(rec.answers, rec.quality, rec.cost)
    # the sweep's curve is computed once for K = 1..8 (one seeded Monte Carlo pass for every K)
    np.testing.assert_allclose(d.quality, vote_curve(s, np.arange(1, 9))[:, 4])


def test_vote_first_draws_and_cheaper():
    t = _table()
    r = Replay(t)
    d = Vote(model="small", k=3, draws="first").decide(r.queries(), r)
    rec = r.samples("small", r.queries())
    np.testing.assert_allclose(d.cost, rec.cost[:, :3].sum(axis=1))
    assert Vote(k=9).cheaper(1.0).k == 1 and Vote(k=9).cheaper(0.5).k == 5
    assert FilterVote(k=10).cheaper(1.0).k == 2


def test_filter_vote_counts_calls_as_the_paper_does():
    t = _table()
    r = Replay(t)
    pol = FilterVote(k=6).fit(t)
    assert pol.filter == "simulated"
    assert [p.k for p in pol.sweep()][:3] == [2, 4, 6]
    d = pol.decide(r.queries(), r)
    j = d.models.index("small")
    assert (d.calls[:, j] == 6).all()  # 3 generations + 3 filter calls of the same model
    rec = r.samples("small", r.queries())
    np.testing.assert_allclose(d.cost, 6 * np.nanmean(rec.cost, axis=1))
    with pytest.raises(PolicyError, match="must be even and >= 2"):
        FilterVote(k=5).fit(t).decide(r.queries(), r)


def test_filter_vote_reads_recorded_verdicts():
    t = _table(keep=True)
    r = Replay(t)
    pol = FilterVote(k=8).fit(t)
    assert pol.filter == "recorded"
    q_rec = pol.decide(r.queries(), r).point()[1]
    q_vote = Vote(k=4).fit(t).decide(r.queries(), r).point()[1]
    assert q_rec > q_vote + 0.05  # a 90%-right filter helps
    with pytest.raises(PolicyError, match="needs a 'keep' verdict"):
        FilterVote(k=4, filter="recorded").fit(_table()).decide(r.queries(), Replay(_table()))


def test_keep_column_is_validated():
    df = _table(keep=True).frame.copy()
    df.loc[3, "keep"] = 0.5
    from callwise.core.errors import DataError

    with pytest.raises(DataError, match=r"filter verdict must be 1 \(keep\) or 0 \(drop\), got 0.5"):
        OutcomeTable.from_frame(df)


def test_best_of_k_rises_with_k_and_beats_vote():
    t = _table()
    r = Replay(t)
    pts = [p.decide(r.queries(), r).point()[1] for p in BestOfK().fit(t).sweep()]
    assert all(b >= a - 1e-12 for a, b in zip(pts, pts[1:]))
    noisy = [p.decide(r.queries(), r).point()[1] for p in BestOfK(ranker="noisy", ranker_accuracy=0.5).fit(t).sweep()]
    assert noisy[-1] < pts[-1]
    with pytest.raises(PolicyError, match="ranker must be one of"):
        BestOfK(ranker="oracle").fit(t).decide(r.queries(), r)


def test_offline_errors_are_clear():
    t = _table()
    r = Replay(t)
    with pytest.raises(PolicyError, match="needs 9 distinct recorded samples"):
        Vote(k=9, draws="without-replacement").fit(t).decide(r.queries(), r)
    with pytest.raises(PolicyError, match="must be an integer >= 1"):
        Vote(k=0).fit(t).decide(r.queries(), r)
    with pytest.raises(PolicyError, match="model 'nope' is not in the training data"):
        Vote(model="nope").fit(t)
    with pytest.raises(PolicyError, match="offline use 'recorded' or 'simulated'"):
        FilterVote(filter="judge").fit(t).decide(r.queries(), r)
    no_answers = OutcomeTable.from_frame(t.frame.drop(columns=["answer"]))
    with pytest.raises(PolicyError, match="needs recorded answers"):
        Vote().fit(no_answers).decide(Replay(no_answers).queries(), Replay(no_answers))


def test_vote_in_bench_beside_the_routers():
    t = _table()
    train, test, info = split_outcomes(t, seed=0)
    res = bench(train, test, policies=["vote", "knn"], n_boot=20, split_info=info)
    e = res.tasks["t"].entries["vote"]
    assert e.family == "multi-call" and len(e.points) == 8
    assert np.all(np.diff(e.points[:, 0]) > 0)  # K is a cost knob
    assert "vote" in res.overall


def test_vote_policy_file_roundtrip(tmp_path):
    t = _table()
    pol = FilterVote(k=4).fit(t)
    save_policy(pol, tmp_path / "fv.json")
    back = load_policy(tmp_path / "fv.json")
    r = Replay(t)
    np.testing.assert_allclose(back.decide(r.queries(), r).quality, pol.decide(r.queries(), r).quality)
    assert back.model_ == "small" and back.filter == "simulated"


# --------------------------------------------------------------------------------------------
# callwise scale


def test_scale_cli_writes_results(tmp_path):
    t = _table(n_prompts=80, samples=10)
    path = tmp_path / "votes.parquet"
    t.to_parquet(path)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["scale", str(path), "--model", "small", "--k-max", "200", "--reps", "100",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "empirical (K = 1..10" in res.output
    payload = json.loads((out / "results.json").read_text())
    sm = payload["summary"]
    assert sm["samples_per_prompt"] == {"min": 10, "max": 10} and sm["few_samples"] == 4
    assert 1 <= sm["empirical"]["best_k"] <= 10 and 1 <= sm["predicted"]["best_k"] <= 200
    assert len(payload["curves"]["predicted"]["accuracy"]) == 200
    assert len(payload["curves"]["filter_vote"]["k"]) == 10 and payload["curves"]["filter_vote"]["k"][0] == 2
    lo, hi = payload["curves"]["empirical"]["ci_low"], payload["curves"]["empirical"]["ci_high"]
    assert all(a <= b for a, b in zip(lo, hi))
    assert (out / "scale.png").stat().st_size > 1000


def test_scale_needs_no_model_when_the_data_has_one(tmp_path):
    from callwise.voting.curves import scale

    t = _table(n_prompts=40, samples=6)
    one = t.select(t.frame["model"] == "small")
    a = scale(one, k_max=20, reps=20, n_boot=20)
    b = scale(t, "small", k_max=20, reps=20, n_boot=20)
    assert a.to_dict()["summary"] == b.to_dict()["summary"]


@pytest.mark.parametrize("args,message", [
    (["--model", "nope"], "model 'nope' is not in the data"),
    (["--model", "big"], "has prompts with 1 recorded sample(s); scaling needs at least 2"),
    (["--model", "small", "--task", "other"], "model 'small' has no task 'other'"),
    (["--model", "small", "--k-max", "1"], "--k-max must be at least 2"),
    ([], "the data has 2 models ['big', 'small']: say whose samples are voted on with --model"),
])
def test_scale_cli_errors(tmp_path, args, message):
    path = tmp_path / "votes.parquet"
    _table(n_prompts=20, samples=4).to_parquet(path)
    res = CliRunner().invoke(app, ["scale", str(path), *args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert message in " ".join(res.output.split())
    assert not (tmp_path / "o").exists()
