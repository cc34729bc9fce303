// Screenshots of the real Temporal Web UI for docs/engineers.md, run by `python -m devstack.screenshots`.
// One argument, JSON: {ui_url, namespace, out_dir, cases: {four_eyes, single, other}, chromium}.
import os from 'node:os';
import path from 'node:path';

import { VIEWPORT, caseUrl, launch, openTab, sendUpdate } from './ui_pages.mjs';

const plan = JSON.parse(process.argv[2] ?? '{}');
if (!plan.ui_url || !plan.out_dir || !plan.cases?.four_eyes || !plan.cases?.single) {
  console.error('usage: node devstack/ui_capture.mjs \'{"ui_url": ..., "namespace": ..., "out_dir": ..., "cases": {"four_eyes": ..., "single": ...}}\'');
  process.exit(2);
}
const ns = plan.namespace ?? 'default';
const SAVED_VIEW = 'bob - to approve';
const QUERY = "CaseStatus = 'AWAITING_APPROVAL' AND AssignedTo = 'bob'";
// The UI keeps its column choices per namespace in localStorage under this key (Web UI 2.54); the
// Workflow ID goes last so that the long case ids do not push the case's columns off the screen.
const COLUMNS_KEY = 'namespace-workflow-table-columns';
const COLUMNS = ['Status', 'Pattern', 'AmountUsd', 'AssignedTo', 'SlaDeadline', 'Workflow ID'];

const step = (message) => console.log(`ui_capture: ${message}`);

async function shot(page, name, { tabsOnTop = false } = {}) {
  if (tabsOnTop) await page.getByTestId('timeline-tab').evaluate((el) => el.scrollIntoView({ block: 'start' }));
  await page.waitForTimeout(400); // let transitions settle
  const file = path.join(plan.out_dir, name);
  await page.screenshot({ path: file });
  step(`wrote ${file}`);
}

/** Wait until some frame of the page shows ``text`` (the UI renders the details' markdown in an iframe). */
async function shown(page, text, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      const body = await frame.evaluate(() => document.body?.innerText ?? '').catch(() => '');
      if (body.includes(text)) return;
    }
    await page.waitForTimeout(250);
  }
  throw new Error(`the page did not show ${JSON.stringify(text)} within ${timeout / 1000} s`);
}

const browser = await launch(plan.chromium);
let page;
try {
  const context = await browser.newContext({ viewport: VIEWPORT });
  await context.addInitScript(([key, namespace, labels]) => {
    if (!localStorage.getItem(key)) {
      localStorage.setItem(key, JSON.stringify({ [namespace]: labels.map((label) => ({ label })) }));
    }
  }, [COLUMNS_KEY, ns, COLUMNS]);
  page = await context.newPage();
  page.setDefaultTimeout(30_000);

  step(`workflow list: ${QUERY}, saved as the view "${SAVED_VIEW}"`);
  await page.goto(`${plan.ui_url}/namespaces/${ns}/workflows?query=${encodeURIComponent(QUERY)}`);
  await page.getByText(plan.cases.four_eyes).filter({ visible: true }).first().waitFor();
  await page.getByText(plan.cases.single).filter({ visible: true }).first().waitFor();
  await page.getByTestId('create-view-button').click();
  await page.getByTestId('workflow-save-view-modal-input').fill(SAVED_VIEW);
  await page.locator('[data-testid=confirm-modal-button]:visible').click();
  await page.getByTestId('saved-views-button').getByText(SAVED_VIEW).waitFor();
  await shot(page, '1-cases-due.png');

  const single = caseUrl(plan.ui_url, ns, plan.cases.single);
  step('a case: summary and current details (User Metadata)');
  await openTab(page, single, 'user-metadata');
  await page.getByText('Current Details').filter({ visible: true }).first().waitFor();
  await shown(page, 'AWAITING_APPROVAL: waiting for');
  await shot(page, '2-case-summary.png', { tabsOnTop: true });

  step('the same case: the evidence query');
  await openTab(page, single, 'queries');
  await page.getByTestId('query-select-button').click();
  await page.getByRole('option', { name: /^evidence(\s|$)/ }).click();
  await page.getByRole('button', { name: 'Run Query' }).click();
  await shown(page, 'claimant_user_id'); // the result's editor renders only the lines in view
  await shot(page, '3-evidence-query.png', { tabsOnTop: true });

  step('the same case: approve typed in as an engineer not on the roster, refused in the dialog');
  await openTab(page, single, 'timeline');
  const refusal = await sendUpdate(page, 'approve', { engineer: 'mallory', note: 'sender checked' });
  if (!refusal) throw new Error('the approval by mallory was accepted: the roster check is missing');
  step(`refused: ${refusal}`);
  await shot(page, '4-update-refused.png');
  await page.keyboard.press('Escape');

  const fourEyes = caseUrl(plan.ui_url, ns, plan.cases.four_eyes);
  step('the four-eyes case after the first approval: the timeline');
  await openTab(page, fourEyes, 'timeline');
  await page.getByText('Timeline', { exact: true }).last().evaluate((el) => el.scrollIntoView({ block: 'start' }));
  await shot(page, '5-four-eyes-timeline.png');

  step('the four-eyes case: current details say it waits for a second approval');
  await openTab(page, fourEyes, 'user-metadata');
  await shown(page, 'waiting for a second approval');
  await shot(page, '6-second-approval-waits.png', { tabsOnTop: true });

  step('the four-eyes case: a second approval typed into the UI (unattested) is refused');
  const unattested = await sendUpdate(page, 'approve', { engineer: 'chen', note: 'looks right' });
  if (!unattested) throw new Error('an unattested second approval was accepted');
  step(`refused: ${unattested}`);
  await shot(page, '7-unattested-second-refused.png');
} catch (error) {
  const file = path.join(os.tmpdir(), 'ui_capture-failed.png');
  await page?.screenshot({ path: file }).catch(() => {});
  console.error(`ui_capture: failed; the page as it was: ${file}`);
  throw error;
} finally {
  await browser.close();
}
