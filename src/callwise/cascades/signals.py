"""Confidence signals of a model's own answer: what an uncertainty cascade escalates on.

Higher is more confident, always. Three families (METHODS.md section 2):

- :class:`Margin` — from the first generated token's top-k log-probabilities as OpenAI-compatible
  APIs return them (``logprobs=true, top_logprobs>=2``): top-1 minus top-2, in probability space
  (exp(lp1) − exp(lp2), the paper) or logit space (lp1 − lp2; log-softmax differences equal raw
  logit differences, which is what the authors' code uses). For classification / multiple choice
  the candidates are restricted to the label tokens; for open answers the runner-up is the best
  token that is not a surface variant of the top token (same text up to case and surrounding
  space, or one a prefix / substring of the other).
- :class:`RecordedConfidence` — a scalar the data already carries (the outcome table's
  ``confidence`` column, e.g. the answer log-probability in rational-cascades).
- :class:`SampleAgreement` — the share of samples that agree with the majority answer, when the
  model is sampled more than once.

Missing information is an error naming what is missing, never a silent zero. The one declared
fallback: when the runner-up is not among the returned top tokens (a single returned token, or
every other one a surface variant / not a label), ``fallback="bound"`` bounds the runner-up's
probability from above by min(the least likely returned token's, the probability mass not
returned), so the margin is a lower bound (logit margins are capped at 50 when that mass is 0);
``fallback="error"`` refuses instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from ..core.errors import CallwiseError

Space = Literal["prob", "logit"]


class SignalError(CallwiseError, ValueError):
    """A confidence signal cannot be computed from what was given."""


# --------------------------------------------------------------------------------------------
# reading logprob payloads


def first_token_candidates(payload: Any) -> list[tuple[str, float]]:
    """(token, logprob) candidates of the first generated token, best first.

    Accepts the chat-completions shape ``{"content": [{"token", "logprob", "top_logprobs": [{"token",
    "logprob"}, ...]}, ...]}``, the legacy completions shape ``{"tokens": [...], "token_logprobs":
    [...], "top_logprobs": [{token: logprob, ...}, ...]}``, or a bare list of ``{"token", "logprob"}``.
    The chosen token is included even when ``top_logprobs`` omits it.
    """
    if payload is None:
        raise SignalError("no logprobs were recorded for this answer; request logprobs=true with top_logprobs>=2")
    if isinstance(payload, Mapping) and "content" in payload:
        content = payload["content"]
        if not content:
            raise SignalError("the logprobs payload has no tokens ('content' is empty)")
        first = content[0]
        cands = [(str(t["token"]), float(t["logprob"])) for t in (first.get("top_logprobs") or [])]
        if "token" in first and "logprob" in first:
            cands.append((str(first["token"]), float(first["logprob"])))
    elif isinstance(payload, Mapping) and "top_logprobs" in payload:
        tops = payload["top_logprobs"]
        if not tops or tops[0] is None:
            raise SignalError("the logprobs payload has no top_logprobs for the first token")
        cands = [(str(t), float(lp)) for t, lp in tops[0].items()]
        toks, lps = payload.get("tokens"), payload.get("token_logprobs")
        if toks and lps and lps[0] is not None:
            cands.append((str(toks[0]), float(lps[0])))
    elif isinstance(payload, Sequence) and not isinstance(payload, (str, bytes)):
        cands = [(str(t["token"]), float(t["logprob"])) for t in payload]
    else:
        raise SignalError(f"unrecognised logprobs payload of type {type(payload).__name__}; expected the "
                          "OpenAI 'content' list, the legacy 'top_logprobs' dicts, or a list of {token, logprob}")
    if not cands:
        raise SignalError("the logprobs payload lists no candidate tokens for the first position")
    best: dict[str, float] = {}
    for tok, lp in cands:
        if not np.isfinite(lp) and lp != -np.inf:
            raise SignalError(f"token {tok!r} has a non-numeric logprob {lp!r}")
        best[tok] = max(lp, best.get(tok, -np.inf))
    return sorted(best.items(), key=lambda kv: -kv[1])


def _norm(tok: str) -> str:
    return tok.strip().casefold()


def is_surface_variant(a: str, b: str) -> bool:
    """Same answer up to case and surrounding space, or one a prefix / substring of the other."""
    x, y = _norm(a), _norm(b)
    if not x or not y:
        return x == y
    return x == y or x in y or y in x


def margin(payload: Any, *, space: Space = "prob", labels: Sequence[str] | None = None,
           fallback: Literal["bound", "error"] = "bound", renormalise: bool = False) -> float:
    """The first-token margin of one answer (see the module docstring).

    ``renormalise`` (with ``labels``, in probability space): the label probabilities are divided
    by their sum over the returned labels (a softmax over the label tokens' logits, as the paper
    describes the margin of a classification), so the margin no longer depends on the mass the
    model put outside the labels. Off by default: the margin is then the difference of the
    probabilities the API returned. In logit space it changes nothing (a shift of every logit).
    """
    if space not in ("prob", "logit"):
        raise SignalError(f"margin space must be 'prob' or 'logit', got {space!r}")
    cands = first_token_candidates(payload)
    if labels is not None:
        wanted = {_norm(lab) for lab in labels}
        if not wanted:
            raise SignalError("labels must name at least one label token")
        pool = [(t, lp) for t, lp in cands if _norm(t) in wanted]
        if not pool:
            raise SignalError(f"none of the labels {sorted(wanted)} is among the returned tokens "
                              f"{[t for t, _ in cands]}; request more top_logprobs")
        # merge surface forms of one label (e.g. "A" and " A"): keep the likeliest
        merged: dict[str, float] = {}
        for t, lp in pool:
            merged[_norm(t)] = max(lp, merged.get(_norm(t), -np.inf))
        ranked = sorted(merged.values(), reverse=True)
        top = ranked[0]
        runner = ranked[1] if len(ranked) > 1 else None
    else:
        top_tok, top = cands[0]
        others = [lp for t, lp in cands[1:] if not is_surface_variant(t, top_tok)]
        runner = others[0] if others else None
    if runner is None:
        if fallback == "error":
            raise SignalError("the runner-up token is not among the returned top_logprobs; request more "
                              "top_logprobs or use fallback='bound'")
        runner = min(_unreturned_bound(cands), top)
    if renormalise and labels is not None and space == "prob":
        mass = float(np.exp(ranked).sum()) + (float(np.exp(runner)) if len(ranked) == 1 else 0.0)
        return float((np.exp(top) - np.exp(runner)) / mass) if mass > 0 else 0.0
    if space == "logit":
        return float(min(top - runner, MAX_LOGIT_MARGIN))
    return float(np.exp(top) - np.exp(runner))


#: Cap of the logit margin when the runner-up's bound is zero probability (all mass returned).
MAX_LOGIT_MARGIN = 50.0


def _unreturned_bound(cands: list[tuple[str, float]]) -> float:
    """Log of an upper bound on any token not returned: min(least returned prob, mass not returned)."""
    lps = np.array([lp for _, lp in cands])
    rest = max(1.0 - float(np.exp(lps).sum()), 0.0)
    bound = min(float(np.exp(lps.min())) if len(lps) > 1 else 1.0, rest)
    return float(np.log(bound)) if bound > 0 else -np.inf


# --------------------------------------------------------------------------------------------
# signal objects


class Signal(ABC):
    """A per-answer confidence score (higher = more confident)."""

    name: str

    @abstractmethod
    def scores(self, *, confidence: np.ndarray | None = None, logprobs: Sequence[Any] | None = None,
               answers: np.ndarray | None = None, ids: Sequence[Any] | None = None) -> np.ndarray:
        """Scores for a batch: give the inputs this signal uses (recorded confidences, logprob
        payloads, or a (queries x samples) array of answers); ``ids`` name queries in errors."""

    def settings(self) -> dict[str, Any]:
        return {"signal": self.name, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}


def _ids(ids: Sequence[Any] | None, n: int) -> list[Any]:
    return list(ids) if ids is not None else list(range(n))


class Margin(Signal):
    """First-token margin from logprob payloads (``space``, ``labels``, ``fallback``, ``renormalise``: see :func:`margin`)."""

    name = "margin"

    def __init__(self, space: Space = "prob", labels: Sequence[str] | None = None,
                 fallback: Literal["bound", "error"] = "bound", renormalise: bool = False) -> None:
        self.space = space
        self.labels = list(labels) if labels is not None else None
        self.fallback = fallback
        self.renormalise = renormalise

    def scores(self, *, confidence: np.ndarray | None = None, logprobs: Sequence[Any] | None = None,
               answers: np.ndarray | None = None, ids: Sequence[Any] | None = None) -> np.ndarray:
        if logprobs is None:
            raise SignalError("the margin signal needs logprob payloads; none were given (was the model called "
                              "with logprobs=true and top_logprobs>=2?)")
        names = _ids(ids, len(logprobs))
        out = np.empty(len(logprobs))
        for i, p in enumerate(logprobs):
            try:
                out[i] = margin(p, space=self.space, labels=self.labels, fallback=self.fallback,
                                renormalise=self.renormalise)
            except SignalError as e:
                raise SignalError(f"query {names[i]!r}: {e}") from None
        return out


class RecordedConfidence(Signal):
    """A scalar confidence recorded with each answer (the outcome table's ``confidence`` column)."""

    name = "recorded"

    def scores(self, *, confidence: np.ndarray | None = None, logprobs: Sequence[Any] | None = None,
               answers: np.ndarray | None = None, ids: Sequence[Any] | None = None) -> np.ndarray:
        if confidence is None:
            raise SignalError("the data records no confidence column; give a 'confidence' per outcome or use "
                              "another signal")
        c = np.asarray(confidence, dtype=float)
        bad = np.isnan(c)  # -inf is a real value: the log of a zero probability, the least confident
        if bad.any():
            names = np.asarray(_ids(ids, len(c)), dtype=object)[bad][:3].tolist()
            raise SignalError(f"{int(bad.sum())} answer(s) have no recorded confidence, e.g. queries {names}")
        return c


class SampleAgreement(Signal):
    """Share of a query's samples that give its majority answer (answers: queries x samples; None = missing).

    A query none of whose samples has an answer (every one failed to parse) scores 0: the least sure,
    the first to escalate.
    """

    name = "agreement"

    def scores(self, *, confidence: np.ndarray | None = None, logprobs: Sequence[Any] | None = None,
               answers: np.ndarray | None = None, ids: Sequence[Any] | None = None) -> np.ndarray:
        if answers is None:
            raise SignalError("sample agreement needs the answers of several samples per query")
        a = np.asarray(answers, dtype=object)
        if a.ndim != 2 or a.shape[1] < 2:
            raise SignalError(f"sample agreement needs a queries x samples array with >= 2 samples, got shape {a.shape}")
        out = np.empty(a.shape[0])
        for i, row in enumerate(a):
            got = [x for x in row if x is not None and not (isinstance(x, float) and np.isnan(x))]
            out[i] = Counter(got).most_common(1)[0][1] / len(got) if got else 0.0
        return out


SIGNALS: dict[str, type[Signal]] = {c.name: c for c in (Margin, RecordedConfidence, SampleAgreement)}


def make_signal(name: str, **settings: Any) -> Signal:
    """Build a signal by name: ``margin`` (space, labels, fallback, renormalise), ``recorded``, ``agreement``."""
    try:
        cls = SIGNALS[name]
    except KeyError:
        raise SignalError(f"no signal {name!r}; signals are {sorted(SIGNALS)}") from None
    try:
        return cls(**settings)
    except TypeError as e:
        raise SignalError(f"bad settings for signal {name!r}: {e}") from None
