"""A fake Modern.Gov site on loopback, answering as the real web service does, for the sync tests.

Where each shape comes from (public code that reads real Modern.Gov sites):

- carj/pyPreservica.Gov, pyPreservicaGov/main.py (the harvester on PyPI as pyPreservicaGov):
  the paths `<site>/mgWebService.asmx/GetCommittees`, `GetMeetings?lCommitteeId=&sFromDate=&sToDate=`
  with dates as dd/mm/yyyy, `GetMeeting?lmeetingid=` and `GetAttachment?lAttachmentId=`;
  `<committees>` holding `<committeescount>` and `<committee>` with `<committeeid>`,
  `<committeetitle>` and an optional `<committeecategory>`; `<getmeetings>` with
  `<meetingscount>` and `<meeting>` elements with `<meetingid>` and `<meetingdate>` (dd/mm/yyyy);
  `<meeting>` with `<meetinglocation>` and `<meetingdate>`, its papers as `<linkeddoc>` elements
  (found anywhere below it) with `<attachmentid>`, `<title>` and `<ownertitle>`, whose URL is
  asked of GetAttachment: `<attachment>` with a `<url>` below it; HTML (`<div>...`) inside
  answers, which that harvester wraps in CDATA before parsing; and the meeting's own papers
  (front sheet, reports pack, minutes) linked from `ieListDocuments.aspx?CId=&MId=` inside
  `<ul class="mgActionList">` as `documents/g<meeting id>/...pdf`, titled "Link to ...".
- carj/pyPreservica.Gov, pyPreservicaGov/schema/mg-*-CMIS.xsl: the attachment's fields
  `attachmentid`, `title`, `isrestricted`, `publicationdate`, `committeetitle`, `ownertitle`
  under `<attachmentdetails>`; the meeting's `meetingstatus`, `agendaitemtitle`, `meetinglocation`.
- afdy/moderngov, moderngov/api.py and mgq.py: `<getmeetings><committee>...<committeemeetings>
  <meeting>` with `meetingtime` and `meetingstatus`; GetMeeting's `agendapublished`,
  `decisionpublished`, `minutepublished`, `<agendaitems><agendaitem>` with `agendaitemid` and
  `agendaitemtitle`, `<attendees><attendee memberid= name= attendance=>`.

Assumed, not seen in those sources (the client copes when they are absent):
`<agendaitemnumber>` (else a number the title starts with, else the item's place);
`<linkeddocuments>` as the wrapper of an item's `<linkeddoc>`s (the client looks anywhere below
the item); "Cancelled" as a cancelled meeting's `meetingstatus`; document URLs of the form
`documents/s<attachment id>/<URL-encoded file name>`, as Modern.Gov sites show them.

FakeSite holds the site as plain data, so a test can change it between two syncs, and records
every request (path, query, headers, time) so a test can see what a sync asked for.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import formatdate
from html import escape as html_escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape


@dataclass
class Doc:
    """A file the site serves at `path`; body None answers 404."""

    path: str
    body: bytes | None
    content_type: str = "application/pdf"
    modified: float = 1737000000.0


@dataclass
class Linked:
    attachment_id: str
    title: str
    doc: Doc
    published: str = "22/01/2025"


@dataclass
class Item:
    number: str | None
    title: str
    linked: list[Linked] = field(default_factory=list)


@dataclass
class FakeMeeting:
    id: str
    committee_id: str
    date: date
    status: str = "Confirmed"
    items: list[Item] = field(default_factory=list)
    documents: list[tuple[str, Doc]] = field(default_factory=list)  # the meeting's own papers: (title, doc)


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float


def doc_path(folder: str, file_name: str) -> str:
    """"/documents/s502/24-00115%20-%20EqIA.pdf": a file name URL-encoded as Modern.Gov sites show it."""
    return f"/documents/{folder}/{quote(file_name)}"


@dataclass
class FakeSite:
    committees: dict[str, str] = field(default_factory=dict)  # id -> title
    meetings: list[FakeMeeting] = field(default_factory=list)
    moderngov: bool = True  # False: a site with no web service (every path but / answers 404)
    html_everywhere: bool = False  # a CMS answering every path with its home page
    fail: dict[str, list[tuple[int, dict]]] = field(default_factory=dict)  # lower path -> answers to give first
    drop_after: int | None = None  # after this many requests the site hangs up without answering
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    # ------------------------------------------------------------ what a test asks

    def asked(self, path_part: str) -> list[Request]:
        return [r for r in self.requests if path_part.lower() in r.path.lower()]

    def documents(self) -> list[Request]:
        return [r for r in self.requests if r.path.lower().startswith("/documents/")]

    def docs(self) -> dict[str, Doc]:
        out = {}
        for m in self.meetings:
            for _, d in m.documents:
                out[unquote(d.path).lower()] = d
            for item in m.items:
                for link in item.linked:
                    out[unquote(link.doc.path).lower()] = link.doc
        return out

    # ------------------------------------------------------------ answers

    def answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, dict, bytes]:
        q = {k.lower(): v for k, v in query.items()}  # the service's parameter names are not case-sensitive
        low = path.lower()
        if self.fail.get(low):
            status, extra = self.fail[low].pop(0)
            return status, {"Content-Type": "text/html", **extra}, b"<html><body>Service unavailable</body></html>"
        if self.html_everywhere:
            return 200, {"Content-Type": "text/html"}, b"<!DOCTYPE html><html><body><p>Welcome<br>to the council</body></html>"
        if low == "/":
            return 200, {"Content-Type": "text/html"}, b"<html><body>Council home</body></html>"
        if not self.moderngov:
            return 404, {"Content-Type": "text/html"}, b"<html><body>Page not found</body></html>"
        xml = {"/mgwebservice.asmx/getcommittees": lambda: self._committees(),
               "/mgwebservice.asmx/getmeetings": lambda: self._meetings(q),
               "/mgwebservice.asmx/getmeeting": lambda: self._meeting(q.get("lmeetingid", "")),
               "/mgwebservice.asmx/getattachment": lambda: self._attachment(q.get("lattachmentid", ""))}.get(low)
        if xml is not None:
            body = xml()
            if body is None:
                return 500, {"Content-Type": "text/plain"}, b"System.NullReferenceException"
            return 200, {"Content-Type": "text/xml; charset=utf-8"}, body.encode("utf-8")
        if low == "/ielistdocuments.aspx":
            return 200, {"Content-Type": "text/html; charset=utf-8"}, self._meeting_page(q.get("mid", "")).encode("utf-8")
        doc = self.docs().get(unquote(path).lower())
        if doc is None or doc.body is None:
            return 404, {"Content-Type": "text/html"}, b"<html><body>The resource cannot be found.</body></html>"
        etag = '"' + hashlib.sha256(doc.body).hexdigest()[:16] + '"'
        stamp = {"ETag": etag, "Last-Modified": formatdate(doc.modified, usegmt=True)}
        if headers.get("if-none-match") == etag:
            return 304, stamp, b""
        return 200, {"Content-Type": doc.content_type, **stamp}, doc.body

    def _committees(self) -> str:
        rows = "".join(f"<committee><committeeid>{cid}</committeeid><committeetitle>{escape(title)}</committeetitle>"
                       f"<committeecategory>Committee</committeecategory></committee>"
                       for cid, title in self.committees.items())
        return f'<?xml version="1.0" encoding="utf-8"?><committees><committeescount>{len(self.committees)}' \
               f"</committeescount>{rows}</committees>"

    def _meetings(self, q: dict[str, str]) -> str:
        cid = q.get("lcommitteeid", "")
        lo, hi = (datetime.strptime(q[k], "%d/%m/%Y").date() for k in ("sfromdate", "stodate"))
        found = [m for m in self.meetings if m.committee_id == cid and lo <= m.date <= hi]
        rows = "".join(f"<meeting><meetingid>{m.id}</meetingid><meetingdate>{m.date:%d/%m/%Y}</meetingdate>"
                       f"<meetingtime>10:00</meetingtime><meetingstatus>{m.status}</meetingstatus></meeting>"
                       for m in found)
        title = escape(self.committees.get(cid, ""))
        return f'<?xml version="1.0" encoding="utf-8"?><getmeetings><meetingscount>{len(found)}</meetingscount>' \
               f"<committee><committeeid>{cid}</committeeid><committeetitle>{title}</committeetitle>" \
               f"<committeemeetings>{rows}</committeemeetings></committee></getmeetings>"

    def _meeting(self, mid: str) -> str | None:
        m = next((m for m in self.meetings if m.id == mid), None)
        if m is None:
            return None
        items = []
        for k, item in enumerate(m.items):
            number = f"<agendaitemnumber>{item.number}</agendaitemnumber>" if item.number else ""
            docs = "".join(f"<linkeddoc><attachmentid>{link.attachment_id}</attachmentid><title>{escape(link.title)}"
                           f"</title><ownertitle>{escape(self.committees[m.committee_id])}</ownertitle></linkeddoc>"
                           for link in item.linked)
            # The minutes come as HTML, with entities XML does not know: not well-formed XML.
            minutes = "<minutes><div class=\"mgMinutes\"><div>The Cabinet&nbsp;noted the report.<br></div></div></minutes>" \
                if k == 0 else ""
            items.append(f"<agendaitem><agendaitemid>{7000 + k}</agendaitemid>{number}<agendaitemtitle>"
                         f"{escape(item.title)}</agendaitemtitle>{minutes}<linkeddocuments>{docs}</linkeddocuments>"
                         f"</agendaitem>")
        return f'<?xml version="1.0" encoding="utf-8"?><meeting><meetingid>{m.id}</meetingid>' \
               f"<meetingdate>{m.date:%d/%m/%Y}</meetingdate><meetingtime>10:00</meetingtime>" \
               f"<meetingstatus>{m.status}</meetingstatus><meetinglocation>Council Chamber, Sessions House" \
               f"</meetinglocation><agendapublished>True</agendapublished><decisionpublished>False" \
               f"</decisionpublished><minutepublished>False</minutepublished><agendaitems>{''.join(items)}" \
               f'</agendaitems><attendees><attendee memberid="101" name="Mr R Gough" attendance="Present"/>' \
               f"</attendees></meeting>"

    def _attachment(self, aid: str) -> str | None:
        for m in self.meetings:
            for item in m.items:
                for link in item.linked:
                    if link.attachment_id == aid:
                        return f'<?xml version="1.0" encoding="utf-8"?><attachment><attachmentdetails>' \
                               f"<attachmentid>{aid}</attachmentid><title>{escape(link.title)}</title>" \
                               f"<url>{escape(self.url + link.doc.path)}</url><isrestricted>False</isrestricted>" \
                               f"<publicationdate>{link.published}</publicationdate><committeetitle>" \
                               f"{escape(self.committees[m.committee_id])}</committeetitle><ownertitle>" \
                               f"{escape(item.title)}</ownertitle></attachmentdetails></attachment>"
        return None

    def _meeting_page(self, mid: str) -> str:
        m = next((m for m in self.meetings if m.id == mid), None)
        links = "" if m is None else "".join(
            f'<li><a href="{html_escape(d.path.lstrip("/"))}" title="Link to {html_escape(title)}">'
            f"{html_escape(title)} PDF 156 KB</a></li>" for title, d in m.documents)
        return ("<!DOCTYPE html><html><head><title>Agenda for meeting</title></head><body>"
                '<a href="mgListCommittees.aspx">Committees</a>'
                f'<ul class="mgActionList">{links}<li><a href="mgIssueHistoryHome.aspx?IId=1">Issue history</a></li></ul>'
                '<a href="documents/g1/Other meeting.pdf">Another meeting</a></body></html>')


class _Handler(BaseHTTPRequestHandler):
    site: FakeSite

    def do_GET(self):  # noqa: N802 - the http.server API
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.site.requests.append(Request(parts.path, query, headers, time.monotonic()))
        if self.site.drop_after is not None and len(self.site.requests) > self.site.drop_after:
            self.close_connection = True  # the site went down part way: no answer at all
            return
        status, extra, body = self.site.answer(parts.path, query, headers)
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


class Server:
    """FakeSite served on 127.0.0.1 from a thread: `with Server(site) as url: ...`."""

    def __init__(self, site: FakeSite):
        self.site = site
        handler = type("Handler", (_Handler,), {"site": site})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        site.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll, so shutting the server down at the end of each test takes no time.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return self.site.url

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------- a Kent-like site


AGENDA = "Agenda frontsheet 30th-Jan-2025 10.00 Cabinet"
PACK = "Public reports pack 13th-Mar-2025 15.00 Cabinet"
ITEM_8 = "24/00115 - Kent County Council Integrated Care Strategy (KCC ICS) Delivery Plan"
ITEM_9 = "24/00096 - Commissioning Plan for Education Provision in Kent 2025-29"


def kent_site(papers: dict[str, bytes]) -> FakeSite:
    """Kent's Cabinet of 30 January and 13 March 2025 with its papers, and the awkward cases.

    `papers` holds the bytes of "agenda", "pack", "eqia", "appendix" and "minutes" (County
    Council's). Awkward on purpose: agenda items with no papers; the EqIA listed twice under
    item 8; URL-encoded file names; item 9's report answering 404; a Cabinet meeting cancelled;
    a Scrutiny Committee meeting outside the window; and County Council's item 5 attaching the
    same appendix (the same bytes) under another attachment and URL.
    """
    appendix = "24-00115 - Appendix B - KCC ICS priorities measures"
    eqia = Linked("502", "24-00115 - EqIA", Doc(doc_path("s502", "24-00115 - EqIA.pdf"), papers["eqia"]))
    return FakeSite(
        committees={"144": "Cabinet", "145": "County Council", "146": "Scrutiny Committee"},
        meetings=[
            FakeMeeting("9001", "144", date(2025, 1, 30), documents=[
                (AGENDA, Doc(f"/documents/g9001/{quote(AGENDA)}.pdf", papers["agenda"]))], items=[
                Item("1", "Apologies"),
                Item("2", "Declarations of Interest"),
                Item("8", ITEM_8, [Linked("501", appendix, Doc(doc_path("s501", f"{appendix}.pdf"), papers["appendix"])),
                                   eqia, eqia]),
                Item("9", ITEM_9, [Linked("503", "24-00096 - Report", Doc(doc_path("s503", "24-00096 - Report.pdf"), None))]),
            ]),
            FakeMeeting("9002", "144", date(2025, 2, 20), status="Cancelled", items=[Item("1", "Apologies")]),
            FakeMeeting("9003", "144", date(2025, 3, 13), documents=[
                (PACK, Doc(f"/documents/g9003/{quote(PACK)}.pdf", papers["pack"]))], items=[
                Item("1", "Apologies"), Item("3", "Consideration of Decision 24/00093 (if required)")]),
            FakeMeeting("9101", "145", date(2025, 2, 13), documents=[
                ("Printed minutes 13th-Feb-2025 10.00 County Council",
                 Doc(f"/documents/g9101/{quote('Printed minutes 13th-Feb-2025 10.00 County Council')}.pdf",
                     papers["minutes"]))], items=[
                Item("5", "Integrated Care Strategy", [Linked("601", "Appendix B - KCC ICS priorities measures",
                                                             Doc(doc_path("s601", "Appendix B.pdf"), papers["appendix"]))])]),
            FakeMeeting("9201", "146", date(2024, 6, 5), items=[Item("1", "Apologies")]),
        ],
    )
