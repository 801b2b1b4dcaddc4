// The Cowork page: framework-free, every call a gRPC-Web call to the same
// services coworkctl uses. Text from the services is only ever set as
// textContent (never parsed as HTML), and nothing here stores a secret:
// the sign-in cookie is HttpOnly.

import { Client, CallError, codeName } from './grpc.js';

const SYS = '/cowork.system.v1.System/';
const CHAT = '/cowork.chat.v1.Chat/';
const AGENTS = '/cowork.agents.v1.Agents/';
const CAPTURE = '/cowork.capture.v1.Capture/';
const MEMORY = '/cowork.memory.v1.Memory/';
const MODELS = '/cowork.models.v1.Models/';
const MCP = '/cowork.mcp.v1.Mcp/';
const FLOWS = '/cowork.automations.v1.Automations/';
const BROWSER = '/cowork.browser.v1.Browser/';

const $ = (id) => document.getElementById(id);

// An element with attributes (`on*` are listeners) and children (strings
// become text nodes).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null && c !== false) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

const stateName = (s) => String(s).replace('WORKER_STATE_', '').toLowerCase();
const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : '');
const mib = (b) => (b >= 1073741824 ? `${(b / 1073741824).toFixed(1)} GiB` : `${(b / 1048576).toFixed(1)} MiB`);
const usd = (x) => (x > 0 ? `$${x.toFixed(x < 0.01 ? 4 : 2)}` : '$0');

let client;
const workers = new Map();

// ---- sign-in ------------------------------------------------------------

// The page's key: in this origin's storage (other ports cannot read it),
// sent with every call beside the HttpOnly cookie.
const KEY = 'cowork-ui-key';

async function signIn() {
  const m = location.hash.match(/^#code=([A-Za-z0-9-]+)/);
  if (!m) return;
  // The code is spent either way: take it out of the address bar first.
  history.replaceState(null, '', '/#status');
  const res = await fetch('/session', { method: 'POST', body: m[1], credentials: 'same-origin' });
  if (res.ok) {
    localStorage.setItem(KEY, await res.text());
  } else {
    // An old link: this browser may still be signed in (a call will say).
    $('banners').append(el('div', { class: 'banner degraded' }, el('span', {}, await res.text())));
  }
}

function showSignIn(why) {
  $('signin').hidden = false;
  $('signin-why').textContent = why || '';
  for (const s of document.querySelectorAll('.screen')) s.hidden = true;
  $('conn').textContent = 'not signed in';
  $('conn').className = 'conn';
}

// A call failed: ask to sign in when that is why, else say what happened.
function failed(e, where) {
  if (e instanceof CallError && e.httpStatus === 401) {
    showSignIn(e.message);
    return;
  }
  const msg = e instanceof CallError ? `${codeName(e.code)}: ${e.message}` : String(e.message || e);
  if (where) where.replaceChildren(el('p', { class: 'error' }, msg));
  else console.error(msg);
}

// ---- status: WatchHealth, banners, Retry -----------------------------------

async function refreshStatus() {
  const s = await client.call(`${SYS}Status`, {});
  const body = $('workers').tBodies[0];
  body.replaceChildren(...s.workers.map((w) => {
    workers.set(w.name, w);
    const st = stateName(w.state);
    const why = [w.reason, ...(w.last_log_lines || []).slice(-3)].filter(Boolean).join('\n');
    return el('tr', { 'data-worker': w.name },
      el('td', {}, w.name),
      el('td', {}, el('span', { class: `state ${st}` }, st)),
      el('td', {}, w.pid || ''),
      el('td', {}, `${w.restarts}`),
      el('td', {}, why ? el('pre', {}, why) : ''),
      el('td', {}, el('button', { class: 'secondary', onclick: () => retry(w.name) }, 'Retry')));
  }));
  $('coworkd').textContent = `coworkd pid ${s.coworkd_pid} · home ${s.home} · ${Math.round(s.coworkd_rss_bytes / 1048576)} MB`;
  renderBanners();
}

// The seed's startup-failure policy: a banner per worker that is not
// running, with what still works, and Retry.
function renderBanners() {
  const out = [];
  for (const w of workers.values()) {
    const st = stateName(w.state);
    if (st === 'running' || st === 'stopped' || w.name === 'browser') continue;
    const failed = st === 'failed';
    let text;
    if (w.name === 'agents') {
      text = failed ? 'Agent services couldn\u2019t start. Check Status for details.'
        : 'Agent features unavailable \u2014 reconnecting\u2026';
    } else {
      text = failed ? 'Capture couldn\u2019t start: chat works without fresh context.'
        : 'Capture unavailable \u2014 reconnecting\u2026 (chat works without fresh context)';
    }
    out.push(el('div', { class: `banner ${failed ? 'failed' : 'degraded'}`, 'data-banner': w.name },
      el('span', {}, text, w.reason ? el('span', { class: 'muted' }, ` (${w.reason})`) : ''),
      el('button', { onclick: () => retry(w.name) }, 'Retry')));
  }
  $('banners').replaceChildren(...out);
  const agents = workers.get('agents');
  const agentsUp = !agents || ['running'].includes(stateName(agents.state));
  $('chat-send').disabled = !agentsUp;
}

async function retry(worker) {
  try {
    await client.call(`${SYS}Retry`, { worker });
  } catch (e) {
    failed(e, $('banners'));
  }
}

// Pushed, never polled: every state change refreshes the table.
async function watchHealth() {
  let wait = 500;
  for (;;) {
    try {
      const stream = client.stream(`${SYS}WatchHealth`, { include_current: true });
      $('conn').textContent = 'live';
      $('conn').className = 'conn live';
      wait = 500;
      for await (const _ of stream) await refreshStatus();
    } catch (e) {
      if (e instanceof CallError && e.httpStatus === 401) return failed(e);
    }
    $('conn').textContent = 'reconnecting…';
    $('conn').className = 'conn';
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 5000);
  }
}

// ---- chat -----------------------------------------------------------------

let threadId = '';
let sending = false;

async function send(text, retryOf = '') {
  if (sending) return;
  sending = true;
  $('chat-send').disabled = true;
  if (text) $('messages').append(el('div', { class: 'msg user' }, el('div', { class: 'body' }, text)));
  const route = el('div', { class: 'route' }, 'routing…');
  const body = el('div', { class: 'body' });
  const cites = el('ol', { class: 'citations' });
  const meta = el('div', { class: 'meta' });
  const box = el('div', { class: 'msg assistant' }, route, body, cites, meta);
  $('messages').append(box);
  let decision;
  let trace = '';
  try {
    const stream = client.stream(`${CHAT}SendMessage`, {
      thread_id: threadId,
      text,
      preference: $('chat-pref').value,
      grounded: $('chat-grounded').checked,
      retry_of_message_id: retryOf,
    }, { onHeaders: (h) => { trace = h.get('cowork-trace-id') || ''; } });
    for await (const c of stream) {
      if (c.route) {
        decision = c.route;
        threadId = c.route.thread_id || threadId;
        route.replaceChildren(
          el('b', {}, c.route.model), ` \u00b7 ${c.route.reason}`,
          c.route.cost_estimate_usd > 0 ? ` \u00b7 est. ${usd(c.route.cost_estimate_usd)}` : ' \u00b7 no charge',
          c.route.notice ? el('div', { class: 'notice' }, c.route.notice) : '');
        box.dataset.model = c.route.model;
      } else if (c.delta) {
        body.append(c.delta.text);
      } else if (c.citations) {
        cites.replaceChildren(...c.citations.citations.map(citation));
      } else if (c.usage) {
        meta.append(el('span', {}, `${c.usage.prompt_tokens} + ${c.usage.completion_tokens} tokens`));
      } else if (c.finish) {
        box.dataset.finish = c.finish.reason;
        if (c.finish.reason === 'length') meta.append(el('span', { class: 'notice' }, 'cut off at the answer length limit'));
      } else if (c.error) {
        body.append(el('div', { class: 'error' }, c.error.message));
      }
    }
    if (!body.textContent.trim()) meta.append(el('span', { class: 'notice' }, 'the model ended its answer without a word'));
    if (trace) meta.append(el('span', { title: `coworkctl trace ${trace}` }, `trace ${trace.slice(0, 8)}…`));
    if (decision && decision.message_id) {
      meta.append(el('button', {
        class: 'secondary',
        onclick: (ev) => { ev.target.disabled = true; send('', decision.message_id); },
      }, 'Retry with a smarter model'));
    }
  } catch (e) {
    failed(e, route);
  } finally {
    sending = false;
    renderBanners();
  }
}

// A citation: what it came from and when; it opens to its snippet, and a
// web page opens in a new tab.
function citation(c) {
  const src = c.source_id || '';
  const link = /^https?:\/\//.test(src)
    ? el('a', { href: src, target: '_blank', rel: 'noopener noreferrer' }, src) : src;
  return el('li', {}, el('details', {},
    el('summary', {}, `${c.source_type} `, link, c.time_unix_ms ? ` \u00b7 ${fmtTime(c.time_unix_ms)}` : ''),
    el('pre', {}, c.snippet || '(no snippet)')));
}

// ---- approvals --------------------------------------------------------------

async function refreshApprovals() {
  const r = await client.call(`${AGENTS}ListApprovals`, {});
  const n = r.pending.length;
  $('approvals-count').hidden = n === 0;
  $('approvals-count').textContent = `${n}`;
  const list = $('approval-list');
  if (n === 0) {
    list.replaceChildren(el('p', { class: 'muted' }, 'Nothing is waiting.'));
    return;
  }
  list.replaceChildren(...r.pending.map((p) => {
    let args = p.arguments_json;
    try { args = JSON.stringify(JSON.parse(p.arguments_json), null, 2); } catch (_) { /* as sent */ }
    const decide = (verb) => async (ev) => {
      ev.target.closest('.card').querySelectorAll('button').forEach((b) => { b.disabled = true; });
      try {
        await client.call(`${AGENTS}${verb}`, { operation_id: p.operation_id, call_id: p.call_id });
      } catch (e) {
        failed(e, ev.target.closest('.card'));
      }
      refreshApprovals().catch(failed);
    };
    return el('div', { class: 'card approval', 'data-call': p.call_id },
      el('h2', {}, `${p.server} \u203a ${p.tool}`),
      el('div', { class: 'muted' }, `operation ${p.operation_id} \u00b7 ${p.reason}`),
      el('pre', { class: 'arguments' }, args),
      el('div', { class: 'meta' },
        el('button', { onclick: decide('Approve') }, 'Approve'),
        el('button', { class: 'danger', onclick: decide('Reject') }, 'Reject')));
  }));
}

// ---- context card and memory ------------------------------------------------

async function showContext(query = '') {
  const card = $('context-card');
  try {
    const c = await client.call(`${MEMORY}GetContext`, { query, grounded: !!query });
    const section = (title, ...body) => el('div', { class: 'card' }, el('h2', {}, title), ...body);
    card.replaceChildren(
      section('Active window', c.active_window || el('span', { class: 'muted' }, 'unknown')),
      section('Recent activity', el('pre', {}, c.recent_activity || '(nothing recent)')),
      section('Working memory', c.working_memory.length
        ? el('ul', {}, c.working_memory.map((w) => el('li', {}, `${w.key}: ${w.value}`)))
        : el('span', { class: 'muted' }, 'empty')),
      section('Pins', c.pins.length
        ? el('ul', {}, c.pins.map((p) => el('li', {}, `${p.source_type} \u00b7 ${p.snippet}`)))
        : el('span', { class: 'muted' }, 'none')),
      query ? section(`For \u201c${query}\u201d`,
        c.refusal ? el('p', { class: 'notice' }, c.refusal_reason) : '',
        el('div', { class: 'muted' }, `${c.context_tokens} of ${c.budget_tokens} tokens`),
        el('ol', { class: 'citations' }, c.citations.map(citation))) : '');
  } catch (e) {
    failed(e, card);
  }
}

async function searchMemory(query) {
  try {
    const r = await client.call(`${MEMORY}Search`, { query, k: 10 });
    $('memory-note').textContent = `${r.hits.length} hits (${r.mode}) in ${(r.took_us / 1000).toFixed(1)} ms${r.note ? ` \u00b7 ${r.note}` : ''}`;
    $('memory-hits').replaceChildren(...r.hits.map((h) => el('li', {},
      el('div', {}, el('b', {}, `${h.source_type} ${h.app || h.stream || ''}`), h.time_ms ? ` \u00b7 ${fmtTime(h.time_ms)}` : '',
        el('span', { class: 'muted' }, ` \u00b7 score ${h.score.toFixed(3)}`)),
      el('div', {}, h.snippet))));
  } catch (e) {
    failed(e, $('memory-hits'));
  }
}

// ---- capture streams ----------------------------------------------------------

async function refreshCapture() {
  const s = await client.call(`${CAPTURE}GetStatus`, {});
  $('streams').tBodies[0].replaceChildren(...s.streams.map((st) => el('tr', { 'data-stream': st.name },
    el('td', {}, st.name),
    el('td', {}, el('input', {
      type: 'checkbox',
      class: 'switch',
      'aria-label': `record ${st.name}`,
      checked: st.enabled,
      onchange: async (ev) => {
        ev.target.disabled = true;
        try {
          await client.call(`${CAPTURE}SetStreamEnabled`, { stream: st.name, enabled: ev.target.checked });
        } catch (e) {
          failed(e, $('capture-source'));
        }
        refreshCapture().catch(failed);
      },
    })),
    el('td', {}, st.source),
    el('td', {}, `${st.events_last_minute}`),
    el('td', {}, `${st.events_total}`))));
  $('capture-source').textContent = `source ${s.source} (${s.source_state}${s.source_detail ? `: ${s.source_detail}` : ''}) \u00b7 ${s.rows_written} rows written`;
}

// ---- models: downloads with progress, fit verdicts --------------------------------

// A download's card: a bar per file, moved by its progress stream.
function downloadCard(id) {
  let card = document.querySelector(`.download[data-id="${CSS.escape(id)}"]`);
  if (!card) {
    card = el('div', { class: 'download', 'data-id': id });
    $('downloads').prepend(card);
  }
  return card;
}

function showProgress(p) {
  const card = downloadCard(p.id);
  const pct = p.total ? Math.floor((100 * p.downloaded) / p.total) : 0;
  card.dataset.state = p.state;
  card.replaceChildren(
    el('div', {}, el('b', {}, p.id), ` \u00b7 ${p.state}`, p.total ? ` \u00b7 ${mib(p.downloaded)} of ${mib(p.total)} (${pct}%)` : ''),
    el('progress', { max: p.total || 1, value: p.downloaded }),
    p.error ? el('div', { class: 'error' }, p.error) : '',
    ...p.files.map((f) => el('div', { class: 'muted' }, `${f.name}: ${f.state}${f.resumed_from ? `, resumed at ${mib(f.resumed_from)}` : ''}${f.error ? ` \u2014 ${f.error}` : ''}`)),
    ['downloading', 'queued', 'verifying'].includes(p.state)
      ? el('button', { class: 'secondary', onclick: () => client.call(`${MODELS}Cancel`, { id: p.id }).catch((e) => failed(e, card)) }, 'Cancel') : '');
}

// Start a download and let it run on in agents-agent: the page follows
// it by asking `List` (a stream per download would hold one of the six
// connections a browser opens per host).
async function pull(request) {
  try {
    for await (const p of client.stream(`${MODELS}Pull`, request)) {
      showProgress(p);
      break;
    }
  } catch (e) {
    failed(e, $('downloads'));
  }
  refreshModels().catch(failed);
}

let downloadsActive = false;

async function refreshModels() {
  const [sys, list] = await Promise.all([client.call(`${MODELS}GetSystem`, {}), client.call(`${MODELS}List`, {})]);
  $('machine').textContent = `${sys.cpu_count} CPUs \u00b7 ${mib(sys.total_memory_bytes)} RAM (${mib(sys.available_memory_bytes)} free)${sys.gpus.length ? ` \u00b7 ${sys.gpus.map((g) => `${g.name} ${mib(g.vram_total_bytes)}`).join(', ')}` : ' \u00b7 no GPU'}`;
  for (const d of list.downloads) {
    const total = d.files.reduce((a, f) => a + f.total, 0);
    const done = d.files.reduce((a, f) => a + f.downloaded, 0);
    showProgress({ id: d.id, state: d.state, downloaded: done, total, error: d.error, files: d.files });
  }
  downloadsActive = list.downloads.some((d) => ['downloading', 'queued', 'verifying'].includes(d.state));
  $('model-files').tBodies[0].replaceChildren(...list.files.map((f) => {
    const verdict = el('td', { class: 'verdict' }, el('button', {
      class: 'secondary',
      onclick: async () => {
        verdict.replaceChildren('checking\u2026');
        try {
          const v = await client.call(`${MODELS}Fit`, { source: f.path });
          verdict.replaceChildren(el('span', { class: `fit ${v.level.toLowerCase()}` }, v.level), ' ', el('span', { class: 'muted' }, v.explanation.replace(`${v.level}: `, '')));
        } catch (e) {
          failed(e, verdict);
        }
      },
    }, 'Check fit'));
    return el('tr', { 'data-file': f.name }, el('td', {}, f.name), el('td', {}, mib(f.size)), verdict);
  }));
}

// ---- MCP servers: catalog, a form from each entry's JSON Schema ---------------------

async function refreshMcp() {
  const [servers, catalog] = await Promise.all([client.call(`${MCP}ListServers`, {}), client.call(`${MCP}ListCatalog`, {})]);
  $('mcp-servers').tBodies[0].replaceChildren(...servers.servers.map((sv) => el('tr', { 'data-server': sv.name },
    el('td', {}, el('b', {}, sv.name), el('div', { class: 'muted' }, sv.transport === 'http' ? sv.url : sv.command.join(' '))),
    el('td', {}, sv.status, sv.error ? el('pre', { class: 'error' }, sv.error) : ''),
    el('td', {}, `${sv.tool_count}`),
    // Secrets by name only: their values never come back from agents-agent.
    el('td', {}, [...sv.secret_env, ...sv.secret_headers].map((k) => el('div', {}, `${k}: \u2022\u2022\u2022\u2022 (set)`))),
    el('td', {},
      sv.status === 'running'
        ? el('button', { class: 'secondary', onclick: () => mcpDo('DisconnectServer', sv.name) }, 'Disconnect')
        : el('button', { class: 'secondary', onclick: () => mcpDo('ConnectServer', sv.name) }, 'Connect'),
      ' ', el('button', { class: 'danger', onclick: () => mcpDo('RemoveServer', sv.name) }, 'Remove')))));
  $('mcp-catalog').replaceChildren(
    ...catalog.problems.map((p) => el('p', { class: 'error' }, p)),
    ...catalog.entries.map(catalogCard));
}

async function mcpDo(verb, name) {
  try {
    await client.call(`${MCP}${verb}`, { name });
  } catch (e) {
    failed(e, $('mcp-catalog'));
  }
  refreshMcp().catch(failed);
}

// A catalog entry and its connect form, drawn from `config_schema_json`:
// a field per property, `writeOnly` ones as password fields that are never
// filled in, the required ones marked.
function catalogCard(entry) {
  let schema = {};
  try { schema = JSON.parse(entry.config_schema_json || '{}'); } catch (_) { /* no form */ }
  const props = Object.entries(schema.properties || {});
  const required = new Set(schema.required || []);
  const name = el('input', { name: '__name', value: entry.id, required: true });
  const fields = props.map(([key, p]) => {
    const input = el('input', {
      name: key,
      type: p.writeOnly ? 'password' : 'text',
      autocomplete: p.writeOnly ? 'new-password' : 'off',
      placeholder: p.default || (p.format === 'uri' ? 'https://\u2026' : ''),
      required: required.has(key),
      'data-secret': p.writeOnly ? 'true' : null,
    });
    return [el('label', {}, `${p.title || key}${required.has(key) ? ' *' : ''}`), input,
      p.description || p.writeOnly ? el('div', { class: 'hint' }, [p.description, p.writeOnly ? 'secret: kept in the OS credential store, never shown again' : ''].filter(Boolean).join(' \u00b7 ')) : ''];
  });
  const result = el('div');
  const form = el('form', {
    class: 'cfg',
    'data-catalog': entry.id,
    onsubmit: async (ev) => {
      ev.preventDefault();
      const config = {};
      for (const input of form.querySelectorAll('input')) {
        if (input.name !== '__name' && input.value !== '') config[input.name] = input.value;
      }
      // A secret leaves the page with this call and is not kept in it.
      for (const input of form.querySelectorAll('input[data-secret]')) input.value = '';
      try {
        const sv = await client.call(`${MCP}AddServer`, { name: name.value.trim(), catalog_id: entry.id, config });
        result.replaceChildren(el('p', {}, `${sv.name}: ${sv.status}${sv.error ? ` \u2014 ${sv.error}` : ''}`));
      } catch (e) {
        failed(e, result);
      }
      refreshMcp().catch(failed);
    },
  }, el('label', {}, 'name'), name, ...fields.flat(), el('span'), el('button', { type: 'submit' }, 'Connect'));
  return el('div', { class: 'card' },
    el('h2', {}, entry.title || entry.id),
    el('div', { class: 'muted' }, entry.description, ` (${entry.transport})`),
    el('details', {}, el('summary', {}, 'Connect\u2026'), form, result));
}

// ---- automations and the browser's execution log --------------------------------------

async function refreshAutomations() {
  const [flows, runs] = await Promise.all([client.call(`${FLOWS}ListFlows`, {}), client.call(`${FLOWS}ListRuns`, { limit: 20 })]);
  $('flows').tBodies[0].replaceChildren(...flows.flows.map((f) => el('tr', { 'data-flow': f.id },
    el('td', {}, el('b', {}, f.name), el('div', { class: 'muted' }, f.id)),
    el('td', {}, f.trigger_type, f.trigger_note ? el('div', { class: 'muted' }, f.trigger_note) : ''),
    el('td', {}, el('input', {
      type: 'checkbox',
      'aria-label': `run ${f.name} on its trigger`,
      checked: f.enabled,
      onchange: (ev) => client.call(`${FLOWS}SetEnabled`, { id: f.id, enabled: ev.target.checked }).catch((e) => failed(e, $('automations'))),
    })),
    el('td', {}, el('button', {
      class: 'secondary',
      onclick: () => client.call(`${FLOWS}RunFlow`, { id: f.id }).then(refreshAutomations).catch((e) => failed(e, $('automations'))),
    }, 'Run now')))));
  $('runs').tBodies[0].replaceChildren(...runs.runs.map((r) => el('tr', { 'data-run': r.id },
    el('td', {}, r.flow_name),
    el('td', {}, r.status, r.error ? el('div', { class: 'error' }, r.error) : '', r.waiting_reason ? el('div', { class: 'muted' }, r.waiting_reason) : ''),
    el('td', {}, r.trigger),
    el('td', {}, fmtTime(r.started_ms)),
    el('td', { class: 'steps' }, el('button', {
      class: 'secondary',
      onclick: async (ev) => {
        const cell = ev.target.closest('td');
        try {
          const full = await client.call(`${FLOWS}GetRun`, { id: r.id });
          cell.replaceChildren(...full.steps.map((st) => el('div', {}, `${st.step_id} (${st.block}): ${st.status}${st.error ? ` \u2014 ${st.error}` : ''}`)));
        } catch (e) {
          failed(e, cell);
        }
      },
    }, 'Steps')))));
}

const shots = new Map();

// A screenshot of the log, fetched once (GetScreenshot) and shown from a
// blob: URL; a click opens it full size.
function screenshot(sha) {
  const img = el('img', { class: 'shot', alt: `screenshot ${sha.slice(0, 12)}`, 'data-sha': sha });
  const link = el('a', { target: '_blank', rel: 'noopener' }, img);
  const show = (u) => { img.src = u; link.href = u; };
  if (shots.has(sha)) {
    show(shots.get(sha));
  } else {
    client.call(`${BROWSER}GetScreenshot`, { sha256: sha }).then((r) => {
      const u = URL.createObjectURL(new Blob([r.png], { type: 'image/png' }));
      shots.set(sha, u);
      // The newest 50 stay in memory; older ones are fetched again.
      if (shots.size > 50) {
        const [old, url] = shots.entries().next().value;
        URL.revokeObjectURL(url);
        shots.delete(old);
      }
      show(u);
    }, (e) => link.replaceWith(el('div', { class: 'muted' }, e.message)));
  }
  return link;
}

async function refreshBrowserLog() {
  const log = await client.call(`${BROWSER}Log`, { limit: 100 });
  $('browser-log').tBodies[0].replaceChildren(...log.actions.map((a) => el('tr', { 'data-action': a.action },
    el('td', {}, fmtTime(a.at_ms), a.operation_id ? el('div', { class: 'muted' }, a.operation_id) : ''),
    el('td', {}, a.action),
    el('td', {}, a.target_name || a.target_ref || a.detail),
    el('td', {}, a.url_after || a.url_before),
    el('td', {}, a.outcome, a.screenshot_sha256 ? screenshot(a.screenshot_sha256) : ''),
    el('td', {}, `${a.duration_ms}`))));
}

// ---- screens -------------------------------------------------------------------

const onShow = {
  approvals: refreshApprovals,
  capture: refreshCapture,
  context: () => showContext(),
  models: refreshModels,
  mcp: refreshMcp,
  automations: refreshAutomations,
  browser: refreshBrowserLog,
};

function show() {
  if (!$('signin').hidden) return;
  const name = (location.hash.replace('#', '') || 'status').split('=')[0];
  const screen = $(name) && $(name).classList.contains('screen') ? name : 'status';
  for (const s of document.querySelectorAll('.screen')) s.hidden = s.id !== screen;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.screen === screen);
  if (onShow[screen]) onShow[screen]().catch((e) => failed(e, $(screen)));
}

function wire() {
  window.addEventListener('hashchange', show);
  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = $('chat-text').value.trim();
    if (!text) return;
    $('chat-text').value = '';
    send(text);
  });
  $('chat-text').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); $('chat-form').requestSubmit(); }
  });
  $('context-form').addEventListener('submit', (ev) => { ev.preventDefault(); showContext($('context-query').value.trim()); });
  $('memory-form').addEventListener('submit', (ev) => { ev.preventDefault(); searchMemory($('memory-query').value.trim()); });
  $('pull-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const url = $('pull-url').value.trim();
    const name = $('pull-name').value.trim() || decodeURIComponent(url.split('/').pop().split('?')[0]);
    pull({ files: [{ urls: [url], name, sha256: $('pull-sha').value.trim().toLowerCase() }] });
  });
  // Approvals have no push channel: look every 2 s (one small call).
  setInterval(() => { if ($('signin').hidden) refreshApprovals().catch(() => {}); }, 2000);
  setInterval(() => { if (!$('capture').hidden) refreshCapture().catch(() => {}); }, 3000);
  setInterval(() => { if (!$('automations').hidden) refreshAutomations().catch(() => {}); }, 2000);
  setInterval(() => { if (!$('models').hidden && downloadsActive) refreshModels().catch(() => {}); }, 500);
}

async function main() {
  wire();
  await signIn();
  if (!$('signin').hidden) return;
  try {
    client = await Client.load(localStorage.getItem(KEY));
  } catch (e) {
    return failed(e, $('status'));
  }
  show();
  try {
    await refreshStatus();
  } catch (e) {
    return failed(e, $('workers'));
  }
  refreshApprovals().catch(() => {});
  watchHealth();
}

main();
