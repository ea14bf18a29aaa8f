// End-to-end test of the console: a live `berth serve` in token mode,
// Debian's chromium driven by playwright-core, skopeo for pushes and pulls.
// Takes a screenshot of each main page: into a temporary directory, or into
// the directory CONSOLE_SCREENSHOTS names (`CONSOLE_SCREENSHOTS=docs/screenshots`
// refreshes the committed ones), so a test run leaves the tree as it was.
//
//   BERTH_BIN=target/release/berth node console/e2e/run.mjs
//
// Prints one line per check and closes with "N passed, N failed".
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { writeLayout } from './layout.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const bin = resolve(root, process.env.BERTH_BIN ?? 'target/release/berth');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'berth-console-e2e-'));
const shots = process.env.CONSOLE_SCREENSHOTS
  ? resolve(process.env.CONSOLE_SCREENSHOTS)
  : join(tmp, 'screenshots');
const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now()}`;

let passed = 0;
let failed = 0;
async function check(name, f) {
  try {
    await f();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${(e && e.message) || e}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// ---------------------------------------------------------------- the server
function startBerth() {
  writeFileSync(join(tmp, 'berth.toml'), '[auth]\nmode = "token"\n');
  // Six recorded days before today, so that the storage chart has a history.
  mkdirSync(join(tmp, 'data'), { recursive: true });
  const day = (k) => new Date(Date.now() - k * 86400_000).toISOString().slice(0, 10);
  const lines = [6, 5, 4, 3, 2, 1].map((k) => JSON.stringify({ date: day(k), namespaces: { team: 300 + (6 - k) * 150 } }));
  writeFileSync(join(tmp, 'data', 'usage-daily.jsonl'), `${lines.join('\n')}\n`);
  const child = spawn(bin, ['serve', '--config', join(tmp, 'berth.toml'), '--addr', '127.0.0.1:0', '--data-dir', join(tmp, 'data')], {
    env: { ...process.env, BERTH_ADMIN_PASSWORD: password, RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => (log = (log + d).slice(-4000)));
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`berth did not start: ${log}`)), 30_000);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /berth listening on http:\/\/(127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        res({ child, host: m[1] });
      }
    });
    child.on('exit', (code) => rej(new Error(`berth exited with ${code}: ${log}`)));
  });
}

// ---------------------------------------------------------------- skopeo
const authFile = join(tmp, 'auth.json');
writeFileSync(authFile, '{}');
const skopeoEnv = { ...process.env, REGISTRY_AUTH_FILE: authFile };
async function skopeo(...args) {
  try {
    const r = await run('skopeo', ['--insecure-policy', ...args], { env: skopeoEnv, timeout: 120_000 });
    return { ok: true, out: r.stdout, err: r.stderr };
  } catch (e) {
    return { ok: false, out: e.stdout ?? '', err: e.stderr ?? String(e) };
  }
}

// ---------------------------------------------------------------- helpers
const basic = (u, p) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
async function apiGet(host, path) {
  const r = await fetch(`http://${host}${path}`, { headers: { Authorization: basic('admin', password) } });
  return { status: r.status, body: await r.json().catch(() => null) };
}
function formatBytes(n) {
  // Same rule as src/format.ts (unit-tested there).
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  if (i === 0) return `${n} B`;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`;
}

async function main() {
  mkdirSync(shots, { recursive: true });
  const { child, host } = await startBerth();
  const base = `http://${host}`;
  const layout = join(tmp, 'layout');
  const images = writeLayout(layout, [
    { tag: '1.0', file: 'hello.txt', content: 'hello from berth\n'.repeat(40), createdBy: 'COPY hello.txt / # buildkit' },
    { tag: 'old', file: 'old.txt', content: 'an older build\n', createdBy: 'COPY old.txt / # buildkit' },
  ]);
  const userDir = join(tmp, 'chromium-profile');
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  // In-app navigation (the console's own history router): a reload would
  // sign the tab out, since credentials live only in the page's memory.
  const nav = (path) => page.evaluate((p) => {
    history.pushState(null, '', p);
    dispatchEvent(new PopStateEvent('popstate'));
  }, path);
  const cspErrors = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) cspErrors.push(m.text());
  });
  page.on('pageerror', (e) => cspErrors.push(`page error: ${e.message}`));
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  try {
    await check('skopeo pushes two tags as admin', async () => {
      for (const tag of ['1.0', 'old']) {
        const r = await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `admin:${password}`, `oci:${layout}:${tag}`, `docker://${host}/team/app:${tag}`);
        assert(r.ok, `skopeo copy ${tag}: ${r.err}`);
      }
    });

    await check('anonymous skopeo pull of the private namespace is refused', async () => {
      const r = await skopeo('inspect', '--tls-verify=false', '--no-creds', `docker://${host}/team/app:1.0`);
      assert(!r.ok, 'anonymous inspect succeeded on a private namespace');
    });

    await check('sign-in page, wrong password shows the error in words', async () => {
      await page.goto(`${base}/`);
      await page.getByLabel('User name').fill('admin');
      await page.getByLabel('Password').fill('wrong-password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').filter({ hasText: 'Wrong user name, password or token' }).waitFor({ timeout: 10_000 });
      await page.getByLabel('Password').fill('');
      await shot('signin');
    });

    await check('sign in with the keyboard only; who am I shows admin', async () => {
      await page.getByLabel('User name').focus();
      await page.keyboard.press('Control+A');
      await page.keyboard.type('admin');
      await page.keyboard.press('Tab');
      await page.keyboard.type(password);
      await page.keyboard.press('Enter');
      await page.getByTestId('whoami').filter({ hasText: 'admin' }).waitFor({ timeout: 10_000 });
      const stored = await page.evaluate(() => ({ cookie: document.cookie, local: Object.keys(localStorage).length, session: Object.keys(sessionStorage) }));
      assert(stored.cookie === '' && stored.local === 0, `token must not be in a cookie or localStorage: ${JSON.stringify(stored)}`);
      assert(stored.session.length === 0, `credentials must stay in memory, not sessionStorage: ${JSON.stringify(stored)}`);
    });

    await check('namespaces list shows team with its size and image count', async () => {
      const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'team', exact: true }) });
      await row.waitFor({ timeout: 10_000 });
      const ns = await apiGet(host, '/api/v1/namespaces/team');
      const text = await row.innerText();
      assert(text.includes(formatBytes(ns.body.size)), `row "${text}" lacks size ${formatBytes(ns.body.size)}`);
      assert(/private/.test(text) && /ready/.test(text), `row "${text}" lacks visibility/status`);
      await shot('namespaces');
    });

    await check('deep link /ns/team/app loads the repository with tag, size and exact pull command', async () => {
      await nav(`/ns/team/app`);
      const pull = page.getByTestId('pull-1.0');
      await pull.waitFor({ timeout: 10_000 });
      const cmd = await pull.innerText();
      assert(cmd === `docker pull ${host}/team/app:1.0`, `pull command is "${cmd}"`);
      const repo = await apiGet(host, '/api/v1/namespaces/team/repositories/app');
      const size = await page.getByTestId('repo-size').innerText();
      assert(size === formatBytes(repo.body.repository.size), `size "${size}" vs API ${repo.body.repository.size}`);
      const art = repo.body.artifacts.find((a) => a.tags.includes('1.0'));
      assert(art && art.digest === images['1.0'].digest, 'API artifact digest differs from the pushed one');
      await page.getByText(`docker pull ${host}/team/app@${images['1.0'].digest}`).waitFor();
      await page.getByText('Layers (1)').first().click();
      await shot('repository');
    });

    await check('delete a tag with typed confirmation', async () => {
      await page.getByRole('button', { name: 'Delete tag old' }).click();
      const dialog = page.getByRole('dialog');
      const confirm = dialog.getByRole('button', { name: 'Delete tag' });
      assert(await confirm.isDisabled(), 'confirm button enabled before typing the name');
      await dialog.getByLabel('Type old to confirm').fill('old');
      await confirm.click();
      await page.getByTestId('tag-old').waitFor({ state: 'detached', timeout: 10_000 });
      const tags = await apiGet(host, '/api/v1/namespaces/team/repositories/app/tags');
      assert(tags.body.tags.map((t) => t.name).join(',') === '1.0', `tags left: ${JSON.stringify(tags.body.tags)}`);
    });

    await check('make the namespace public, then pull anonymously with skopeo', async () => {
      await nav(`/ns/team`);
      await page.getByRole('radio', { name: /Public: anyone may pull/ }).check();
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByRole('status').filter({ hasText: 'Saved' }).waitFor({ timeout: 10_000 });
      const ns = await apiGet(host, '/api/v1/namespaces/team');
      assert(ns.body.is_public === true, 'namespace is not public after saving');
      const r = await skopeo('copy', '--src-tls-verify=false', '--src-no-creds', `docker://${host}/team/app:1.0`, `oci:${join(tmp, 'pulled')}:1.0`);
      assert(r.ok, `anonymous pull failed: ${r.err}`);
      await page.getByRole('link', { name: 'team/app', exact: true }).waitFor();
      await shot('namespace');
    });

    await check('run garbage collection as a dry run and see its report', async () => {
      await nav(`/settings`);
      const dry = page.getByLabel('Dry run');
      assert(await dry.isChecked(), 'dry run should be the default');
      await page.getByRole('button', { name: 'Run now' }).click();
      const run = page.getByTestId('gc-run').first();
      await run.filter({ hasText: 'dry run' }).filter({ hasText: 'succeeded' }).waitFor({ timeout: 30_000 });
      const text = await run.innerText();
      assert(/Blobs that would go/i.test(text) && /Bytes it would free/i.test(text), `report: ${text}`);
      const runs = await apiGet(host, '/api/v1/gc/runs');
      assert(runs.body.runs[0].dry_run === true && runs.body.runs[0].report, 'API shows no dry-run report');
      await page.getByLabel(/CIDRs allowed/).fill('10.0.0.0/8');
      await page.getByRole('note').filter({ hasText: 'Lock-out warning' }).waitFor();
      await page.getByLabel(/CIDRs allowed/).blur();
      await shot('settings');
      await page.getByLabel(/CIDRs allowed/).fill('');
    });

    let secret = '';
    await check('create a scoped token; its secret is shown once', async () => {
      await nav(`/access`);
      await page.getByLabel('Name', { exact: true }).fill('ci');
      await page.getByLabel('Repositories (pattern)').fill('team/*');
      await page.getByLabel('push', { exact: true }).check();
      await page.getByRole('button', { name: 'Create token' }).click();
      const value = page.getByTestId('token-secret-value');
      await value.waitFor({ timeout: 10_000 });
      secret = await value.innerText();
      assert(secret.startsWith('berth_'), `secret "${secret.slice(0, 8)}…"`);
      await page.getByRole('button', { name: 'I have copied it' }).click();
      await page.getByRole('cell', { name: 'ci', exact: true }).waitFor();
      await shot('access');
      await nav('/');
      await nav('/access');
      await page.getByRole('cell', { name: 'ci', exact: true }).waitFor({ timeout: 10_000 });
      assert((await page.getByTestId('token-secret').count()) === 0, 'secret shown again after leaving the page');
    });

    await check('the scoped token pushes with skopeo, and cannot push outside its pattern', async () => {
      assert(secret, 'no secret from the previous step');
      const ok = await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `ci:${secret}`, `oci:${layout}:1.0`, `docker://${host}/team/app:ci`);
      assert(ok.ok, `push with the token failed: ${ok.err}`);
      const tags = await apiGet(host, '/api/v1/namespaces/team/repositories/app/tags');
      assert(tags.body.tags.some((t) => t.name === 'ci'), 'tag ci not in the API after the push');
      const bad = await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `ci:${secret}`, `oci:${layout}:1.0`, `docker://${host}/other/app:1.0`);
      assert(!bad.ok, 'the token pushed outside team/*');
    });

    await check('audit log, and storage page with the size chart and daily history', async () => {
      await nav(`/audit`);
      await page.getByRole('cell', { name: 'token.create' }).first().waitFor({ timeout: 10_000 }).catch(async () => {
        await page.getByRole('table').waitFor({ timeout: 5_000 });
      });
      await shot('audit');
      await nav(`/storage`);
      await page.getByRole('link', { name: 'team' }).waitFor({ timeout: 10_000 });
      const chart = page.getByTestId('usage-chart');
      await chart.waitFor({ timeout: 10_000 });
      const legend = await chart.locator('figcaption').innerText();
      assert(/team · 1\.\d\d KiB/.test(legend), `legend: ${legend}`);
      const points = await chart.locator('circle').count();
      assert(points === 7, `${points} points for six recorded days and now`);
      await shot('storage');
    });

    await check('phone width: the repository page fits without sideways scrolling', async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await nav(`/ns/team/app`);
      await page.getByTestId('pull-1.0').waitFor({ timeout: 10_000 });
      const w = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, win: window.innerWidth }));
      assert(w.doc <= w.win + 1, `page is ${w.doc}px wide in a ${w.win}px window`);
      await shot('repository-phone');
      await page.setViewportSize({ width: 1280, height: 860 });
    });

    await check('sign out forgets the session', async () => {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      const keys = await page.evaluate(() => Object.keys(sessionStorage));
      assert(keys.length === 0, 'something stored in sessionStorage');
      await page.goto(`${base}/ns/team/app`);
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
    });

    await check('sign in with the scoped token', async () => {
      await page.getByRole('button', { name: 'Scoped token' }).click();
      await page.getByLabel('Token secret').fill(secret);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByTestId('whoami').filter({ hasText: 'ci' }).waitFor({ timeout: 10_000 });
    });

    await check('no CSP violation or script error in the whole run', async () => {
      assert(cspErrors.length === 0, cspErrors.join(' | '));
    });
  } finally {
    await ctx.close().catch(() => {});
    child.kill('SIGTERM');
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL setup: ${e.stack ?? e}`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
