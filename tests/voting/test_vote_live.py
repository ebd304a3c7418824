"""Multi-call policies live over real HTTP: Vote, Filter-Vote and best-of-K against a replay server on loopback.

The outcome table is built here: a generator model ``gen`` with 5 recorded samples per prompt
(answers in several spellings, so votes must normalise), a judge model ``judge`` that answers the
Filter-Vote prompt for every (prompt, sample) and the best-of-K ranking prompt for every prompt.
Every expected decision is computed independently in this file (``collections.Counter``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from livekit import live_backends

from callwise.core.backend import Queries
from callwise.core.errors import PolicyError
from callwise.core.normalise import text as text_normaliser
from callwise.core.outcomes import OutcomeTable
from callwise.core.replay import Replay
from callwise.live.http_util import BackgroundServer
from callwise.live.prompts import Prompts
from callwise.live.replay_server import build_replay_app
from callwise.live.runs import run_policy
from callwise.voting.vote import (
    JUDGE_TEMPLATE,
    RANK_TEMPLATE,
    BestOfK,
    FilterVote,
    Vote,
)

N_PROMPTS, N_SAMPLES = 25, 5
GEN, JUDGE = "gen", "judge"
GOLD = "alpha"
#: Each canonical answer in the spellings a model writes it; the votes must count them as one.
SPELLINGS = {"alpha": ("alpha", "Alpha.", "  ALPHA "), "beta": ("beta", "Beta!", "BETA"),
             "gamma": ("gamma", "Gamma.", " gamma")}
CANON = ("alpha", "beta", "gamma")
#: Forced first samples (canonical answers): a wrong plurality, three-way ties, a correct plurality.
FORCED = {0: ("beta", "beta", "alpha", "alpha", "alpha"),  # plurality of the first 3 is wrong
          1: ("gamma", "alpha", "beta", "alpha", "alpha"),  # three-way tie: the first seen (wrong) wins
          2: ("alpha", "gamma", "beta", "gamma", "gamma"),  # three-way tie: the first seen (right) wins
          3: ("beta", "alpha", "alpha", "beta", "beta"),  # right plurality, wrong first sample
          4: ("gamma", "gamma", "beta", "gamma", "beta")}  # nothing right in the first 3
#: Forced judge verdicts on samples 0..2 (True: "yes"): prompt 0 keeps only the right minority answer,
#: prompt 4 keeps nothing (the vote falls back to every answer), prompt 1 keeps only the right one.
FORCED_VERDICTS = {0: (False, False, True), 1: (False, True, False), 4: (False, False, False)}
#: Forced rank replies: prompt 0 names the right minority answer, prompt 1 is unreadable, prompt 2 is out of range.
FORCED_RANKS = {0: "3", 1: "no idea", 2: "Candidate 7."}


def canon(answer: str) -> str:
    """This file's own normaliser of the spellings above (lower-cased, trimmed, trailing . and ! dropped)."""
    return answer.strip().lower().rstrip(".!")


def pid(i: int) -> str:
    return f"q{i:02d}"


def question(i: int) -> str:
    return f"Question {i}: which Greek letter comes first? (variant {i})"


def build() -> tuple[OutcomeTable, dict]:
    """The outcome table and the ground truth the tests check against."""
    rng = np.random.default_rng(20240607)
    rows: list[dict] = []
    answers = np.empty((N_PROMPTS, N_SAMPLES), dtype=object)
    quality = np.zeros((N_PROMPTS, N_SAMPLES))
    cost = np.zeros((N_PROMPTS, N_SAMPLES))
    for i in range(N_PROMPTS):
        if i in FORCED:
            cats = list(FORCED[i])
        else:
            p = rng.dirichlet([1.2, 1.0, 0.8])
            cats = [CANON[c] for c in rng.choice(3, size=N_SAMPLES, p=p)]
        for s, c in enumerate(cats):
            answers[i, s] = SPELLINGS[c][int(rng.integers(len(SPELLINGS[c])))]
            quality[i, s] = 1.0 if c == GOLD else 0.0
            cost[i, s] = round(float(rng.uniform(1e-4, 9e-4)), 8)
            rows.append({"prompt_id": pid(i), "task": "qa", "prompt": question(i), "model": GEN, "sample": s,
                         "answer": answers[i, s], "quality": quality[i, s], "cost": cost[i, s]})
    # the judge: right 80% of the time; now and then a reply with neither yes nor no (not kept)
    verdict = np.zeros((N_PROMPTS, N_SAMPLES), dtype=bool)
    judge_cost = np.zeros((N_PROMPTS, N_SAMPLES))
    for i in range(N_PROMPTS):
        for s in range(N_SAMPLES):
            right = rng.random() < 0.8
            says_yes = bool(quality[i, s] == 1.0) == right
            if i in FORCED_VERDICTS and s < 3:
                says_yes = FORCED_VERDICTS[i][s]
            unsure = i not in FORCED_VERDICTS and rng.random() < 0.08
            reply = "I cannot tell." if unsure else (
                ("yes", "Yes, it is correct.")[s % 2] if says_yes else ("no", "No.")[s % 2])
            verdict[i, s] = says_yes and not unsure
            judge_cost[i, s] = round(float(rng.uniform(1e-5, 5e-5)), 8)
            rows.append({"prompt_id": f"{pid(i)}#judge", "task": "judge", "model": JUDGE, "sample": s,
                         "prompt": JUDGE_TEMPLATE.format(question=question(i), answer=answers[i, s]),
                         "answer": reply, "quality": float(verdict[i, s] == bool(quality[i, s])),
                         "cost": judge_cost[i, s]})
    # the ranker, shown samples 0..2: names a right candidate when there is one (80%), else any
    rank_reply, rank_cost = [], np.zeros(N_PROMPTS)
    for i in range(N_PROMPTS):
        right = np.flatnonzero(quality[i, :3] == 1.0)
        if i in FORCED_RANKS:
            reply = FORCED_RANKS[i]
        else:
            j = int(right[0]) if len(right) and rng.random() < 0.8 else int(rng.integers(3))
            reply = (f"{j + 1}", f"Candidate {j + 1} is best.")[i % 2]
        rank_reply.append(reply)
        rank_cost[i] = round(float(rng.uniform(1e-5, 5e-5)), 8)
        candidates = "\n".join(f"{j + 1}. {answers[i, j]}" for j in range(3))
        rows.append({"prompt_id": f"{pid(i)}#rank", "task": "rank", "model": JUDGE, "sample": 0,
                     "prompt": RANK_TEMPLATE.format(question=question(i), candidates=candidates),
                     "answer": reply, "quality": 1.0, "cost": rank_cost[i]})
    table = OutcomeTable.from_frame(pd.DataFrame(rows))
    truth = {"answers": answers, "quality": quality, "cost": cost, "verdict": verdict, "judge_cost": judge_cost,
             "rank_reply": rank_reply, "rank_cost": rank_cost}
    return table, truth


def plurality_index(answers: list[str], candidates: list[int]) -> int:
    """Index (into ``answers``) of the plurality answer among ``candidates`` (ties: first seen), by Counter."""
    counts = Counter(canon(answers[s]) for s in candidates)
    winner = counts.most_common(1)[0][0]
    return next(s for s in candidates if canon(answers[s]) == winner)


def queries() -> Queries:
    ids = np.array([pid(i) for i in range(N_PROMPTS)], dtype=object)
    prompts = np.array([question(i) for i in range(N_PROMPTS)], dtype=object)
    return Queries(ids, prompts, np.full(N_PROMPTS, "qa", dtype=object))


class CountingApp:
    """An ASGI wrapper that records the (prompt-id header, sample header) of each chat completion request."""

    def __init__(self, app) -> None:
        self.app = app
        self.seen: list[tuple[str | None, str | None]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/chat/completions"):
            h = dict(scope["headers"])
            get = lambda k: None if h.get(k) is None else h[k].decode()  # noqa: E731
            self.seen.append((get(b"x-callwise-prompt-id"), get(b"x-callwise-sample")))
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def world():
    table, truth = build()
    app = CountingApp(build_replay_app(table))
    with BackgroundServer(app) as srv:
        yield {"table": table, "truth": truth, "url": srv.url, "app": app}


@pytest.fixture
def live(world):
    with live_backends(world["url"], [GEN, JUDGE]) as make:
        yield make


def test_the_table_has_the_cases_the_tests_need(world):
    t = world["truth"]
    a, q = t["answers"], t["quality"]
    for raw in (s for v in SPELLINGS.values() for s in v):
        assert canon(raw) == text_normaliser(raw)  # this file's normaliser agrees with the library's on the data
    first3 = [[canon(x) for x in a[i, :3]] for i in range(N_PROMPTS)]
    ties = [i for i in range(N_PROMPTS) if len(set(first3[i])) == 3]
    wrong_plurality = [i for i in range(N_PROMPTS) if q[i, plurality_index(list(a[i]), [0, 1, 2])] == 0
                       and q[i, :3].any()]
    assert len(ties) >= 2 and len(wrong_plurality) >= 2
    assert len({canon(x) for x in a.ravel()}) == 3 and len(set(a.ravel())) > 3  # spellings differ


# --------------------------------------------------------------------------------------------
# Vote


def test_vote_live_picks_the_counter_plurality_of_samples_0_to_2(world, live):
    t = world["truth"]
    be = live()
    d = Vote(model=GEN, k=3, draws="first").decide(queries(), be)
    for i in range(N_PROMPTS):
        win = plurality_index(list(t["answers"][i]), [0, 1, 2])
        assert d.answers[i] == t["answers"][i, win], pid(i)
        assert d.quality[i] == t["quality"][i, win]
        assert d.cost[i] == pytest.approx(t["cost"][i, :3].sum(), rel=1e-12)
    assert d.models == (GEN, JUDGE) and (d.calls[:, 0] == 3).all() and (d.calls[:, 1] == 0).all()
    assert (d.chosen == 0).all()
    # some votes are wrong although a right sample exists: the test data is not trivial
    assert 0 < d.quality.mean() < t["quality"][:, :3].max(axis=1).mean()

    # offline on the recorded samples, the first 3 draws give the same decisions on average
    gen_only = world["table"].for_task("qa")
    off = Vote(model=GEN, k=3, draws="first").decide(queries(), Replay(gen_only))
    assert off.quality == pytest.approx(d.quality)
    assert off.point() == pytest.approx(d.point())
    off_all = Vote(model=GEN, k=3, draws="first").decide(queries(), Replay(world["table"]))
    assert off_all.point() == pytest.approx(d.point())


def test_vote_live_asks_for_distinct_samples_and_the_cache_keeps_them_apart(world, live, tmp_path):
    t = world["truth"]
    app = world["app"]
    app.seen.clear()
    be = live(cache=tmp_path / "c.sqlite")
    cache = be.cache
    first = Vote(model=GEN, k=3, draws="first").decide(queries(), be)
    per_prompt: dict[str, set[str]] = {}
    for p, s in app.seen:
        per_prompt.setdefault(p, set()).add(s)
    assert len(app.seen) == 3 * N_PROMPTS
    assert per_prompt == {pid(i): {"0", "1", "2"} for i in range(N_PROMPTS)}
    assert len(cache) == 3 * N_PROMPTS and be.stats["calls"] == 3 * N_PROMPTS

    # a re-run is served by the cache, sample by sample: no request, the same decisions
    app.seen.clear()
    be2 = live(cache=tmp_path / "c.sqlite")
    again = Vote(model=GEN, k=3, draws="first").decide(queries(), be2)
    assert app.seen == [] and be2.stats["cache_hits"] == 3 * N_PROMPTS
    assert list(again.answers) == list(first.answers)
    assert again.cost == pytest.approx(first.cost) and (again.quality == first.quality).all()
    # the cached samples are the recorded ones, not sample 0 three times
    for s in range(3):
        got = be2.call(GEN, queries(), sample=s)
        assert list(got.answers) == list(t["answers"][:, s])
        assert (got.quality == t["quality"][:, s]).all()


def test_vote_live_matches_prompts_by_text_too(world, live):
    """Without the prompt-id header the replay server matches the prompt text: same decisions."""
    by_id = Vote(model=GEN, k=3, draws="first").decide(queries(), live())
    by_text = Vote(model=GEN, k=3, draws="first").decide(queries(), live(send_ids=False))
    assert list(by_text.answers) == list(by_id.answers) and (by_text.quality == by_id.quality).all()


# --------------------------------------------------------------------------------------------
# Filter-Vote


@pytest.mark.parametrize("send_ids", [True, False], ids=["by-id", "by-text"])
def test_filter_vote_live_votes_over_what_the_judge_keeps(world, live, send_ids):
    t = world["truth"]
    be = live(send_ids=send_ids)
    d = FilterVote(model=GEN, k=6, filter="judge", judge_model=JUDGE).decide(queries(), be)
    changed = fell_back = 0
    for i in range(N_PROMPTS):
        a = list(t["answers"][i])
        kept = [s for s in range(3) if t["verdict"][i, s]]
        win = plurality_index(a, kept or [0, 1, 2])
        fell_back += not kept
        changed += canon(a[win]) != canon(a[plurality_index(a, [0, 1, 2])])
        assert d.answers[i] == a[win], pid(i)
        assert d.quality[i] == t["quality"][i, win]
        assert d.cost[i] == pytest.approx(t["cost"][i, :3].sum() + t["judge_cost"][i, :3].sum(), rel=1e-12)
    assert fell_back >= 1 and changed >= 1
    assert (d.calls[:, 0] == 3).all() and (d.calls[:, 1] == 3).all() and (d.chosen == 0).all()
    assert d.answers[0] == t["answers"][0, 2] and d.quality[0] == 1.0  # the judge rescued the wrong plurality


# --------------------------------------------------------------------------------------------
# best-of-K


@pytest.mark.parametrize("send_ids", [True, False], ids=["by-id", "by-text"])
def test_best_of_k_live_judge_picks_the_named_candidate(world, live, send_ids):
    t = world["truth"]
    app = world["app"]
    app.seen.clear()
    d = BestOfK(model=GEN, k=3, ranker="judge", judge_model=JUDGE).decide(queries(), live(send_ids=send_ids))
    fallbacks = 0
    for i in range(N_PROMPTS):
        a = list(t["answers"][i])
        reply = t["rank_reply"][i]
        nums = [int(x) for x in reply.replace(".", " ").split() if x.isdigit() and 1 <= int(x) <= 3]
        j = nums[0] - 1 if nums else plurality_index(a, [0, 1, 2])
        fallbacks += not nums
        assert d.answers[i] == a[j], (pid(i), reply)
        assert d.quality[i] == t["quality"][i, j]
        assert d.cost[i] == pytest.approx(t["cost"][i, :3].sum() + t["rank_cost"][i], rel=1e-12)
    assert fallbacks == 2  # "no idea" and "Candidate 7."
    assert d.answers[0] == t["answers"][0, 2] and d.answers[1] == t["answers"][1, 0]
    assert (d.calls[:, 0] == 3).all() and (d.calls[:, 1] == 1).all()
    assert len(app.seen) == 4 * N_PROMPTS
    if send_ids:
        assert {p for p, s in app.seen if p.endswith("#rank")} == {f"{pid(i)}#rank" for i in range(N_PROMPTS)}


def test_best_of_k_live_perfect_ranker_uses_the_reported_quality(world, live):
    t = world["truth"]
    d = BestOfK(model=GEN, k=3, ranker="perfect").decide(queries(), live())
    best = t["quality"][:, :3].max(axis=1)
    assert (d.quality == best).all()
    for i in range(N_PROMPTS):
        if best[i] == 1.0:
            assert canon(d.answers[i]) == GOLD
        assert d.answers[i] in list(t["answers"][i, :3])
    assert d.cost == pytest.approx(t["cost"][:, :3].sum(axis=1), rel=1e-12)
    assert (d.calls[:, 1] == 0).all()
    # a perfect ranker beats the plain vote here (prompt 0: the vote is wrong, a right sample exists)
    v = Vote(model=GEN, k=3, draws="first").decide(queries(), live())
    assert d.quality.mean() > v.quality.mean() and d.quality[0] == 1.0 and v.quality[0] == 0.0


# --------------------------------------------------------------------------------------------
# errors


def test_live_errors_name_the_problem(world, live):
    be = live()
    with pytest.raises(PolicyError, match=r"filter='simulated' is offline only; live runs use filter='judge'"):
        FilterVote(model=GEN, k=6, filter="simulated").decide(queries(), be)
    with pytest.raises(PolicyError, match=r"filter='recorded' is offline only"):
        FilterVote(model=GEN, k=6, filter="recorded").decide(queries(), be)
    with pytest.raises(PolicyError, match=r"judge model 'oracle' is not available; the backend has \['gen', 'judge'\]"):
        FilterVote(model=GEN, k=6, filter="judge", judge_model="oracle").decide(queries(), be)
    with pytest.raises(PolicyError, match=r"best-of-k: judge model 'oracle' is not available"):
        BestOfK(model=GEN, k=3, ranker="judge", judge_model="oracle").decide(queries(), be)
    with pytest.raises(PolicyError, match=r"model 'nobody' is not available; the backend has \['gen', 'judge'\]"):
        Vote(model="nobody", k=3).decide(queries(), be)
    with pytest.raises(PolicyError, match=r"k \(the number of calls\) must be an integer >= 1, got 0"):
        Vote(model=GEN, k=0).decide(queries(), be)
    with pytest.raises(PolicyError, match=r"must be even and >= 2, got 3"):
        FilterVote(model=GEN, k=3, filter="judge", judge_model=JUDGE).decide(queries(), be)
    with pytest.raises(PolicyError, match=r"ranker must be one of"):
        BestOfK(model=GEN, k=3, ranker="psychic").decide(queries(), be)
    with pytest.raises(PolicyError, match=r"has no model: pass model="):
        Vote(k=3).decide(queries(), be)
    assert be.stats["calls"] == 0  # every error came before any call


def test_asking_beyond_the_recorded_samples_is_a_404_naming_the_sample(world, live):
    with pytest.raises(Exception, match=r"sample 5 .*records samples 0\.\.4"):
        Vote(model=GEN, k=6, draws="first").decide(queries(), live())


# --------------------------------------------------------------------------------------------
# callwise run


def test_run_policy_records_one_row_per_call_with_its_sample(world, live):
    t = world["truth"]
    q = queries()
    prompts = Prompts(q, np.full(N_PROMPTS, None, dtype=object), "<vote-test>")
    res = run_policy(Vote(model=GEN, k=3, draws="first"), prompts, live())
    f = res.outcomes.frame
    assert len(f) == 3 * N_PROMPTS and res.summary["calls"] == 3 * N_PROMPTS
    assert (f.groupby("prompt_id")["sample"].apply(lambda s: sorted(s.tolist())) == [[0, 1, 2]] * N_PROMPTS).all()
    for r in f.itertuples():
        i = int(r.prompt_id[1:])
        assert r.answer == t["answers"][i, r.sample] and r.quality == t["quality"][i, r.sample]
        assert r.cost == pytest.approx(t["cost"][i, r.sample], rel=1e-12)
    d = res.decisions.set_index("prompt_id")
    for i in range(N_PROMPTS):
        win = plurality_index(list(t["answers"][i]), [0, 1, 2])
        assert d.loc[pid(i), "answer"] == t["answers"][i, win] and d.loc[pid(i), "quality"] == t["quality"][i, win]
    assert res.summary["cost_policy"] == pytest.approx(t["cost"][:, :3].sum(), rel=1e-9)


def test_run_policy_summary_quality_is_that_of_the_voted_answer(world, live):
    prompts = Prompts(queries(), np.full(N_PROMPTS, None, dtype=object), "<vote-test>")
    res = run_policy(Vote(model=GEN, k=3, draws="first"), prompts, live())
    assert res.summary["mean_quality"] == pytest.approx(res.decisions["quality"].mean())


@pytest.mark.parametrize("policy", [FilterVote(model=GEN, k=6, filter="judge", judge_model=JUDGE),
                                    BestOfK(model=GEN, k=3, ranker="judge", judge_model=JUDGE)],
                         ids=["filter-vote", "best-of-k"])
def test_run_policy_with_a_live_judge(world, live, policy):
    t = world["truth"]
    prompts = Prompts(queries(), np.full(N_PROMPTS, None, dtype=object), "<vote-test>")
    res = run_policy(policy, prompts, live())
    gen = res.outcomes.frame[res.outcomes.frame["model"] == GEN]
    assert len(gen) == 3 * N_PROMPTS
    for r in gen.itertuples():
        assert r.answer == t["answers"][int(r.prompt_id[1:]), r.sample]
