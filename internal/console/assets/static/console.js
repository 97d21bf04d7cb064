// The operator console's one script (no framework, no build step).
//
// The admin key is kept in this tab's sessionStorage only (nothing that
// outlives the tab, never a URL) and sent as X-Admin-Key on every API call.
// Everything the server answers is put in the page with textContent, never
// as HTML. Labels come from labels.json, the console's one label table.
'use strict';

(function () {
  const KEY = 'lectern.console.adminKey';
  const POOLS = ['llm_total', 'llm_student', 'llm_teacher', 'ocr'];
  const REFRESH_MS = 10000;
  const CHARTS_AT_ONCE = 3;
  const DEFAULT_ID = '_default';
  const page = document.body.dataset.page;
  const lang = document.documentElement.lang === 'en' ? 'en' : 'zh';
  let labels = {};
  let refreshTimer = null;
  let chartURLs = [];
  // unauthorized is set by a 401: the key was refused.
  let unauthorized = false;

  const $ = (id) => document.getElementById(id);

  function t(id) {
    const l = labels[id];
    return (l && l[lang]) || id;
  }

  // el builds an element; children are nodes or text.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function key() {
    return sessionStorage.getItem(KEY) || '';
  }

  function detailText(d) {
    if (d === undefined || d === null) return t('request_failed');
    if (typeof d === 'string') return d;
    if (typeof d === 'object' && typeof d.message === 'string') return d.message + (d.error ? ' (' + d.error + ')' : '');
    return JSON.stringify(d);
  }

  // api calls the server with the key; it answers {status, data} and never
  // throws. A 401 signs the tab out.
  async function api(method, path, body) {
    const headers = { 'X-Admin-Key': key(), Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'same-origin', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      return { status: 0, data: { detail: t('request_failed') + ': ' + e.message } };
    }
    let data;
    try {
      data = await resp.json();
    } catch (e) {
      data = { detail: t('request_failed') + ' (HTTP ' + resp.status + ')' };
    }
    if (resp.status === 401) {
      unauthorized = true;
      signedOut(data && data.detail);
    }
    return { status: resp.status, data };
  }

  function setText(id, text) {
    const e = $(id);
    if (e) e.textContent = text || '';
  }

  function yesNo(b) {
    return b ? t('yes') : t('no');
  }

  function dash(v) {
    return v === undefined || v === null ? t('not_counted') : String(v);
  }

  // Sign-in.

  function signedOut(detail) {
    sessionStorage.removeItem(KEY);
    stopRefresh();
    $('app').hidden = true;
    $('sign-out').hidden = true;
    $('signin').hidden = false;
    if (detail !== undefined) {
      setText('signin-error', detail === 'admin key not configured' ? t('no_key_configured') : t('bad_key'));
    }
    $('admin-key').focus();
  }

  function signedIn() {
    $('signin').hidden = true;
    $('app').hidden = false;
    $('sign-out').hidden = false;
    setText('signin-error', '');
  }

  async function signIn(ev) {
    ev.preventDefault();
    const value = $('admin-key').value;
    if (!value) return;
    sessionStorage.setItem(KEY, value);
    $('admin-key').value = '';
    const ok = await load();
    if (ok) signedIn();
  }

  function stopRefresh() {
    if (refreshTimer) clearInterval(refreshTimer);
    refreshTimer = null;
  }

  function startRefresh(fn) {
    stopRefresh();
    refreshTimer = setInterval(() => {
      if (!document.hidden && key()) fn();
    }, REFRESH_MS);
  }

  // The tenant form (create and edit).

  // readForm builds the body of PUT /admin/tenants/{id} from the form with
  // the given prefix: {body} or {error}.
  function readForm(prefix) {
    let extra = {};
    const raw = $(prefix + '-extra').value.trim();
    if (raw) {
      try {
        extra = JSON.parse(raw);
      } catch (e) {
        return { error: t('extra_not_object') + ' ' + e.message };
      }
      if (!extra || typeof extra !== 'object' || Array.isArray(extra)) return { error: t('extra_not_object') };
    }
    const limits = {};
    for (const p of POOLS) {
      const v = $(prefix + '-' + p).value.trim();
      if (v !== '') limits[p] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
    }
    if (Object.keys(limits).length > 0) {
      if (extra.limits === undefined) extra.limits = {};
      if (extra.limits && typeof extra.limits === 'object' && !Array.isArray(extra.limits)) Object.assign(extra.limits, limits);
    }
    return {
      body: {
        data_dir: $(prefix + '-data_dir').value.trim(),
        uploads_dir: $(prefix + '-uploads_dir').value.trim(),
        enabled: $(prefix + '-enabled').checked,
        extra,
      },
    };
  }

  // fillForm puts a tenant's record in the edit form: its limits in their
  // fields, the rest of extra as JSON.
  function fillForm(prefix, tenant) {
    $(prefix + '-data_dir').value = tenant.data_dir || '';
    $(prefix + '-uploads_dir').value = tenant.uploads_dir || '';
    $(prefix + '-enabled').checked = !!tenant.enabled;
    const extra = JSON.parse(JSON.stringify(tenant.extra || {}));
    const nested = extra.limits && typeof extra.limits === 'object' && !Array.isArray(extra.limits) ? extra.limits : {};
    for (const p of POOLS) {
      let v = nested[p];
      if (v === undefined) v = extra[p];
      $(prefix + '-' + p).value = v === undefined ? '' : String(v);
      delete nested[p];
      delete extra[p];
    }
    if (extra.limits === nested && Object.keys(nested).length === 0) delete extra.limits;
    $(prefix + '-extra').value = Object.keys(extra).length ? JSON.stringify(extra, null, 2) : '';
  }

  function limitsText(tenant) {
    const st = tenant.status;
    return POOLS.map((p) => {
      const inUse = st ? st.limits_in_use[p] : t('not_counted');
      const limit = st ? st.effective_limits[p] : tenant.limits[p];
      return t('pool_' + p) + ' ' + inUse + '/' + limit;
    }).join(' · ');
  }

  // The tenants table (index page).

  function tenantRow(tn) {
    const s = tn.summary;
    const link = el('a', { href: '/admin/console/tenants/' + encodeURIComponent(tn.tenant_id) }, tn.tenant_id);
    const idCell = el('td', { 'data-col': 'id' }, link);
    if (tn.default) idCell.append(' ', el('span', { class: 'tag' }, t('default_tenant')));
    const cell = (col, text) => el('td', { 'data-col': col }, text);
    return el('tr', { 'data-tenant': tn.tenant_id, class: tn.enabled ? '' : 'off' },
      idCell,
      cell('enabled', yesNo(tn.enabled)),
      cell('loaded', yesNo(tn.loaded)),
      cell('in_flight', tn.loaded ? dash(tn.in_flight) : t('not_counted')),
      cell('queued', s ? s.queued + ' (' + s.max_queued + ')' : t('not_counted')),
      cell('busy', s ? s.busy + '/' + s.workers : t('not_counted')),
      cell('llm_calls', s ? String(s.llm_calls) : t('not_counted')),
      cell('llm_tokens', s ? String(s.llm_tokens) : t('not_counted')),
      cell('limits', limitsText(tn)));
  }

  async function loadTenants() {
    const res = await api('GET', '/admin/console/api/tenants');
    if (res.status !== 200) {
      if (res.status !== 401) setText('list-error', detailText(res.data.detail));
      return false;
    }
    setText('list-error', '');
    $('tenants').tBodies[0].replaceChildren(...res.data.tenants.map(tenantRow));
    return true;
  }

  async function createTenant(ev) {
    ev.preventDefault();
    setText('create-error', '');
    setText('create-ok', '');
    const id = $('create-tenant_id').value.trim();
    if (!id) {
      setText('create-error', t('required_id'));
      return;
    }
    const f = readForm('create');
    if (f.error) {
      setText('create-error', f.error);
      return;
    }
    const res = await api('PUT', '/admin/tenants/' + encodeURIComponent(id), f.body);
    if (res.status !== 200) {
      if (res.status !== 401) setText('create-error', detailText(res.data.detail));
      return;
    }
    $('create-form').reset();
    setText('create-ok', t('created') + ' ' + res.data.tenant_id);
    await loadTenants();
  }

  // The tenant page.

  const tenantID = document.body.dataset.tenant || '';
  const apiBase = '/admin/console/api/tenants/' + encodeURIComponent(tenantID);
  let formFilled = false;

  function dl(pairs) {
    const out = [];
    for (const [label, value, col] of pairs) {
      out.push(el('dt', {}, label), el('dd', { 'data-field': col }, value));
    }
    return out;
  }

  function renderTenant(tn) {
    const cfg = [
      [t('col_id'), tn.tenant_id, 'tenant_id'],
      [t('col_enabled'), yesNo(tn.enabled), 'enabled'],
      [t('col_loaded'), yesNo(tn.loaded), 'loaded'],
      [t('f_data_dir'), tn.data_dir, 'data_dir'],
      [t('f_uploads_dir'), tn.uploads_dir, 'uploads_dir'],
    ];
    if (tn.updated_at) cfg.push([t('updated_at'), tn.updated_at, 'updated_at']);
    if (!tn.default) cfg.push([t('cfg_extra'), el('pre', {}, JSON.stringify(tn.extra || {}, null, 2)), 'extra']);
    if (tn.limits_error) cfg.push([t('limits_error'), tn.limits_error, 'limits_error']);
    $('config').replaceChildren(...dl(cfg));

    if (tn.default) {
      $('default-readonly').hidden = false;
      $('edit-form').hidden = true;
    } else {
      $('edit-form').hidden = false;
      if (!formFilled) {
        fillForm('edit', tn);
        formFilled = true;
      }
    }

    const st = tn.status;
    if (!st) {
      $('status').replaceChildren(el('p', { id: 'not-loaded' }, t('not_loaded')));
    } else {
      const pairs = [];
      if (tn.loaded_at) pairs.push([t('loaded_at'), tn.loaded_at, 'loaded_at']);
      pairs.push(
        [t('col_in_flight'), dash(tn.in_flight), 'in_flight'],
        [t('col_llm_calls'), String(st.llm_usage.calls), 'llm_calls'],
        [t('llm_failures'), String(st.llm_usage.failures), 'llm_failures'],
        [t('prompt_tokens'), String(st.llm_usage.prompt_tokens), 'prompt_tokens'],
        [t('completion_tokens'), String(st.llm_usage.completion_tokens), 'completion_tokens'],
        [t('ocr_pages'), st.ocr_usage.pages + ' (' + st.ocr_usage.failures + ')', 'ocr_pages']);
      $('status').replaceChildren(el('dl', {}, ...dl(pairs)), el('p', { class: 'hint' }, t('usage_note')));
    }
    $('pools').tBodies[0].replaceChildren(...POOLS.map((p) => el('tr', { 'data-pool': p },
      el('td', {}, t('pool_' + p)),
      el('td', { 'data-col': 'in_use' }, st ? String(st.limits_in_use[p]) : t('not_counted')),
      el('td', { 'data-col': 'effective' }, st ? String(st.effective_limits[p]) : t('not_counted')),
      el('td', { 'data-col': 'limit' }, String(st ? st.limits[p] : tn.limits[p])),
      el('td', { 'data-col': 'global' }, st ? String(st.global_limits[p]) : t('not_counted')))));
    const workers = st ? st.workers : [];
    $('workers').tBodies[0].replaceChildren(...workers.map((w) => el('tr', { 'data-kind': w.kind },
      el('td', {}, w.kind), el('td', {}, String(w.workers)), el('td', {}, String(w.queued)),
      el('td', {}, w.max_queued ? String(w.max_queued) : '∞'), el('td', {}, String(w.busy)),
      el('td', {}, String(w.processed)), el('td', {}, String(w.failed)))));
  }

  async function loadTenant() {
    const res = await api('GET', apiBase);
    if (res.status !== 200) {
      if (res.status !== 401) setText('page-error', detailText(res.data.detail));
      return false;
    }
    setText('page-error', '');
    renderTenant(res.data.tenant);
    return true;
  }

  async function loadFailedJobs() {
    const res = await api('GET', apiBase + '/failed-jobs');
    if (res.status !== 200) return;
    const rows = res.data.failed_jobs.map((j) => el('tr', { 'data-job': j.job_id },
      el('td', {}, j.kind),
      el('td', {}, j.job_id),
      el('td', { 'data-col': 'error' }, j.error),
      el('td', { 'data-col': 'detail' }, j.error_detail || '',
        j.hints && j.hints.length ? el('ul', {}, ...j.hints.map((h) => el('li', {}, h))) : null),
      el('td', {}, j.updated_at || '')));
    if (rows.length === 0) rows.push(el('tr', {}, el('td', { colSpan: 5 }, t('none'))));
    $('failed-jobs').tBodies[0].replaceChildren(...rows);
  }

  async function loadChart(img, url) {
    const resp = await fetch(url, { headers: { 'X-Admin-Key': key() }, cache: 'no-store', redirect: 'error' }).catch(() => null);
    if (!resp || !resp.ok) {
      img.replaceWith(el('p', { class: 'error' }, t('chart_failed')));
      return;
    }
    const blob = await resp.blob();
    const u = URL.createObjectURL(blob.type === 'image/svg+xml' ? blob : new Blob([blob], { type: 'image/svg+xml' }));
    chartURLs.push(u);
    img.src = u;
  }

  async function loadExams() {
    const res = await api('GET', apiBase + '/exams');
    for (const u of chartURLs) URL.revokeObjectURL(u);
    chartURLs = [];
    if (res.status === 404) {
      $('exams').replaceChildren(el('p', { id: 'exams-unavailable' }, t('exams_unavailable')));
      return;
    }
    if (res.status !== 200) {
      if (res.status !== 401) $('exams').replaceChildren(el('p', { class: 'error' }, detailText(res.data.detail)));
      return;
    }
    if (res.data.exams.length === 0) {
      $('exams').replaceChildren(el('p', {}, t('none')));
      return;
    }
    // The charts of the newest exams load at once; the others on demand,
    // so a tenant with a hundred exams costs three requests per exam asked.
    const items = res.data.exams.map((ex, i) => {
      const charts = el('div', { class: 'charts' });
      const show = () => {
        charts.replaceChildren(...(ex.charts || []).map((c) => {
          const img = el('img', { alt: t('chart_' + c.name), 'data-chart': c.name });
          loadChart(img, c.url);
          return el('figure', {}, img, el('figcaption', {}, t('chart_' + c.name)));
        }));
      };
      if (i < CHARTS_AT_ONCE) show();
      else if (ex.charts && ex.charts.length) {
        const btn = el('button', { type: 'button', class: 'link show-charts' }, t('show_charts'));
        btn.addEventListener('click', show);
        charts.append(btn);
      }
      return el('article', { class: 'exam', 'data-exam': ex.exam_id },
        el('h3', {}, ex.exam_id),
        el('p', { class: 'hint' }, t('col_generated') + ': ' + dash(ex.generated_at) + ' · ' + t('col_students') + ': ' + dash(ex.students)),
        charts);
    });
    $('exams').replaceChildren(...items);
  }

  async function saveTenant(ev) {
    ev.preventDefault();
    setText('edit-error', '');
    setText('edit-ok', '');
    const f = readForm('edit');
    if (f.error) {
      setText('edit-error', f.error);
      return;
    }
    const res = await api('PUT', '/admin/tenants/' + encodeURIComponent(tenantID), f.body);
    if (res.status !== 200) {
      if (res.status !== 401) setText('edit-error', detailText(res.data.detail));
      return;
    }
    setText('edit-ok', t('saved'));
    formFilled = false;
    await loadTenant();
  }

  async function disableTenant() {
    setText('disable-error', '');
    setText('disable-ok', '');
    const res = await api('DELETE', '/admin/tenants/' + encodeURIComponent(tenantID));
    if (res.status !== 200) {
      if (res.status !== 401) setText('disable-error', detailText(res.data.detail));
      return;
    }
    setText('disable-ok', t('disabled_done'));
    formFilled = false;
    await loadTenant();
    await loadExams();
  }

  // load fills the page; it reports whether the key was accepted (other
  // failures show in the page).
  async function load() {
    unauthorized = false;
    if (page === 'index') {
      await loadTenants();
      if (!unauthorized) startRefresh(loadTenants);
      return !unauthorized;
    }
    // The exams first: reading them loads the tenant, so the status
    // read next shows it loaded.
    await loadExams();
    if (unauthorized) return false;
    await loadTenant();
    if (unauthorized) return false;
    await loadFailedJobs();
    if (!unauthorized) startRefresh(loadTenant);
    return !unauthorized;
  }

  async function start() {
    try {
      const resp = await fetch('/admin/console/static/labels.json', { cache: 'no-cache' });
      labels = await resp.json();
    } catch (e) {
      labels = {};
    }
    $('signin-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', () => signedOut());
    if (page === 'index') {
      $('refresh').addEventListener('click', loadTenants);
      $('create-form').addEventListener('submit', createTenant);
    } else if (page === 'tenant') {
      $('edit-form').addEventListener('submit', saveTenant);
      $('disable').addEventListener('click', disableTenant);
    }
    if (!key()) signedOut();
    else if (await load()) signedIn();
    document.body.dataset.ready = 'true';
  }

  start();
})();
