"""Read a council's Modern.Gov site: its committees, their meetings and every meeting's papers.

Most UK councils publish committee papers through Modern.Gov, whose public web service
(`<site>/mgWebService.asmx/<operation>`) answers in plain XML:

    GetCommittees                              <committees><committee><committeeid>, <committeetitle>
    GetMeetings?lCommitteeId&sFromDate&sToDate <getmeetings><committee>...<meeting><meetingid>,
                                               <meetingdate> (dd/mm/yyyy), <meetingstatus>
    GetMeeting?lMeetingId                      <meeting> ... <agendaitems><agendaitem><agendaitemtitle>,
                                               <linkeddoc><attachmentid>, <title>[, <url>]
    GetAttachment?lAttachmentId                <attachment> ... <url>, <publicationdate>

The meeting's own papers (agenda front sheet, reports pack, printed minutes) are not agenda
items: they are linked from the meeting's page, `ieListDocuments.aspx?CId=&MId=`, as
`documents/g<meeting id>/<file name>`. Where each shape was learnt, and what is assumed, is set
out in tests/fake_moderngov.py, which serves them to the tests.

Entry point: ModernGovSite(url, fetcher): committees(), meetings(...), papers(meeting, ...).
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlsplit

from indexer.fetch import Fetcher, FetchError, Response

SERVICE = "mgWebService.asmx"


class SiteError(Exception):
    """The site cannot be read as a Modern.Gov site: not one, down, or answering nonsense."""


@dataclass(frozen=True)
class Committee:
    id: str
    title: str


@dataclass(frozen=True)
class Meeting:
    id: str
    committee: Committee
    date: date
    status: str

    @property
    def cancelled(self) -> bool:
        # Assumed: Modern.Gov marks a cancelled meeting in its status ("Cancelled").
        return "cancel" in self.status.lower()


@dataclass(frozen=True)
class Paper:
    """One published document of a meeting, with what the site says about it."""

    url: str
    title: str
    file_name: str  # the last part of the URL, decoded ("24-00115 - EqIA.pdf"); may lack a suffix
    meeting: Meeting
    document_type: str  # agenda | agenda_pack | minutes | report | appendix | document
    agenda_item: str | None = None  # "8"
    agenda_title: str | None = None
    attachment_id: str | None = None
    published: str | None = None  # the attachment's publication date as the site writes it


@dataclass(frozen=True)
class MeetingPapers:
    papers: tuple[Paper, ...]
    items_without_papers: int  # agenda items listing no document ("Apologies")
    listed_twice: int  # papers listed more than once, fetched once
    problems: tuple[str, ...]  # what could not be read, said to the user


class ModernGovSite:
    def __init__(self, url: str, fetcher: Fetcher):
        if not re.match(r"(?i)^https?://", url):
            url = f"https://{url}"
        self.url = url.rstrip("/")
        self.fetcher = fetcher

    def committees(self) -> list[Committee]:
        """Every committee the site lists. The first request of a sync, so it is the one that
        says clearly when the site is down or is not a Modern.Gov site."""
        not_moderngov = f"{self.url} does not look like a Modern.Gov site"
        try:
            root = self._service("GetCommittees")
        except FetchError as e:
            if e.status is None:
                raise SiteError(f"cannot reach {self.url}: {e.reason}") from e
            raise SiteError(f"{not_moderngov}: {self._op('GetCommittees')} answered {e.reason}") from e
        except SiteError as e:
            raise SiteError(f"{not_moderngov}: {e}") from e
        if root.tag != "committees":
            raise SiteError(f"{not_moderngov}: GetCommittees answered <{root.tag}>, not <committees>")
        out = []
        for c in root.iter("committee"):
            cid, title = _text(c, "committeeid"), _text(c, "committeetitle")
            if cid and title:
                out.append(Committee(cid, title))
        return out

    def meetings(self, committee: Committee, date_from: date, date_to: date) -> list[Meeting]:
        """The committee's meetings between two dates, in date order."""
        root = self._service("GetMeetings", lCommitteeId=committee.id, sFromDate=_dmy(date_from), sToDate=_dmy(date_to))
        out = []
        for m in root.iter("meeting"):
            mid, when = _text(m, "meetingid"), _date(_text(m, "meetingdate"))
            # The window is asked for; checked again in case a site ignores it.
            if mid and when and date_from <= when <= date_to:
                out.append(Meeting(mid, committee, when, _text(m, "meetingstatus") or ""))
        return sorted(out, key=lambda m: (m.date, m.id))

    def papers(self, meeting: Meeting, known_attachments: dict[str, str] | None = None) -> MeetingPapers:
        """The meeting's papers: its own (front sheet, pack, minutes), then each agenda item's.

        Args:
            meeting: from meetings().
            known_attachments: attachment id -> URL already resolved in an earlier run, so
                GetAttachment is not asked again for them.
        """
        known = known_attachments or {}
        problems: list[str] = []
        papers: dict[str, Paper] = {}
        twice = 0

        def add(paper: Paper) -> None:
            nonlocal twice
            if paper.url in papers:
                twice += 1  # listed under two items, or on the page and under an item: fetched once
            else:
                papers[paper.url] = paper

        for paper in self._meeting_documents(meeting, problems):
            add(paper)
        root = self._service("GetMeeting", lMeetingId=meeting.id)
        empty = 0
        for position, item in enumerate(root.iter("agendaitem"), 1):
            number, title = _item_number(item, position), _clean(_text(item, "agendaitemtitle") or "")
            docs = list(item.iter("linkeddoc"))
            if not docs:
                empty += 1
            for doc in docs:
                paper = self._linked_paper(doc, meeting, number, title, known, problems)
                if paper is not None:
                    add(paper)
        return MeetingPapers(tuple(papers.values()), empty, twice, tuple(problems))

    # ------------------------------------------------------------ requests

    def _op(self, operation: str) -> str:
        return f"{self.url}/{SERVICE}/{operation}"

    def _service(self, operation: str, **params) -> ET.Element:
        return _xml(self.fetcher.get(self._op(operation), params=params or None))

    def _linked_paper(self, doc: ET.Element, meeting: Meeting, number: str, item_title: str,
                      known: dict[str, str], problems: list[str]) -> Paper | None:
        aid, url, published = _text(doc, "attachmentid"), _text(doc, "url"), _text(doc, "publicationdate")
        title = _clean(_text(doc, "title") or "")
        if not url and aid and aid in known:
            url = known[aid]
        elif not url and aid:
            # pyPreservica.Gov asks GetAttachment for each linked document's URL.
            try:
                att = self._service("GetAttachment", lAttachmentId=aid)
            except FetchError as e:
                problems.append(f"attachment {aid} ({title or 'untitled'}) of item {number}: {e.reason}")
                return None
            url, published = _text(att, "url"), _text(att, "publicationdate") or published
            title = title or _clean(_text(att, "title") or "")
        if not url:
            problems.append(f"attachment {aid or '?'} ({title or 'untitled'}) of item {number}: no URL given")
            return None
        url = urljoin(self.url + "/", url.strip())
        name = _file_name(url)
        title = title or name
        return Paper(url, title, name, meeting, _item_paper_type(title), number, item_title or None, aid, published)

    def _meeting_documents(self, meeting: Meeting, problems: list[str]) -> list[Paper]:
        page = f"{self.url}/ieListDocuments.aspx"
        try:
            r = self.fetcher.get(page, params={"CId": meeting.committee.id, "MId": meeting.id})
        except FetchError as e:
            if e.status is None:
                raise
            problems.append(f"the meeting's page {page}?CId={meeting.committee.id}&MId={meeting.id}: {e.reason}")
            return []
        links = _ActionLinks()
        links.feed(r.content.decode("utf-8", errors="replace"))
        out = []
        for href, title in links.links:
            if f"documents/g{meeting.id}/" not in href.lower():
                continue  # the page also links other meetings, councillors, the item's decisions
            url = urljoin(r.url, href)
            name = _file_name(url)
            title = title or re.sub(r"(?i)\.pdf$", "", name)
            out.append(Paper(url, title, name, meeting, _meeting_paper_type(title)))
        return out


# ---------------------------------------------------------------- reading the answers


def _xml(r: Response) -> ET.Element:
    try:
        root = ET.fromstring(r.content)
    except ET.ParseError:
        # Minutes and decisions come as HTML inside the XML ("<div>...&nbsp;...<br></div>"),
        # which is not well-formed XML; pyPreservica.Gov wraps it in CDATA before parsing.
        text = r.content.decode("utf-8", errors="replace")
        try:
            root = ET.fromstring(_html_as_cdata(text))
        except ET.ParseError as e:
            raise SiteError(f"{r.url} did not answer XML ({e})") from e
    for el in root.iter():  # answers seen so far carry no namespace; a site that adds one still reads
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def _html_as_cdata(text: str) -> str:
    """Each outermost <div>...</div> run wrapped in CDATA (nested divs counted)."""
    out, depth, start, i = [], 0, None, 0
    for m in re.finditer(r"(?i)<div\b|</div\s*>", text):
        if m.group(0)[1] != "/":
            if depth == 0:
                out.append(text[i:m.start()])
                start = m.start()
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                out.append("<![CDATA[" + text[start:m.end()].replace("]]>", "]]]]><![CDATA[>") + "]]>")
                i = m.end()
    out.append(text[i:] if depth == 0 else text[start:])
    return "".join(out)


def _text(el: ET.Element, name: str) -> str | None:
    found = el.find(f".//{name}")
    if found is None:
        return None
    value = "".join(found.itertext()).strip()
    return value or None


def _clean(text: str) -> str:
    """Item and document titles may carry HTML marks and entities."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def _dmy(d: date) -> str:
    return d.strftime("%d/%m/%Y")  # the web service's own date format


def _date(text: str | None) -> date | None:
    if not text:
        return None
    head = text.strip().split()[0].split("T")[0]
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(head, fmt).date()
        except ValueError:
            continue
    return None


def _item_number(item: ET.Element, position: int) -> str:
    # <agendaitemnumber> is assumed (not seen in the sources); else a number the title starts
    # with ("8. Budget"); else the item's place on the agenda.
    given = _text(item, "agendaitemnumber")
    if given:
        return given.rstrip(".")
    m = re.match(r"\s*(\d{1,3}[a-z]?)[.)]\s", _text(item, "agendaitemtitle") or "")
    return m.group(1) if m else str(position)


def _file_name(url: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return " ".join(name.split())


def _meeting_paper_type(title: str) -> str:
    t = title.lower()
    if "pack" in t:
        return "agenda_pack"  # "Public reports pack", "Agenda reports pack", "Supplementary pack"
    if "minutes" in t or "decisions" in t:
        return "minutes"  # "Printed minutes", "Printed decisions"
    if "agenda" in t:
        return "agenda"  # "Agenda frontsheet"
    return "document"


def _item_paper_type(title: str) -> str:
    t = title.lower()
    if re.search(r"\b(?:appendix|annex|annexe)\b", t):
        return "appendix"
    if "minutes" in t:
        return "minutes"
    if re.search(r"\b(?:eqia|impact assessment|record of decision|decision notice)\b", t):
        return "document"
    return "report"


class _ActionLinks(HTMLParser):
    """Links (href, title) inside the meeting page's <ul class="mgActionList">."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self._depth = 0  # of <ul> inside the action list, 0 outside it
        self._open: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "ul" and (self._depth or "mgactionlist" in (a.get("class") or "").lower()):
            self._depth += 1
        elif tag == "a" and self._depth and a.get("href"):
            title = re.sub(r"(?i)^link to\s+(?:document\s+)?", "", (a.get("title") or "").strip())
            self.links.append((a["href"], title))
            self._open = [] if not title else None

    def handle_data(self, data):
        if self._open is not None:
            self._open.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._open is not None:
            # No title attribute: the link's text, less the "PDF 156 KB" Modern.Gov appends.
            text = re.sub(r"(?i)\s*pdf\s*[\d.]+\s*[kmg]b\s*$", "", " ".join("".join(self._open).split()))
            href, _ = self.links[-1]
            self.links[-1] = (href, text)
            self._open = None
        elif tag == "ul" and self._depth:
            self._depth -= 1
