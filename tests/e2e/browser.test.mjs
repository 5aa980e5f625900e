// The web site in a real browser: Debian's headless Chromium driven by
// playwright-core, against the real photo-server binary on a loopback port.
// Screenshots of every page go to tests/e2e/output/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const fixtures = join(root, 'photo-server/tests/fixtures');
const output = join(here, 'output');
const serverBin = process.env.PHOTO_SERVER_BIN || join(process.env.CARGO_TARGET_DIR || join(root, 'target'), 'debug/photo-server');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const ADMIN_PASSWORD = 'admin-e2e-password';
const RENDITIONS = [240, 640, 1440, 2048];

let server;
let base;
let dataDir;
let browser;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
    s.on('error', fail);
  });
}

async function waitReady(url) {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    try { if ((await fetch(`${url}/readyz`)).ok) return; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('photo-server did not become ready');
}

before(async () => {
  mkdirSync(output, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'photo-e2e-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(serverBin, [], {
    cwd: dataDir,
    env: { ...process.env, PHOTO_LISTEN: `127.0.0.1:${port}`, PHOTO_ADMIN_PASSWORD: ADMIN_PASSWORD, PHOTO_SHUTDOWN_DELAY: '0s', RUST_LOG: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitReady(base);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill('SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** A fresh browser context that fails the test on any page error or CSP violation. */
async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // Failed requests we provoke on purpose (401, 404, 415) are logged by the
  // browser as resource errors; everything else in the console is a problem.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  return { page, context, problems };
}

async function shot(page, name) {
  await page.screenshot({ path: join(output, `${name}.png`), fullPage: true });
}

async function logIn(page, username, password) {
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${base}/`);
  await assert.doesNotReject(page.getByText(`Signed in as ${username}`).waitFor());
}

async function logOut(page) {
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(`${base}/`);
  await page.getByRole('link', { name: 'Log in' }).waitFor();
}

test('a visitor logs in, uploads, browses, edits, makes a photo private, and another user cannot see it', async () => {
  const { page, context, problems } = await newPage();

  // The empty site.
  await page.goto(`${base}/`);
  await page.getByText('No photos yet').waitFor();
  await shot(page, '01-empty-gallery');

  // Wrong password: a clear message, no session.
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').innerText(), /Wrong username or password/);
  await shot(page, '02-login-error');

  await logIn(page, 'admin', ADMIN_PASSWORD);

  // Admin: create a second user; see storage used.
  await page.getByRole('link', { name: 'Admin' }).click();
  await page.getByLabel('Username').fill('bob');
  await page.getByLabel('Password (at least 8 characters)').fill('bob-password-1');
  await page.getByRole('button', { name: 'Create user' }).click();
  await page.getByText('Created bob.').waitFor();
  assert.equal(await page.locator('#users tbody tr', { hasText: 'bob' }).count(), 1);
  await shot(page, '03-admin');

  // Upload three real photos at once; every progress bar reaches 100.
  await page.getByRole('link', { name: 'Upload' }).click();
  await page.locator('#files').setInputFiles(['landscape.jpg', 'portrait.jpg', 'rotated.jpg'].map((f) => join(fixtures, f)));
  await page.getByLabel('Visibility').selectOption('public');
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.locator('#upload-done').waitFor({ state: 'visible', timeout: 30000 });
  const bars = await page.locator('#upload-list progress').evaluateAll((ps) => ps.map((p) => p.value));
  assert.deepEqual(bars, [100, 100, 100]);
  assert.equal(await page.locator('#upload-list li.done').count(), 3);
  await shot(page, '04-upload-done');

  // A bad file is refused with the API's message next to it.
  await page.locator('#files').setInputFiles([join(fixtures, 'not-an-image.jpg')]);
  await page.getByRole('button', { name: 'Upload' }).click();
  const failed = page.locator('#upload-list li.failed');
  await failed.waitFor();
  assert.match(await failed.innerText(), /not a JPEG, PNG or WebP image/);
  await shot(page, '05-upload-error');

  // The gallery shows three thumbnails, each a real rendition.
  await page.goto(`${base}/`);
  const thumbs = page.locator('#gallery img');
  assert.equal(await thumbs.count(), 3);
  await page.waitForFunction(() => [...document.querySelectorAll('#gallery img')].every((i) => i.complete && i.naturalWidth > 0));
  const natural = await thumbs.evaluateAll((imgs) => imgs.map((i) => ({ w: i.naturalWidth, src: i.currentSrc })));
  for (const { w, src } of natural) {
    const size = Number(new URL(src).pathname.split('/')[2]);
    assert.ok(RENDITIONS.includes(size), `thumbnail from a rendition: ${src}`);
    // Never wider than the rendition; narrower only if the photo itself is.
    assert.ok(w <= size && (w === size || w === 800 || w === 600 || w === 1200), `natural width ${w} for ${src}`);
  }
  await shot(page, '06-gallery');

  // Open one photo, edit its title, make it private.
  await page.locator('#gallery a').first().click();
  await page.waitForURL(/\/photos\//);
  const photoUrl = page.url();
  const photoId = photoUrl.split('/').pop();
  await page.locator('img.large').evaluate((img) => img.decode());
  await shot(page, '07-photo');
  await page.getByLabel('Title').fill('Edited in the browser <b>bold?</b>');
  await page.getByLabel('Visibility').selectOption('private');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Saved.').waitFor();
  assert.equal(await page.locator('#photo-title').innerText(), 'Edited in the browser <b>bold?</b>');
  await page.reload();
  assert.equal(await page.locator('#photo-title').innerText(), 'Edited in the browser <b>bold?</b>');
  assert.equal(await page.locator('#photo-visibility').innerText(), 'private');
  await shot(page, '08-photo-edited');

  await logOut(page);

  // Bob cannot see the private photo anywhere.
  await logIn(page, 'bob', 'bob-password-1');
  assert.equal(await page.locator('#gallery img').count(), 2);
  const response = await page.goto(photoUrl);
  assert.equal(response.status(), 404);
  await page.getByRole('heading', { name: 'Not found' }).waitFor();
  await shot(page, '09-private-is-404-for-bob');
  const img = await page.request.get(`${base}/img/240/${photoId}.jpg`);
  assert.equal(img.status(), 404);
  const api = await page.request.get(`${base}/rest/photos/${photoId}`);
  assert.equal(api.status(), 404);
  await logOut(page);

  assert.deepEqual(problems, [], 'no script errors or CSP violations');
  await context.close();
});

test('the owner deletes a photo after confirming, and the gallery reads well on a phone', async () => {
  const { page, context, problems } = await newPage({ width: 390, height: 844 });
  await logIn(page, 'admin', ADMIN_PASSWORD);
  const before = await page.locator('#gallery img').count();
  await shot(page, '10-gallery-phone');
  await page.locator('#gallery a').first().click();
  await page.waitForURL(/\/photos\//);
  await shot(page, '11-photo-phone');
  let asked = false;
  page.once('dialog', (d) => { asked = true; d.accept(); });
  await page.getByRole('button', { name: 'Delete photo' }).click();
  await page.waitForURL(`${base}/`);
  assert.ok(asked, 'asked to confirm');
  assert.equal(await page.locator('#gallery img').count(), before - 1);
  // Keyboard: the skip link is the first stop and moves focus to the content.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
  assert.deepEqual(problems, []);
  await context.close();
});
