// PhotoStack's only script. No framework, no inline script (the CSP forbids
// it): every page works for reading without it; it adds uploads with
// progress, editing, deleting, the admin forms and infinite scroll.
'use strict';

const csrf = () => document.body.dataset.csrf || '';

// JSON API call with the CSRF header; resolves to {ok, status, body}.
async function api(method, url, body) {
  const init = { method, headers: { 'X-CSRF-Token': csrf() }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  let json = null;
  try { json = await response.json(); } catch (_) { /* empty body */ }
  return { ok: response.ok, status: response.status, body: json };
}

function errorText(result) {
  return (result.body && result.body.error) || `Request failed (${result.status})`;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// ---- Gallery: infinite scroll over the API cursor -------------------------
function photoCard(photo) {
  const widths = Object.keys(photo.urls).filter((k) => k !== 'orig').map(Number).sort((a, b) => a - b);
  const thumb = widths[0];
  const srcset = widths.filter((w) => w <= photo.width).map((w) => `${photo.urls[w]} ${w}w`);
  const bigger = widths.find((w) => w > photo.width);
  if (bigger) srcset.push(`${photo.urls[bigger]} ${photo.width}w`);
  const w = Math.min(thumb, photo.width);
  const img = el('img', {
    src: photo.urls[thumb], srcset: srcset.join(', '), sizes: '(max-width: 600px) 50vw, 240px',
    width: w, height: Math.max(1, Math.round(photo.height * w / photo.width)), loading: 'lazy', decoding: 'async',
    alt: photo.title || `Untitled photo by ${photo.owner}`,
  });
  const link = el('a', { href: `/photos/${photo.id}` }, img);
  if (photo.title) link.append(el('span', { class: 'caption' }, photo.title));
  if (photo.visibility === 'private') link.append(el('span', { class: 'badge' }, 'Private'));
  return el('li', { class: 'card' }, link);
}

function setupInfiniteScroll() {
  const more = document.getElementById('more');
  const grid = document.getElementById('gallery');
  if (!more || !grid || !('IntersectionObserver' in window)) return;
  let loading = false;
  const observer = new IntersectionObserver(async (entries) => {
    if (!entries.some((e) => e.isIntersecting) || loading) return;
    loading = true;
    const result = await api('GET', `/rest/photos?limit=24&cursor=${encodeURIComponent(more.dataset.cursor)}`);
    loading = false;
    if (!result.ok) return;
    for (const photo of result.body.photos) grid.append(photoCard(photo));
    if (result.body.next) {
      more.dataset.cursor = result.body.next;
      more.href = `/?cursor=${result.body.next}`;
    } else {
      observer.disconnect();
      more.parentElement.remove();
    }
  }, { rootMargin: '600px' });
  observer.observe(more);
}

// ---- Photo page: edit and delete ------------------------------------------
function setupPhotoPage() {
  const form = document.getElementById('edit-form');
  if (form) {
    const status = document.getElementById('edit-status');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      status.textContent = 'Saving…';
      const result = await api('PATCH', `/rest/photos/${form.dataset.photo}`, {
        title: form.elements.title.value,
        description: form.elements.description.value,
        visibility: form.elements.visibility.value,
      });
      if (!result.ok) { status.textContent = errorText(result); status.classList.add('error'); return; }
      status.classList.remove('error');
      status.textContent = 'Saved.';
      document.getElementById('photo-title').textContent = result.body.title || 'Untitled';
      document.getElementById('photo-visibility').textContent = result.body.visibility;
      document.title = `${result.body.title || 'Untitled'} · PhotoStack`;
    });
  }
  const del = document.getElementById('delete-form');
  if (del) {
    del.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!window.confirm('Delete this photo for good? This cannot be undone.')) return;
      const result = await api('DELETE', `/rest/photos/${del.dataset.photo}`);
      if (result.ok) window.location.assign('/');
      else window.alert(errorText(result));
    });
  }
}

// ---- Upload: one request per file, with progress ---------------------------
function uploadOne(file, fields, row) {
  return new Promise((resolve) => {
    const bar = row.querySelector('progress');
    const status = row.querySelector('.status');
    const data = new FormData();
    data.append('file', file, file.name);
    for (const [k, v] of Object.entries(fields)) data.append(k, v);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/rest/edit');
    xhr.setRequestHeader('X-CSRF-Token', csrf());
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    });
    xhr.addEventListener('load', () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status === 201 && body) {
        bar.value = 100;
        const photo = body.photos[0];
        status.textContent = 'Uploaded';
        const smallest = Object.keys(photo.urls).filter((k) => k !== 'orig').map(Number).sort((a, b) => a - b)[0];
        const thumb = el('img', { src: photo.urls[smallest], alt: photo.title || file.name, width: 80 });
        status.append(' ', el('a', { href: `/photos/${photo.id}` }, thumb));
        row.classList.add('done');
        resolve(true);
      } else {
        bar.value = 0;
        status.textContent = (body && body.error) || `Upload failed (${xhr.status})`;
        row.classList.add('failed');
        resolve(false);
      }
    });
    xhr.addEventListener('error', () => {
      status.textContent = 'Network error: the upload did not reach the server.';
      row.classList.add('failed');
      resolve(false);
    });
    xhr.send(data);
  });
}

function setupUpload() {
  const form = document.getElementById('upload-form');
  if (!form) return;
  const input = document.getElementById('files');
  const drop = document.getElementById('drop');
  const list = document.getElementById('upload-list');
  let dropped = null;
  const chosen = () => dropped || Array.from(input.files);
  const showChosen = () => {
    const files = chosen();
    drop.querySelector('strong').textContent = files.length ? `${files.length} photo(s) chosen` : 'Choose photos';
  };
  input.addEventListener('change', () => { dropped = null; showChosen(); });
  for (const type of ['dragenter', 'dragover']) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add('over'); });
  }
  for (const type of ['dragleave', 'drop']) {
    drop.addEventListener(type, () => drop.classList.remove('over'));
  }
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    dropped = Array.from(e.dataTransfer.files);
    showChosen();
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const files = chosen();
    if (!files.length) { input.focus(); return; }
    const fields = { visibility: form.elements.visibility.value };
    if (form.elements.title.value.trim()) fields.title = form.elements.title.value.trim();
    const rows = files.map((file) => {
      const row = el('li', {}, el('span', { class: 'name' }, file.name),
        el('progress', { max: '100', value: '0', 'aria-label': `Upload progress of ${file.name}` }),
        el('span', { class: 'status' }, 'Waiting'));
      list.append(row);
      return row;
    });
    const button = document.getElementById('upload-button');
    button.disabled = true;
    // Two at a time: fast on a good link, gentle on the server.
    let next = 0;
    const worker = async () => {
      while (next < files.length) {
        const i = next++;
        rows[i].querySelector('.status').textContent = 'Uploading…';
        await uploadOne(files[i], fields, rows[i]);
      }
    };
    await Promise.all([worker(), worker()]);
    button.disabled = false;
    dropped = null;
    input.value = '';
    showChosen();
    document.getElementById('upload-done').hidden = false;
  });
}

// ---- Admin ------------------------------------------------------------------
function setupAdmin() {
  const create = document.getElementById('create-user');
  if (create) {
    const status = document.getElementById('create-status');
    create.addEventListener('submit', async (event) => {
      event.preventDefault();
      const username = create.elements.username.value.trim();
      const result = await api('POST', '/rest/admin/users', {
        username, password: create.elements.password.value, admin: create.elements.admin.checked,
      });
      if (!result.ok) { status.textContent = errorText(result); status.classList.add('error'); return; }
      status.classList.remove('error');
      status.textContent = `Created ${username}.`;
      const row = el('tr', {}, el('td', {}, username), el('td', {}, result.body.admin ? 'admin' : 'user'));
      document.querySelector('#users tbody').append(row);
      document.getElementById('reset-username').append(el('option', { value: username }, username));
      create.reset();
    });
  }
  const reset = document.getElementById('reset-password');
  if (reset) {
    const status = document.getElementById('reset-status');
    reset.addEventListener('submit', async (event) => {
      event.preventDefault();
      const username = reset.elements.username.value;
      const result = await api('POST', `/rest/admin/users/${encodeURIComponent(username)}/password`, {
        password: reset.elements.password.value,
      });
      if (!result.ok) { status.textContent = errorText(result); status.classList.add('error'); return; }
      status.classList.remove('error');
      status.textContent = `Password of ${username} reset; their sessions have ended.`;
      reset.reset();
    });
  }
}

document.addEventListener('DOMContentLoaded', () => {
  setupInfiniteScroll();
  setupPhotoPage();
  setupUpload();
  setupAdmin();
});
