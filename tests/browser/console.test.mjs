// The web console in a real browser: Debian's chromium, headless, driven by
// playwright-core, against a real `tollgate serve` on an ephemeral port.
//
//   TOLLGATE_BIN=target/debug/tollgate node --test tests/browser/console.test.mjs
//
// Screenshots of the main pages go to target/browser-screenshots/ (not
// committed). CHROMIUM overrides the browser's path (default /usr/bin/chromium).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = resolve(process.env.TOLLGATE_BIN ?? join(root, 'target', 'debug', 'tollgate'));
const shots = join(root, 'target', 'browser-screenshots');
const ADMIN = ['admin@example.com', 'a long admin password'];
const PASSWORD = 'correct horse battery staple';

let server;
let work;
let base;
let browser;

function freePort() {
  return new Promise((ok, fail) => {
    const probe = createServer();
    probe.on('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => ok(port));
    });
  });
}

async function waitHealthy(url) {
  for (let i = 0; i < 300; i++) {
    if (server.exitCode !== null) throw new Error(`tollgate serve exited: see ${work}/serve.log`);
    try {
      if ((await fetch(url)).ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`tollgate serve did not become healthy: see ${work}/serve.log`);
}

async function api(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(base + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: response.status, json, text };
}

async function apiLogin(email, password = PASSWORD) {
  const answer = await api('POST', '/v1/auth/login', { email, password });
  assert.equal(answer.status, 200, answer.text);
  const me = await api('GET', '/v1/auth/me', undefined, answer.json.access_token);
  return { token: answer.json.access_token, sid: me.json.sid };
}

async function register(email) {
  const answer = await api('POST', '/v1/auth/register', { email, password: PASSWORD });
  assert.equal(answer.status, 201, answer.text);
}

/** A fresh browser context (its own cookies) that fails on any CSP violation. */
async function context(options = {}) {
  const ctx = await browser.newContext({ baseURL: base, viewport: { width: 1200, height: 900 }, ...options });
  ctx.violations = [];
  ctx.on('page', (page) => {
    page.on('console', (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) ctx.violations.push(message.text());
    });
  });
  return ctx;
}

async function signIn(ctx, email, password) {
  const page = await ctx.newPage();
  await page.goto('/account/login');
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  work = mkdtempSync(join(tmpdir(), 'tollgate-browser-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const log = openSync(join(work, 'serve.log'), 'w');
  server = spawn(bin, ['serve'], {
    cwd: work,
    env: {
      ...process.env,
      TOLLGATE_ENV: 'development',
      TOLLGATE_BIND: `127.0.0.1:${port}`,
      TOLLGATE_ISSUER: base,
      TOLLGATE_BOOTSTRAP_ADMIN_EMAIL: ADMIN[0],
      TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD: ADMIN[1],
      RUST_LOG: 'info',
    },
    stdio: ['ignore', log, log],
  });
  await waitHealthy(`${base}/healthz`);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

test('an admin creates a user on pro, sees and ends their API session, and the token is refused', async () => {
  const ctx = await context();
  const page = await signIn(ctx, ...ADMIN);
  assert.equal(new URL(page.url()).pathname, '/console/');
  await shot(page, 'console-users');
  await page.getByLabel('E-mail', { exact: true }).fill('pro-user@example.com');
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Plan').selectOption('pro');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForLoadState();
  assert.match(new URL(page.url()).pathname, /^\/console\/users\/[^/]+$/);
  assert.match(await page.locator('dl.facts').innerText(), /pro/);

  const user = await apiLogin('pro-user@example.com');
  await page.reload();
  const row = page.locator('tr', { has: page.locator(`code[title="${user.sid}"]`) });
  assert.equal(await row.count(), 1, 'the session is listed');
  await shot(page, 'console-user');
  await row.getByRole('button', { name: 'End' }).click();
  await page.waitForLoadState();
  assert.equal(await page.locator(`code[title="${user.sid}"]`).count(), 0);
  const refused = await api('GET', '/v1/auth/me', undefined, user.token);
  assert.equal(refused.status, 401, refused.text);
  assert.deepEqual(ctx.violations, []);
  await ctx.close();
});

test('an admin rotates the keys (password again) and sees the old key verify_only', async () => {
  const ctx = await context();
  const page = await signIn(ctx, ...ADMIN);
  await page.goto('/console/keys');
  const before = await page.locator('tbody tr').count();
  await page.getByLabel(/Your password/).fill(ADMIN[1]);
  await page.getByRole('button', { name: 'Rotate the signing keys' }).click();
  await page.waitForLoadState();
  assert.equal(new URL(page.url()).pathname, '/console/keys');
  assert.ok((await page.locator('tbody tr').count()) > before);
  assert.ok((await page.locator('tbody .tag.verify_only').count()) >= 1, 'the old key verifies only');
  await shot(page, 'console-keys');
  await ctx.close();
});

test('an admin registers a client and sees its secret exactly once', async () => {
  const ctx = await context();
  const page = await signIn(ctx, ...ADMIN);
  await page.goto('/console/clients');
  await page.getByLabel('Client id').fill('billing');
  await page.getByLabel(/Scopes/).fill('introspect');
  await page.getByLabel(/Your password/).fill(ADMIN[1]);
  await page.getByRole('button', { name: /Register/ }).click();
  await page.waitForLoadState();
  const secret = await page.getByLabel(/Its secret/).inputValue();
  assert.match(secret, /^tgs_/);
  await shot(page, 'console-client-secret');
  // The secret works, and no page shows it again.
  const token = await fetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`billing:${secret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
  });
  assert.equal(token.status, 200);
  await page.goto('/console/clients');
  const html = await page.content();
  assert.ok(html.includes('billing'));
  assert.ok(!html.includes(secret));
  assert.ok(!html.includes('tgs_'));
  await ctx.close();
});

test('a user on /account/ ends another of their sessions', async () => {
  await register('me@example.com');
  const other = await apiLogin('me@example.com');
  const ctx = await context({ viewport: { width: 390, height: 844 } });
  const page = await signIn(ctx, 'me@example.com', PASSWORD);
  assert.equal(new URL(page.url()).pathname, '/account/');
  await shot(page, 'account-phone');
  const row = page.locator('tr', { hasText: other.sid.slice(0, 8) });
  assert.equal(await row.count(), 1);
  await row.getByRole('button', { name: 'End' }).click();
  await page.waitForLoadState();
  assert.equal(new URL(page.url()).pathname, '/account/');
  assert.equal(await page.locator('tr', { hasText: other.sid.slice(0, 8) }).count(), 0);
  assert.equal((await api('GET', '/v1/auth/me', undefined, other.token)).status, 401);
  assert.ok(await page.getByText('this one').isVisible(), 'this session lives on');
  await ctx.close();
});

test('a user without role admin gets 403 on /console/', async () => {
  await register('plain@example.com');
  const ctx = await context();
  const page = await signIn(ctx, 'plain@example.com', PASSWORD);
  const response = await page.goto('/console/');
  assert.equal(response.status(), 403);
  await shot(page, 'console-403');
  await ctx.close();
});

test('a forged form post without the CSRF token is refused', async () => {
  const ctx = await context();
  await signIn(ctx, ...ADMIN);
  // The context's request API sends the session cookies, as a forged post would.
  const forged = await ctx.request.post('/console/users', {
    form: { email: 'forged@example.com', password: PASSWORD, plan: 'pro' },
    maxRedirects: 0,
  });
  assert.equal(forged.status(), 403);
  const look = await api('GET', '/v1/admin/users', undefined,
    (await apiLogin(ADMIN[0], ADMIN[1])).token);
  assert.ok(!look.text.includes('forged@example.com'));
  await ctx.close();
});

test('the read-only views work with JavaScript disabled', async () => {
  const ctx = await context({ javaScriptEnabled: false });
  const page = await signIn(ctx, ...ADMIN);
  for (const [path, heading] of [
    ['/console/', 'Users'],
    ['/console/keys', 'Signing keys'],
    ['/console/revocations', 'Revocation feed'],
    ['/console/config', 'Configuration'],
    ['/console/usage', 'Usage'],
    ['/account/', 'My account'],
  ]) {
    const response = await page.goto(path);
    assert.equal(response.status(), 200, path);
    assert.equal(await page.locator('h1').innerText(), heading);
  }
  await shot(page, 'account-no-js');
  await page.goto('/console/config');
  await shot(page, 'console-config');
  await page.goto('/console/usage');
  await shot(page, 'console-usage');
  assert.deepEqual(ctx.violations, []);
  await ctx.close();
});
