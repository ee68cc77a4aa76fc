// Browser test of the dashboard, in Debian's headless Chromium through playwright-core.
//
// Started by the Rust test `warren-e2e`'s `dashboard` binary, which runs `warren up` in a
// fresh namespace and passes its addresses:
//   DASHBOARD_URL  the dashboard (http://127.0.0.1:port)
//   API_URL        the submitter (jobs are submitted there, as a client would)
//   SCREENSHOTS    folder for dashboard-*.png
//   CHROMIUM       the browser (default /usr/bin/chromium)
//   TOKEN          an admin token of the tokens file both services were started with: jobs
//                  are submitted with it, and the browser signs in with it
// It prints one line `RESULT {json}` with the counts the Overview showed at the end, which the
// Rust side compares with Redis. Any failed expectation throws, and node exits non-zero.

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import path from 'node:path';

const DASHBOARD = process.env.DASHBOARD_URL;
const API = process.env.API_URL;
const SHOTS = process.env.SCREENSHOTS;
const TOKEN = process.env.TOKEN;
assert.ok(DASHBOARD && API && SHOTS && TOKEN, 'DASHBOARD_URL, API_URL, SCREENSHOTS and TOKEN must be set');
const WAIT = { timeout: 30_000 };
const AUTH = { authorization: `Bearer ${TOKEN}` };

async function submit(spec) {
  const response = await fetch(`${API}/v1/jobs`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...AUTH }, body: JSON.stringify(spec),
  });
  const body = await response.text();
  assert.equal(response.status, 202, `submitting ${JSON.stringify(spec)}: ${body}`);
  return JSON.parse(body).id;
}

async function jobState(id) {
  return (await (await fetch(`${API}/v1/jobs/${id}`, { headers: AUTH })).json()).state;
}

const row = (page, id) => page.locator(`tr[data-job-id="${id}"]`);

async function expectRowState(page, id, state) {
  await row(page, id).locator('[data-testid=job-state]', { hasText: state }).waitFor(WAIT);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `dashboard-${name}.png`), fullPage: true });
}

async function openView(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.locator('#view[data-ready=true]').waitFor(WAIT);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on('pageerror', (error) => { throw error; });

  // Sign-in: without a token the API answers 401 and the page asks for one; a wrong token
  // is refused, the admin token lets the page in (an HttpOnly cookie from then on).
  await page.goto(`${DASHBOARD}/#/overview`);
  await page.locator('[data-testid=token]').waitFor(WAIT);
  await page.locator('[data-testid=token]').fill('not-a-token');
  await page.locator('[data-testid=sign-in]').click();
  await page.locator('[data-testid=sign-in-problem]', { hasText: 'not a token' }).waitFor(WAIT);
  await page.locator('[data-testid=token]').fill(TOKEN);
  await shot(page, 'sign-in');
  await page.locator('[data-testid=sign-in]').click();
  await page.locator('[data-testid=who]', { hasText: 'e2e-admin' }).waitFor(WAIT);
  assert.equal(await page.evaluate(() => document.cookie), '', 'the token cookie is HttpOnly');

  // Overview: loads, goes live, shows the worker.
  await page.locator('[data-testid=live-status][data-state=live]').waitFor(WAIT);
  await page.locator('#view[data-ready=true]').waitFor(WAIT);
  await page.locator('[data-testid=workers-live]', { hasText: /^[1-9]/ }).waitFor(WAIT);
  // A reload would clear this: everything below must happen without one.
  await page.evaluate(() => { window.noReload = true; });

  // Jobs: submitted jobs appear and change state live.
  await openView(page, '#/jobs');
  // The backlog line (the admin's token sees every tenant's) comes from the scheduler.
  await page.locator('[data-testid=tenant-backlog]', { hasText: /^Backlog: \d+ pending, \d+ running/ }).waitFor(WAIT);
  const quick = await submit({ task: 'command', args: { argv: ['echo', 'hello from warren'] }, tenant: 'alice' });
  const logged = await submit({
    task: 'command', tenant: 'bob',
    args: { argv: ['sh', '-c', 'for i in 1 2 3 4 5; do echo "line $i"; sleep 0.4; done'] },
  });
  const slow = await submit({ task: 'command', args: { argv: ['sleep', '60'] }, tenant: 'alice' });
  const failing = await submit({ task: 'command', args: { argv: ['sh', '-c', 'echo boom >&2; exit 3'] }, tenant: 'bob' });
  for (const id of [quick, logged, slow, failing]) await row(page, id).waitFor(WAIT);
  await expectRowState(page, quick, 'succeeded');
  await expectRowState(page, failing, 'failed');
  await expectRowState(page, slow, 'running');

  // Cancel the running job from the UI, with confirmation.
  await row(page, slow).locator('[data-testid=cancel]').click();
  await page.locator('[data-testid=confirm-dialog][open]').waitFor(WAIT);
  await shot(page, 'confirm');
  await page.locator('[data-testid=confirm-yes]').click();
  await expectRowState(page, slow, 'cancelled');
  assert.equal(await jobState(slow), 'cancelled', 'the cancel reached Redis');
  await expectRowState(page, logged, 'succeeded');
  await shot(page, 'jobs');

  // Filtering by state.
  await openView(page, '#/jobs?state=failed');
  await row(page, failing).waitFor(WAIT);
  assert.equal(await row(page, quick).count(), 0, 'a succeeded job is not listed under failed');
  // Bulk retry of every failed job (the server counts them first, and the dialog says how
  // many): one more failing job runs (and fails again).
  await page.locator('[data-testid=bulk-retry]').click();
  await page.locator('[data-testid=confirm-dialog][open]').waitFor(WAIT);
  assert.match(await page.locator('#confirm-text').textContent(), /^Retry 1 job\(s\) matching state=failed\?/);
  await page.locator('[data-testid=confirm-yes]').click();
  await page.locator('tr[data-job-id] [data-testid=job-state]', { hasText: 'failed' }).nth(1).waitFor(WAIT);

  // (After the bulk retry of failed jobs, which it would join.) Fails twice (a second later the retry), then its attempts have run out: a dead letter.
  const dying = await submit({
    task: 'command', tenant: 'dave', max_attempts: 2, retry_backoff: { strategy: 'fixed', initial_s: 1 },
    args: { argv: ['sh', '-c', 'echo dying >&2; exit 1'] },
  });

  // Filters by task, label and creation time, set in the form; then a bulk cancel of the
  // whole filtered set, after a confirmation that says how many jobs.
  const batch = [];
  for (let i = 0; i < 3; i += 1) {
    batch.push(await submit({ task: 'command', args: { argv: ['sleep', '60'] }, tenant: 'carol', labels: { batch: 'b1' } }));
  }
  const unlabelled = await submit({ task: 'command', args: { argv: ['echo', 'not in the batch'] }, tenant: 'carol' });
  await openView(page, '#/jobs');
  await page.locator('[data-testid=filter-task]').fill('command');
  await page.locator('[data-testid=filter-label]').fill('batch=b1');
  await page.locator('[data-testid=filter-within]').selectOption('15m');
  await page.locator('[data-testid=filter-apply]').click();
  for (const id of batch) await row(page, id).waitFor(WAIT);
  assert.equal(await row(page, unlabelled).count(), 0, 'the label filter leaves the unlabelled job out');
  assert.equal(await page.locator('tr[data-job-id]').count(), 3, 'only the batch is listed');
  await page.locator('[data-testid=bulk-cancel]').click();
  await page.locator('[data-testid=confirm-dialog][open]').waitFor(WAIT);
  assert.match(await page.locator('#confirm-text').textContent(), /^Cancel 3 job\(s\) matching task=command, label=batch=b1, created in the last 15m\?/);
  await shot(page, 'bulk-confirm');
  await page.locator('[data-testid=confirm-yes]').click();
  for (const id of batch) await expectRowState(page, id, 'cancelled');
  for (const id of batch) assert.equal(await jobState(id), 'cancelled', 'the bulk cancel reached Redis');
  assert.equal(await jobState(unlabelled) === 'cancelled', false, 'a job outside the filter is left alone');
  // The cancel is in the job's timeline: what, by whom, from where.
  await openView(page, `#/job/${batch[0]}`);
  await page.locator('[data-testid=timeline-action]', { hasText: 'cancel by e2e-admin via dashboard (bulk)' }).waitFor(WAIT);

  // Dead letters: the job whose attempts ran out is listed with its reason, and is requeued
  // after a confirmation; the requeue shows in its timeline.
  await openView(page, '#/dead');
  const deadRow = page.locator(`tr[data-dead-id="${dying}"]`);
  await deadRow.locator('[data-testid=dead-reason]', { hasText: 'attempts exhausted (2 of 2)' }).waitFor(WAIT);
  await shot(page, 'dead');
  await deadRow.locator('[data-testid=requeue]').click();
  await page.locator('[data-testid=confirm-dialog][open]').waitFor(WAIT);
  assert.match(await page.locator('#confirm-text').textContent(), new RegExp(`^Requeue dead job ${dying}\\?`));
  await page.locator('[data-testid=confirm-yes]').click();
  await page.locator('#toast', { hasText: 'requeued as job' }).waitFor(WAIT);
  await deadRow.waitFor({ state: 'detached', ...WAIT });
  await openView(page, `#/job/${dying}`);
  await page.locator('[data-testid=timeline-action]', { hasText: /^requeue by e2e-admin via dashboard \(as / }).waitFor(WAIT);

  // Job detail: the live log of a running job.
  const tailed = await submit({
    task: 'command', tenant: 'bob',
    args: { argv: ['sh', '-c', 'for i in 1 2 3 4 5 6; do echo "tick $i"; sleep 0.5; done'] },
  });
  await openView(page, `#/job/${tailed}`);
  await page.locator('[data-testid=log]', { hasText: 'tick 1' }).waitFor(WAIT);
  await page.locator('[data-testid=log]', { hasText: 'tick 6' }).waitFor(WAIT);
  await page.locator('[data-testid=log-state]', { hasText: 'ended (succeeded)' }).waitFor(WAIT);
  await page.locator('[data-testid=job-details] [data-testid=job-state]', { hasText: 'succeeded' }).waitFor(WAIT);
  await shot(page, 'job');

  // Workers.
  await openView(page, '#/workers');
  await page.locator('[data-testid=worker-status]', { hasText: 'live' }).first().waitFor(WAIT);
  await shot(page, 'workers');

  // Queues: intake is there, with its consumer (the scheduler).
  await openView(page, '#/queues');
  await page.locator('tr[data-queue=intake] [data-testid=queue-messages]', { hasText: /^\d+$/ }).waitFor(WAIT);
  await shot(page, 'queues');

  // Scheduler (renders whatever Redis holds, or says there is nothing).
  await openView(page, '#/scheduler');
  await page.locator('[data-testid=scheduler] > *').first().waitFor(WAIT);
  await shot(page, 'scheduler');

  // Overview once everything has finished: its numbers go to the Rust side, which checks
  // them against Redis.
  await openView(page, '#/overview');
  for (const state of ['queued', 'scheduled', 'running', 'retrying']) {
    await page.locator(`[data-testid=count-${state}]`, { hasText: /^0$/ }).waitFor(WAIT);
  }
  // quick, logged, tailed and the job outside the bulk cancel's filter.
  await page.locator('[data-testid=count-succeeded]', { hasText: /^4$/ }).waitFor(WAIT);
  await page.locator('[data-testid=run-p95]', { hasText: /\d+(\.\d)? m?s$/ }).waitFor(WAIT);
  // The backlog comes from the active scheduler's status (nothing is pending by now).
  await page.locator('[data-testid=backlog]', { hasText: /0 pending, 0 running; policy fifo/ }).waitFor(WAIT);
  await shot(page, 'overview');
  assert.equal(await page.evaluate(() => window.noReload), true, 'the page was never reloaded');

  const counts = {};
  for (const state of ['queued', 'scheduled', 'running', 'retrying', 'succeeded', 'failed', 'timed_out', 'cancelled']) {
    counts[state] = Number(await page.locator(`[data-testid=count-${state}]`).textContent());
  }
  const finished = {
    succeeded: Number(await page.locator('[data-testid=finished-succeeded]').textContent()),
    failed: Number(await page.locator('[data-testid=finished-failed]').textContent()),
  };
  console.log(`RESULT ${JSON.stringify({ counts, finished, jobs: { quick, logged, slow, failing, dying, tailed, batch } })}`);
} finally {
  await browser.close();
}
