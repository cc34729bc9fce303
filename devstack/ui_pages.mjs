// The Temporal Web UI (2.54) as an engineer uses it, driven by npm playwright-core on Debian's
// /usr/bin/chromium (no browser download). Shared by devstack/ui_capture.mjs (the guide's screenshots)
// and tests/ui_send_update.mjs (the test of the update dialog).
import { chromium } from 'playwright-core';

export const VIEWPORT = { width: 1280, height: 800 };
export const CHROMIUM_FLAGS = [
  '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

export async function launch(executablePath = '/usr/bin/chromium') {
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_FLAGS });
}

export function caseUrl(uiUrl, namespace, caseId) {
  return `${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(caseId)}`;
}

/** Open a case's page on one of its tabs (timeline, queries, user-metadata, ...) scrolled to the tabs. */
export async function openTab(page, url, tab) {
  if (page.url() !== url) await page.goto(url);
  const link = page.getByTestId(`${tab}-tab`);
  await link.click();
  await link.evaluate((el) => el.scrollIntoView({ block: 'start' }));
}

/**
 * More Actions → Send an Update: pick the update, type its JSON input, submit. Returns the refusal
 * (a validator's message) once the dialog shows it, or null when the dialog closed (the update was
 * accepted). The dialog stays open on a refusal, as an engineer sees it.
 */
export async function sendUpdate(page, name, payload, { timeout = 20_000 } = {}) {
  await page.getByRole('button', { name: 'More Actions' }).click();
  await page.locator('[data-testid=update-button]:visible').click();
  const dialog = page.getByRole('dialog', { name: 'Send an Update' });
  await dialog.getByTestId('update-select-button').click();
  // an option's accessible name is the update's name, then its description when it has one
  await page.getByRole('option', { name: new RegExp(`^${name}(\\s|$)`) }).click();
  await dialog.locator('.cm-content').click();
  // the editor closes brackets and quotes by itself: insert the text rather than type it
  await page.keyboard.insertText(JSON.stringify(payload));
  // a click straight from the editor only blurs it: leave the editor first
  await dialog.getByText('Single JSON payload supported.').click();
  const answered = page.waitForResponse(
    (r) => r.request().method() === 'POST' && r.url().includes(`/update/${encodeURIComponent(name)}`),
    { timeout },
  );
  await dialog.getByTestId('confirm-modal-button').click();
  const response = await answered;
  const body = await response.json().catch(() => ({}));
  // a refused update comes back as HTTP 200 with outcome.failure (or as an HTTP error with a message)
  const refusal = response.ok() ? body?.outcome?.failure?.message : body?.message ?? `HTTP ${response.status()}`;
  if (!refusal) {
    await dialog.waitFor({ state: 'hidden', timeout });
    return null;
  }
  await dialog.getByText(refusal, { exact: false }).first().waitFor({ timeout });
  return refusal;
}
