"""Chat requests as the server and prompt files read them: validation and rendering for policies.

An OpenAI chat request is checked once (:func:`check_request`: every error names the field, as
a 4xx body would) and a conversation is rendered into the one text a policy reads
(:func:`render`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..core.errors import CallwiseError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
#: Generation settings a client may send; they reach every upstream call of the request.
PASSTHROUGH = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "presence_penalty",
               "frequency_penalty", "response_format")
UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "audio", "modalities")


class RequestError(CallwiseError):
    """An invalid request: becomes an OpenAI-style 4xx body."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.param, self.code, self.type = status, param, code, type


def render(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text a policy reads: a lone user message as it is, a conversation as ``role: content`` lines."""
    if len(messages) == 1:
        return _text(messages[0].get("content"))
    return "\n".join(f"{m.get('role')}: {_text(m.get('content'))}" for m in messages)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


def check_request(body: Any) -> tuple[str, list[dict[str, Any]], dict[str, Any], bool, bool]:
    """(model, messages, generation params, stream, include_usage) of a chat request, or a 400 naming the field."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "'model' is required: a policy such as 'callwise/NAME'", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty list of {role, content} objects", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RequestError(400, f"messages[{i}] must be an object with 'role' and 'content'", param=f"messages[{i}]")
        if m.get("role") not in ROLES:
            raise RequestError(400, f"messages[{i}].role must be one of {sorted(ROLES)}, got {m.get('role')!r}",
                               param=f"messages[{i}].role")
        c = m.get("content")
        if not isinstance(c, (str, list)) and not (c is None and m.get("role") == "assistant"):
            raise RequestError(400, f"messages[{i}].content must be a string or a list of content parts",
                               param=f"messages[{i}].content")
    if not any(m.get("role") == "user" for m in messages):
        raise RequestError(400, "'messages' needs at least one user message", param="messages")
    for k in UNSUPPORTED:
        if body.get(k) is not None:
            raise RequestError(400, f"'{k}' is not supported by callwise serve", param=k)
    n = body.get("n", 1)
    if n is not None and (isinstance(n, bool) or n != 1):
        raise RequestError(400, f"'n' must be 1 (a policy returns one answer), got {n!r}", param="n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "'stream' must be true or false", param="stream")
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise RequestError(400, "'stream_options' must be an object", param="stream_options")
    params = {k: body[k] for k in PASSTHROUGH if body.get(k) is not None}
    for k, v in params.items():
        _check_param(k, v)
    return model, messages, params, stream, bool(opts.get("include_usage"))


#: Numeric generation settings: (lowest, highest, whole numbers only).
RANGES = {"temperature": (0.0, 2.0, False), "top_p": (0.0, 1.0, False), "presence_penalty": (-2.0, 2.0, False),
          "frequency_penalty": (-2.0, 2.0, False), "max_tokens": (1, None, True),
          "max_completion_tokens": (1, None, True), "seed": (None, None, True)}
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


def _check_param(k: str, v: Any) -> None:
    """A forwarded generation setting of the right type and range, or a 400 naming it."""
    if k in RANGES:
        lo, hi, whole = RANGES[k]
        kind = "a whole number" if whole else "a number"
        ok = not isinstance(v, bool) and isinstance(v, int if whole else (int, float))
        ok = ok and v == v and abs(v) != float("inf") and (lo is None or v >= lo) and (hi is None or v <= hi)
        if not ok:
            where = "" if lo is None else f" >= {lo:g}" if hi is None else f" in [{lo:g}, {hi:g}]"
            raise RequestError(400, f"'{k}' must be {kind}{where}, got {v!r}", param=k)
    elif k == "stop":
        if not (isinstance(v, str) or (isinstance(v, list) and 1 <= len(v) <= 4 and all(isinstance(s, str) for s in v))):
            raise RequestError(400, f"'stop' must be a string or a list of 1 to 4 strings, got {v!r}", param="stop")
    elif k == "response_format":
        if not isinstance(v, dict) or v.get("type") not in RESPONSE_FORMATS:
            raise RequestError(400, f"'response_format' must be an object with 'type' one of {list(RESPONSE_FORMATS)}, "
                                    f"got {v!r}", param="response_format")
