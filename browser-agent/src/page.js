// browser-agent's helper inside a page (installed once per document as
// window.__cowork): the snapshot walk that names elements with refs, and
// the lookups every action by ref starts with. Refs are stable for an
// element while its role and name stay the same; an element that left the
// page or changed is refused ("stale"), so an action never lands on
// something the model did not see.
(() => {
  if (window.__cowork && window.__cowork.v === 1) return window.__cowork;
  const refs = new Map();
  const ids = new WeakMap();
  let next = 1;
  const INTERACTIVE = new Set(['link', 'button', 'textbox', 'searchbox', 'checkbox', 'radio',
    'combobox', 'listbox', 'slider', 'spinbutton', 'switch', 'tab', 'menuitem', 'menuitemcheckbox',
    'menuitemradio', 'option', 'treeitem', 'clickable']);
  const NAMED = new Set(['heading', 'img', 'dialog', 'alertdialog', 'alert', 'form', 'navigation',
    'main', 'region', 'iframe', 'table', 'progressbar']);
  const INPUT_ROLES = {button: 'button', submit: 'button', reset: 'button', image: 'button',
    checkbox: 'checkbox', radio: 'radio', range: 'slider', search: 'searchbox', number: 'spinbutton',
    file: 'button', hidden: null};
  const clip = (s, n) => { s = (s || '').replace(/\s+/g, ' ').trim(); return s.length > n ? s.slice(0, n - 1) + '…' : s; };
  function role(el) {
    const r = el.getAttribute('role');
    if (r) return r.split(' ')[0];
    const t = el.tagName;
    switch (t) {
      case 'A': case 'AREA': return el.hasAttribute('href') ? 'link' : null;
      case 'BUTTON': case 'SUMMARY': return 'button';
      case 'INPUT': {
        const ty = (el.getAttribute('type') || 'text').toLowerCase();
        return ty in INPUT_ROLES ? INPUT_ROLES[ty] : 'textbox';
      }
      case 'SELECT': return (el.multiple || el.size > 1) ? 'listbox' : 'combobox';
      case 'TEXTAREA': return 'textbox';
      case 'H1': case 'H2': case 'H3': case 'H4': case 'H5': case 'H6': return 'heading';
      case 'IMG': return el.getAttribute('alt') ? 'img' : null;
      case 'IFRAME': case 'FRAME': return 'iframe';
      case 'DIALOG': return 'dialog';
      case 'FORM': return (el.getAttribute('aria-label') || el.getAttribute('name')) ? 'form' : null;
      case 'NAV': return 'navigation';
      case 'MAIN': return 'main';
      case 'PROGRESS': return 'progressbar';
    }
    if (el.isContentEditable && !(el.parentElement && el.parentElement.isContentEditable)) return 'textbox';
    if (el.hasAttribute('onclick') || (el.tabIndex >= 0 && el.hasAttribute('tabindex'))) return 'button';
    // Script-only click targets show as the outermost element with a
    // pointer cursor (the cursor is inherited: its parent has none).
    const view = el.ownerDocument.defaultView;
    if (view && view.getComputedStyle(el).cursor === 'pointer') {
      const p = el.parentElement;
      if (!p || view.getComputedStyle(p).cursor !== 'pointer') return 'clickable';
    }
    return null;
  }
  function textOf(el) { return el.innerText !== undefined ? el.innerText : el.textContent; }
  function name(el, r) {
    const doc = el.ownerDocument;
    const by = el.getAttribute('aria-labelledby');
    if (by) {
      const s = by.split(/\s+/).map(id => { const x = doc.getElementById(id); return x ? textOf(x) : ''; }).join(' ');
      if (s.trim()) return clip(s, 80);
    }
    const al = el.getAttribute('aria-label');
    if (al) return clip(al, 80);
    if (el.labels && el.labels.length) return clip(Array.from(el.labels).map(textOf).join(' '), 80);
    if (el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type)) return clip(el.value || (el.type === 'submit' ? 'Submit' : ''), 80);
    if (el.tagName === 'IMG' || el.tagName === 'AREA' || (el.tagName === 'INPUT' && el.type === 'image')) return clip(el.getAttribute('alt'), 80);
    if (['link', 'button', 'heading', 'tab', 'menuitem', 'option', 'treeitem', 'checkbox', 'radio', 'switch', 'clickable'].includes(r) && el.tagName !== 'INPUT') {
      const t = clip(textOf(el), 80);
      if (t) return t;
    }
    if (el.tagName === 'IFRAME') return clip(el.getAttribute('title') || el.getAttribute('name') || el.getAttribute('src'), 80);
    return clip(el.getAttribute('placeholder') || el.getAttribute('title') || '', 80);
  }
  function sensitive(el) {
    if (el.tagName !== 'INPUT' && el.tagName !== 'TEXTAREA') return '';
    if ((el.type || '').toLowerCase() === 'password') return 'password';
    const hint = [el.getAttribute('autocomplete'), el.name, el.id, el.getAttribute('placeholder')].join(' ').toLowerCase();
    if (/\bcc-|card.?num|cardnumber|\bcvc\b|\bcvv\b|\bcsc\b|security.?code|\biban\b|expir/.test(hint)) return 'payment';
    return '';
  }
  function value(el, r) {
    if (r === 'textbox' || r === 'searchbox' || r === 'spinbutton' || r === 'slider') {
      const v = el.isContentEditable ? textOf(el) : el.value;
      if (!v) return '';
      return sensitive(el) ? '•'.repeat(Math.min(v.length, 8)) : clip(v, 80);
    }
    if (el.tagName === 'SELECT') return clip(Array.from(el.selectedOptions).map(o => o.label).join(', '), 80);
    return '';
  }
  function states(el) {
    const s = [];
    if (el.checked === true || el.getAttribute('aria-checked') === 'true') s.push('checked');
    if (el.disabled === true || el.getAttribute('aria-disabled') === 'true') s.push('disabled');
    const ex = el.getAttribute('aria-expanded');
    if (ex === 'true') s.push('expanded'); else if (ex === 'false') s.push('collapsed');
    if (el.tagName === 'DETAILS') s.push(el.open ? 'expanded' : 'collapsed');
    if (el.getAttribute('aria-selected') === 'true') s.push('selected');
    if (el.required) s.push('required');
    if (el.readOnly) s.push('readonly');
    if (el.ownerDocument.activeElement === el) s.push('focused');
    if (/^H[1-6]$/.test(el.tagName)) s.push('level=' + el.tagName[1]);
    return s;
  }
  const fingerprint = (el, r) => r + '\u0000' + name(el, r);
  function refFor(el, r) {
    let id = ids.get(el);
    if (!id || !refs.has(id)) { id = 'e' + (next++); ids.set(el, id); }
    refs.set(id, {el, fp: fingerprint(el, r)});
    return id;
  }
  function visible(el) {
    if (el.checkVisibility) return el.checkVisibility({visibilityProperty: true});
    return el.getClientRects().length > 0;
  }
  function snapshot() {
    const out = [];
    const walk = (root, depth) => {
      for (const el of root.children) visit(el, depth);
    };
    const visit = (el, depth) => {
      if (el.getAttribute('aria-hidden') === 'true' || el.inert) return;
      const t = el.tagName;
      if (t === 'SCRIPT' || t === 'STYLE' || t === 'TEMPLATE' || t === 'NOSCRIPT' || t === 'HEAD') return;
      if (t !== 'OPTION' && t !== 'SLOT' && t !== 'DETAILS' && !visible(el) && !(el.shadowRoot)) {
        // display:none hides the whole subtree; a visibility:hidden parent may
        // still hold a visible child.
        if (el.getClientRects().length === 0) return;
      }
      const r = role(el);
      if (r && (INTERACTIVE.has(r) || NAMED.has(r)) && r !== 'option' && visible(el)) {
        const n = name(el, r);
        if (INTERACTIVE.has(r) || n) {
          out.push({ref: refFor(el, r), role: r, name: n, value: value(el, r), states: states(el), depth});
        }
      }
      if (el.shadowRoot) walk(el.shadowRoot, depth);
      if (t === 'IFRAME' || t === 'FRAME') {
        let doc = null;
        try { doc = el.contentDocument; } catch (e) { doc = null; }
        if (doc && doc.body) walk(doc.body, depth + 1);
        else if (r) out.push({ref: '', role: 'note', name: 'cross-origin frame (not shown)', value: '', states: [], depth: depth + 1});
        return;
      }
      if (t === 'SELECT') return;
      walk(el, depth);
    };
    if (document.body) walk(document.body, 0);
    return {url: location.href, title: document.title, elements: out};
  }
  function target(ref) {
    const e = refs.get(ref);
    if (!e) return {error: 'ref ' + ref + ' is not on this page (the page changed since the snapshot, or it never was); take a new snapshot'};
    const el = e.el;
    if (!el.isConnected) { refs.delete(ref); return {error: 'ref ' + ref + ' is stale: its element left the page; take a new snapshot'}; }
    const r = role(el) || '';
    if (fingerprint(el, r) !== e.fp) { refs.delete(ref); return {error: 'ref ' + ref + ' is stale: its element changed (now ' + r + ' "' + name(el, r) + '"); take a new snapshot'}; }
    return {el, role: r, name: name(el, r)};
  }
  function point(el) {
    el.scrollIntoView({block: 'center', inline: 'center', behavior: 'instant'});
    const b = el.getBoundingClientRect();
    let x = b.left + b.width / 2, y = b.top + b.height / 2;
    let w = el.ownerDocument.defaultView;
    while (w && w !== window && w.frameElement) {
      const f = w.frameElement, fb = f.getBoundingClientRect();
      x += fb.left + f.clientLeft; y += fb.top + f.clientTop;
      w = w.parent;
    }
    // What a click at the centre would really hit (an overlay, a cookie
    // banner): the element itself, inside it, or a label around it.
    const root = el.getRootNode();
    const at = (root.elementFromPoint ? root : el.ownerDocument).elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
    let covered = '';
    if (at && at !== el && !el.contains(at) && !(at.tagName === 'LABEL' && (at.control === el || at.contains(el)))) {
      covered = at.tagName.toLowerCase() + (at.id ? '#' + at.id : '') + (typeof at.className === 'string' && at.className ? '.' + at.className.trim().split(/\s+/).join('.') : '');
    }
    return {x, y, width: b.width, height: b.height, covered};
  }
  function formFacts(form, submitter) {
    if (!form) return null;
    const attr = (n) => (submitter && submitter.getAttribute('form' + n)) || form.getAttribute(n);
    const method = (attr('method') || 'get').toUpperCase();
    let action = form.action || location.href;
    if (submitter && submitter.getAttribute('formaction')) action = submitter.formAction;
    return {method, action, target: attr('target') || ''};
  }
  // The submit button a click on `el` reaches (a span inside a button, a
  // label for one), if any.
  function submitterOf(el) {
    let c = el.closest('button, input[type=submit], input[type=image], label');
    if (c && c.tagName === 'LABEL') c = c.control;
    if (!c) return null;
    const ty = (c.getAttribute('type') || '').toLowerCase();
    const sub = (c.tagName === 'BUTTON' && (ty === '' || ty === 'submit')) || (c.tagName === 'INPUT' && (ty === 'submit' || ty === 'image'));
    return sub && c.form ? c : null;
  }
  // The element that has the focus, through frames and shadow roots.
  function deepActive() {
    let a = document.activeElement;
    for (;;) {
      if (a && a.shadowRoot && a.shadowRoot.activeElement) { a = a.shadowRoot.activeElement; continue; }
      if (a && (a.tagName === 'IFRAME' || a.tagName === 'FRAME')) {
        let d = null; try { d = a.contentDocument; } catch (e) { d = null; }
        if (d && d.activeElement) { a = d.activeElement; continue; }
      }
      return a;
    }
  }
  function facts(el, how) {
    const f = {};
    if (how === 'click') {
      const sub = submitterOf(el);
      if (sub) f.submits = formFacts(sub.form, sub);
      const a = el.closest('a[href], area[href]');
      if (a) { f.href = a.href; if (a.hasAttribute('download')) f.download = a.href; }
    }
    if (how === 'type') {
      f.sensitive = sensitive(el);
      if (el.form) f.form = formFacts(el.form, null);
    }
    return f;
  }
  // What a key press would do: Enter in a field of a form, or Enter or
  // Space on a submit button, submits it; a printable key types into the
  // focused field (is it a password or payment one?).
  function keyFacts(key) {
    const a = deepActive();
    const f = {sensitive: a ? sensitive(a) : ''};
    if (!a) return f;
    if ((key === 'Enter' || key === ' ') && submitterOf(a)) f.submits = formFacts(a.form, a);
    else if (key === 'Enter' && a.form && a.tagName === 'INPUT') f.submits = formFacts(a.form, null);
    return f;
  }
  function act(ref, how, arg) {
    const t = target(ref);
    if (t.error) return t;
    const el = t.el;
    const base = {role: t.role, name: t.name};
    switch (how) {
      case 'point': return Object.assign(base, point(el), {facts: facts(el, arg)});
      case 'focus': {
        el.scrollIntoView({block: 'center', behavior: 'instant'});
        el.focus();
        if (typeof el.select === 'function' && el.tagName !== 'SELECT') el.select();
        else if (el.isContentEditable) { const r = el.ownerDocument.createRange(); r.selectNodeContents(el); const s = el.ownerDocument.getSelection(); s.removeAllRanges(); s.addRange(r); }
        return Object.assign(base, {facts: facts(el, 'type'), focused: el.ownerDocument.activeElement === el});
      }
      case 'select': {
        if (el.tagName !== 'SELECT') return {error: 'ref ' + ref + ' is a ' + t.role + ', not a select'};
        const o = Array.from(el.options).find(o => o.value === arg) || Array.from(el.options).find(o => o.label.trim() === arg || o.text.trim() === arg);
        if (!o) return {error: 'ref ' + ref + ' has no option ' + JSON.stringify(arg) + '; its options: ' + Array.from(el.options).map(o => o.label).join(', ')};
        el.value = o.value;
        el.dispatchEvent(new Event('input', {bubbles: true}));
        el.dispatchEvent(new Event('change', {bubbles: true}));
        return Object.assign(base, {value: o.label});
      }
      case 'scroll': el.scrollIntoView({block: 'center', behavior: 'instant'}); return base;
      case 'text': return Object.assign(base, {text: textOf(el)});
      case 'element': return el;
    }
    return {error: 'unknown action ' + how};
  }
  function pageText() {
    let s = document.body ? document.body.innerText : '';
    for (const f of document.querySelectorAll('iframe,frame')) {
      try { if (f.contentDocument && f.contentDocument.body) s += '\n' + f.contentDocument.body.innerText; } catch (e) {}
    }
    return s;
  }
  window.__cowork = {v: 1, snapshot, act, pageText, keyFacts};
  return window.__cowork;
})()
