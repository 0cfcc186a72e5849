/* Board Papers Search — single-page client.
 * Plain ES2020, no dependencies. All server-provided strings are inserted
 * as text (textContent / text nodes); innerHTML is never used. */
(() => {
  'use strict';

  // API base: the folder above static/, so the page works at "/" or under a prefix.
  const SCRIPT_SRC = (document.currentScript && document.currentScript.src) || location.href;
  const API_BASE = new URL('..', SCRIPT_SRC);
  const apiUrl = (path) => new URL(path.replace(/^\//, ''), API_BASE).toString();

  const HISTORY_TURNS = 3;
  const PAGE_SIZE = 20;
  const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July',
    'August', 'September', 'October', 'November', 'December'];

  const $ = (id) => document.getElementById(id);

  /* ---------- small helpers ---------- */

  // el('p', {className: 'x', dataset: {n: 1}}, 'text', childNode, ...)
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v == null || v === false) continue;
        if (k === 'className') node.className = v;
        else if (k === 'dataset') Object.assign(node.dataset, v);
        else if (k === 'text') node.textContent = v;
        else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v === true ? '' : String(v));
      }
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const c of children.flat()) {
      if (c == null || c === false) continue;
      node.appendChild(typeof c === 'string' || typeof c === 'number'
        ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // "2018-03-08" -> "8 March 2018" (no Date parsing, so no timezone drift)
  function formatDate(iso) {
    if (!iso) return '';
    const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(iso));
    if (!m) return String(iso);
    const month = MONTHS[Number(m[2]) - 1];
    return month ? `${Number(m[3])} ${month} ${m[1]}` : String(iso);
  }

  function truncate(text, max) {
    const t = String(text || '').replace(/\s+/g, ' ').trim();
    return t.length > max ? t.slice(0, max).replace(/\s+\S*$/, '') + '…' : t;
  }

  function kindLabel(kind) {
    if (kind === 'decision') return 'Decision';
    if (kind === 'recommendation') return 'Recommendation';
    const k = String(kind || 'Record');
    return k.charAt(0).toUpperCase() + k.slice(1);
  }

  // "Title — Council, Body, meeting 8 March 2018, item 5, page 3"
  function describeCitation(c) {
    const parts = [c.council, c.body].filter(Boolean);
    if (c.meeting_date) parts.push(`meeting ${formatDate(c.meeting_date)}`);
    if (c.agenda_item) parts.push(`item ${c.agenda_item}`);
    if (c.page != null) parts.push(`page ${c.page}`);
    const title = c.title || c.document_id || 'Untitled document';
    return parts.length ? `${title} — ${parts.join(', ')}` : title;
  }

  function errorMessage(status, data) {
    const detail = data && data.detail;
    if (typeof detail === 'string' && detail.trim()) return detail;
    if (Array.isArray(detail) && detail.length) {
      return detail.map((d) => {
        if (typeof d === 'string') return d;
        const loc = Array.isArray(d.loc) ? d.loc.filter((x) => x !== 'body').join(' › ') : '';
        return loc ? `${d.msg || 'Invalid value'} (${loc})` : (d.msg || JSON.stringify(d));
      }).join('; ');
    }
    if (status === 404) return 'Not found.';
    if (status >= 500) return `The service had a problem (error ${status}). Please try again.`;
    return `The request was not accepted (error ${status}).`;
  }

  async function api(method, path, body) {
    let res;
    try {
      res = await fetch(apiUrl(path), {
        method,
        headers: body ? { 'Content-Type': 'application/json', Accept: 'application/json' } : { Accept: 'application/json' },
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch (e) {
      throw new Error('Could not reach the service. Check your connection and try again.');
    }
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) throw new Error(errorMessage(res.status, data));
    if (data == null) throw new Error('The service sent an unreadable response.');
    return data;
  }

  function query(params) {
    const sp = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== '' && v != null) sp.set(k, v);
    const s = sp.toString();
    return s ? `?${s}` : '';
  }

  /* ---------- tabs ---------- */

  const tabs = [$('tab-ask'), $('tab-decisions')];
  let decisionsLoaded = false;

  function selectTab(tab, focus) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute('aria-controls')).hidden = !on;
    }
    if (focus) tab.focus();
    const hash = tab.id === 'tab-decisions' ? '#decisions' : '#ask';
    if (location.hash !== hash && (location.hash || hash !== '#ask')) history.replaceState(null, '', hash);
    if (tab.id === 'tab-decisions' && !decisionsLoaded) {
      decisionsLoaded = true;
      searchDecisions();
    }
  }

  tabs.forEach((t, i) => {
    t.addEventListener('click', () => selectTab(t, false));
    t.addEventListener('keydown', (e) => {
      let next = null;
      if (e.key === 'ArrowRight') next = tabs[(i + 1) % tabs.length];
      else if (e.key === 'ArrowLeft') next = tabs[(i - 1 + tabs.length) % tabs.length];
      else if (e.key === 'Home') next = tabs[0];
      else if (e.key === 'End') next = tabs[tabs.length - 1];
      if (next) { e.preventDefault(); selectTab(next, true); }
    });
  });

  /* ---------- councils ---------- */

  async function loadCouncils() {
    try {
      const data = await api('GET', '/documents');
      const councils = [...new Set((data.documents || []).map((d) => d.council).filter(Boolean))]
        .sort((a, b) => a.localeCompare(b));
      for (const id of ['filter-council', 'decisions-council']) {
        const sel = $(id);
        for (const c of councils) sel.appendChild(el('option', { value: c }, c));
      }
    } catch (e) {
      // Filters still work without the list; leave "All councils" only.
    }
  }

  /* ---------- passage panel ---------- */

  const panel = $('passage-panel');
  const backdrop = $('panel-backdrop');
  const panelBody = $('panel-body');
  let panelOpener = null;
  let panelToken = 0;

  function metaRow(dl, label, value) {
    if (value == null || value === '') return;
    dl.appendChild(el('dt', null, label));
    dl.appendChild(el('dd', null, String(value)));
  }

  function openPanel(citation, opener) {
    const c = citation || {};
    const token = ++panelToken;
    panelOpener = opener || document.activeElement;

    $('panel-title').textContent = c.title || c.document_id || 'Source';
    const meta = $('panel-meta');
    clear(meta);
    metaRow(meta, 'Council', c.council);
    metaRow(meta, 'Board', c.body);
    metaRow(meta, 'Meeting', formatDate(c.meeting_date));
    metaRow(meta, 'Agenda item', c.agenda_item);
    if (Array.isArray(c.heading_path) && c.heading_path.length) metaRow(meta, 'Section', c.heading_path.join(' › '));
    metaRow(meta, 'Page', c.page);

    const link = $('panel-link');
    const id = encodeURIComponent(String(c.document_id || ''));
    link.href = apiUrl(`/documents/${id}/text${query({ start: c.char_start, end: c.char_end })}`);
    link.textContent = 'Open full document text';

    clear(panelBody);
    panelBody.appendChild(el('p', { className: 'muted' }, 'Loading the passage…'));

    backdrop.hidden = false;
    panel.hidden = false;
    document.body.classList.add('panel-open');
    for (const n of [$('site-header'), $('main'), $('site-footer')]) n.inert = true;
    panel.focus();

    if (!c.document_id || c.char_start == null || c.char_end == null) {
      clear(panelBody);
      panelBody.appendChild(el('p', { className: 'muted' }, 'No location was given for this source.'));
      if (c.quote || c.text) panelBody.appendChild(el('blockquote', null, c.quote || c.text));
      return;
    }
    const path = `/documents/${id}/text${query({ start: c.char_start, end: c.char_end, context: 600 })}`;
    api('GET', path).then((doc) => {
      if (token !== panelToken || panel.hidden) return;
      if (doc.title && !c.title) $('panel-title').textContent = doc.title;
      if (doc.total_chars != null) {
        link.href = apiUrl(`/documents/${id}/text${query({ start: 0, end: doc.total_chars })}`);
      }
      clear(panelBody);
      const before = doc.before || '';
      const after = doc.after || '';
      const start = doc.start != null ? doc.start : c.char_start;
      const end = doc.end != null ? doc.end : c.char_end;
      const mark = el('mark', null, doc.text || '');
      const text = el('div', { className: 'passage-text' },
        start - before.length > 0 ? '… ' : '', before, mark, after,
        doc.total_chars != null && end + after.length < doc.total_chars ? ' …' : '');
      panelBody.appendChild(text);
      // Scroll only the panel, keeping the mark roughly centred.
      const top = mark.offsetTop - panelBody.offsetTop - panelBody.clientHeight / 3;
      panelBody.scrollTop = Math.max(0, top);
    }).catch((err) => {
      if (token !== panelToken) return;
      clear(panelBody);
      panelBody.appendChild(el('p', { className: 'error', role: 'alert' }, `Could not load the passage: ${err.message}`));
      if (c.quote) panelBody.appendChild(el('blockquote', null, c.quote));
    });
  }

  function closePanel() {
    if (panel.hidden) return;
    panelToken++;
    panel.hidden = true;
    backdrop.hidden = true;
    document.body.classList.remove('panel-open');
    for (const n of [$('site-header'), $('main'), $('site-footer')]) n.inert = false;
    const target = panelOpener && document.contains(panelOpener) ? panelOpener : $('ask-input');
    panelOpener = null;
    if (target && target.focus) target.focus();
  }

  $('panel-close').addEventListener('click', closePanel);
  backdrop.addEventListener('click', closePanel);
  document.addEventListener('keydown', (e) => {
    if (panel.hidden) return;
    if (e.key === 'Escape') { e.preventDefault(); closePanel(); return; }
    if (e.key === 'Tab') { // keep focus inside the dialog
      const f = [...panel.querySelectorAll('button, a[href], [tabindex="0"]')].filter((n) => n.offsetParent !== null);
      if (!f.length) return;
      const first = f[0];
      const last = f[f.length - 1];
      if (e.shiftKey && (document.activeElement === first || document.activeElement === panel)) {
        e.preventDefault(); last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault(); first.focus();
      }
    }
  });

  /* ---------- Ask view ---------- */

  const conversation = $('conversation');
  const askForm = $('ask-form');
  const askInput = $('ask-input');
  const askSubmit = $('ask-submit');
  const askStatus = $('ask-status');
  let turns = []; // [{question, answer}]
  let asking = false;

  function askFilters() {
    const f = {};
    const council = $('filter-council').value;
    const from = $('filter-from').value;
    const to = $('filter-to').value;
    if (council) f.council = council;
    if (from) f.date_from = from;
    if (to) f.date_to = to;
    return f;
  }

  function citeButton(n, citation) {
    return el('button', {
      type: 'button',
      className: 'cite',
      dataset: { n: String(n) },
      'aria-label': `Source ${n}: ${citation.title || citation.document_id || ''}`.trim(),
      title: describeCitation(citation),
      onclick: (e) => openPanel(citation, e.currentTarget),
    }, `[${n}]`);
  }

  // Turn "text [1] more [2, 3]" into text nodes and .cite buttons.
  function renderAnswerText(text, byN) {
    const frag = document.createDocumentFragment();
    const re = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g;
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      const nums = m[1].split(/\s*[,;]\s*/).map(Number);
      if (!nums.every((n) => byN.has(n))) continue; // leave unknown markers as text
      if (m.index > last) frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      nums.forEach((n) => frag.appendChild(citeButton(n, byN.get(n))));
      last = re.lastIndex;
    }
    if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
    return frag;
  }

  function sourcesList(citations) {
    const list = el('ol', { className: 'sources' });
    for (const c of citations) {
      list.appendChild(el('li', null,
        el('button', {
          type: 'button',
          className: 'source-link',
          dataset: { n: String(c.n) },
          onclick: (e) => openPanel(c, e.currentTarget),
        }, el('span', { className: 'source-n' }, `[${c.n}]`), ' ', describeCitation(c))));
    }
    return list;
  }

  function passagesList(passages) {
    const list = el('ul', { className: 'passages' });
    for (const p of passages) {
      const c = Object.assign({}, p.citation || p);
      if (c.quote == null) c.quote = p.text;
      const when = [c.council, c.body, c.meeting_date ? `meeting ${formatDate(c.meeting_date)}` : '']
        .filter(Boolean).join(', ');
      list.appendChild(el('li', null,
        el('button', {
          type: 'button',
          className: 'source-link passage-link',
          onclick: (e) => openPanel(c, e.currentTarget),
        }, el('span', { className: 'passage-title' }, c.title || c.document_id || 'Untitled document')),
        when ? el('span', { className: 'passage-when' }, when) : null,
        el('span', { className: 'passage-snippet' }, truncate(p.text, 240))));
    }
    return list;
  }

  function renderAnswer(data) {
    const citations = Array.isArray(data.citations) ? data.citations : [];
    const byN = new Map(citations.map((c) => [Number(c.n), c]));
    const found = data.found !== false;
    const answerText = String(data.answer || (found ? '' : 'No answer was found in the papers.'));

    const article = el('article', { className: `answer bubble${found ? '' : ' not-found'}`, 'aria-label': 'Answer' });
    article.appendChild(el('p', { className: 'answer-text' }, renderAnswerText(answerText, byN)));

    if (citations.length) {
      article.appendChild(el('h3', { className: 'sources-title' }, 'Sources'));
      article.appendChild(sourcesList([...citations].sort((a, b) => a.n - b.n)));
    }
    const passages = Array.isArray(data.passages) ? data.passages : [];
    if (!found && passages.length) {
      article.appendChild(el('h3', { className: 'sources-title' }, 'Nearest passages'));
      article.appendChild(passagesList(passages));
    }
    return article;
  }

  function addBubble(node) {
    const empty = $('conversation-empty');
    if (empty) empty.remove();
    conversation.appendChild(node);
    // Keep the new bubble clear of the sticky question form.
    node.style.scrollMarginBottom = `${askForm.offsetHeight + 12}px`;
    const calm = window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
    node.scrollIntoView({ block: 'nearest', behavior: calm ? 'auto' : 'smooth' });
  }

  async function ask() {
    if (asking) return;
    const question = askInput.value.trim();
    if (!question) {
      askStatus.textContent = 'Please type a question first.';
      askInput.focus();
      return;
    }
    asking = true;
    askSubmit.disabled = true;
    askInput.setAttribute('aria-busy', 'true');
    addBubble(el('div', { className: 'question bubble' }, el('span', { className: 'visually-hidden' }, 'You asked: '), question));
    askInput.value = '';
    askStatus.textContent = 'Searching the papers…';
    askStatus.classList.add('busy');

    const body = {
      question,
      history: turns.slice(-HISTORY_TURNS),
      filters: askFilters(),
    };
    try {
      const data = await api('POST', '/ask', body);
      addBubble(renderAnswer(data));
      turns.push({ question, answer: String(data.answer || '') });
      askStatus.textContent = data.found === false ? 'No direct answer found. Nearest passages are listed.' : 'Answer ready.';
    } catch (err) {
      addBubble(el('div', { className: 'answer bubble error', role: 'alert' }, `Sorry, that didn't work: ${err.message}`));
      askStatus.textContent = '';
      if (!askInput.value) askInput.value = question; // let the user retry
    } finally {
      asking = false;
      askSubmit.disabled = false;
      askInput.removeAttribute('aria-busy');
      askStatus.classList.remove('busy');
      askInput.focus();
    }
  }

  askForm.addEventListener('submit', (e) => { e.preventDefault(); ask(); });
  askInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      ask();
    }
  });
  $('ask-reset').addEventListener('click', () => {
    turns = [];
    clear(conversation);
    conversation.appendChild(el('p', { className: 'empty-hint', id: 'conversation-empty' }, 'New conversation started. Ask a question below.'));
    askStatus.textContent = 'Conversation cleared.';
    askInput.focus();
  });

  /* ---------- Decisions view ---------- */

  const decForm = $('decisions-form');
  const decResults = $('decisions-results');
  const decSummary = $('decisions-summary');
  const decMore = $('decisions-more');
  const decTimelineBtn = $('decisions-timeline');
  const dec = { offset: 0, total: 0, shown: 0, timeline: false, token: 0, params: {} };

  function decisionParams() {
    return {
      q: $('decisions-q').value.trim(),
      kind: $('decisions-kind').value,
      council: $('decisions-council').value,
      date_from: $('decisions-from').value,
      date_to: $('decisions-to').value,
    };
  }

  function decisionCard(d) {
    const kind = String(d.kind || '').toLowerCase();
    const where = [d.council, d.body].filter(Boolean).join(' · ');
    const c = d.citation || null;
    return el('article', { className: `decision-card kind-${kind || 'other'}` },
      el('div', { className: 'card-top' },
        el('span', { className: `badge badge-${kind || 'other'}` }, kindLabel(kind)),
        d.meeting_date ? el('time', { className: 'card-date', datetime: d.meeting_date }, formatDate(d.meeting_date)) : null),
      where ? el('p', { className: 'card-where' }, where) : null,
      d.item ? el('h3', { className: 'card-item' }, d.item) : null,
      el('div', { className: 'decision-text' }, String(d.text || '')),
      c ? el('button', {
        type: 'button',
        className: 'btn btn-link show-source',
        'aria-label': `Show source for ${kindLabel(kind).toLowerCase()}${d.meeting_date ? ` of ${formatDate(d.meeting_date)}` : ''}`,
        onclick: (e) => openPanel(c, e.currentTarget),
      }, 'Show source') : null);
  }

  function renderTimeline(decisions) {
    const wrap = el('div', { className: 'timeline' });
    let year = null;
    let list = null;
    for (const d of decisions) {
      const y = d.meeting_date ? String(d.meeting_date).slice(0, 4) : 'Undated';
      if (y !== year) {
        year = y;
        const section = el('section', { className: 'timeline-year', 'aria-label': y });
        section.appendChild(el('h2', { className: 'year-heading' }, y));
        list = el('ol', { className: 'timeline-list' });
        section.appendChild(list);
        wrap.appendChild(section);
      }
      list.appendChild(el('li', { className: 'timeline-item' }, decisionCard(d)));
    }
    return wrap;
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? '' : 's'}`;
  }

  async function searchDecisions(more) {
    const token = ++dec.token;
    if (!more) {
      dec.params = decisionParams();
      dec.offset = 0;
      dec.shown = 0;
      clear(decResults);
      decMore.hidden = true;
    }
    decResults.setAttribute('aria-busy', 'true');
    decSummary.textContent = dec.timeline ? 'Building the timeline…' : 'Loading decisions…';
    decMore.disabled = true;
    try {
      if (dec.timeline) {
        const data = await api('GET', `/decisions/timeline${query(dec.params)}`);
        if (token !== dec.token) return;
        const list = data.decisions || [];
        clear(decResults);
        if (list.length) decResults.appendChild(renderTimeline(list));
        decSummary.textContent = list.length
          ? `Timeline of ${plural(list.length, 'record')}, oldest first.`
          : 'No decisions or recommendations match your search.';
        decMore.hidden = true;
        return;
      }
      const data = await api('GET', `/decisions${query({ ...dec.params, limit: PAGE_SIZE, offset: dec.offset })}`);
      if (token !== dec.token) return;
      const list = data.decisions || [];
      const firstNew = list.length ? decisionCard(list[0]) : null;
      list.forEach((d, i) => decResults.appendChild(i === 0 ? firstNew : decisionCard(d)));
      dec.offset += list.length;
      dec.shown += list.length;
      dec.total = Number.isFinite(data.total) ? data.total : dec.shown;
      decSummary.textContent = dec.total
        ? `Showing ${dec.shown} of ${plural(dec.total, 'result')}.`
        : 'No decisions or recommendations match your search.';
      decMore.hidden = !(list.length && dec.shown < dec.total);
      if (more && firstNew) { // move focus to the first new card's button for keyboard users
        const b = firstNew.querySelector('button');
        if (b) b.focus();
      }
    } catch (err) {
      if (token !== dec.token) return;
      decSummary.textContent = '';
      decResults.appendChild(el('p', { className: 'error', role: 'alert' }, `Could not load decisions: ${err.message}`));
    } finally {
      if (token === dec.token) {
        decResults.removeAttribute('aria-busy');
        decMore.disabled = false;
      }
    }
  }

  decForm.addEventListener('submit', (e) => { e.preventDefault(); searchDecisions(false); });
  decMore.addEventListener('click', () => searchDecisions(true));
  decTimelineBtn.addEventListener('click', () => {
    dec.timeline = !dec.timeline;
    decTimelineBtn.setAttribute('aria-pressed', String(dec.timeline));
    decResults.classList.toggle('is-timeline', dec.timeline);
    searchDecisions(false);
  });

  /* ---------- start ---------- */

  loadCouncils();
  selectTab(location.hash === '#decisions' ? tabs[1] : tabs[0], false);
})();
