// For tests/test_api_hardening.py: open the API's /docs (Swagger UI) and /redoc in headless /usr/bin/chromium
// with every request to another origin blocked, wait until each has rendered the spec's operations, and print
// one JSON line: {swagger: {operations, requests, errors}, redoc: {...}}. `requests` are the blocked requests
// (anything not to the API's own origin), `errors` console errors, page errors and failed requests.
// One argument: the API's base URL (http://127.0.0.1:PORT).
import { launch } from '../devstack/ui_pages.mjs';

const base = process.argv[2];
const origin = new URL(base).origin;

async function visit(browser, path, selector) {
  const requests = [];
  const errors = [];
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(30_000);
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + '/') || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
    requests.push(url);
    return route.abort();
  });
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(`console: ${msg.text()}`); });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('requestfailed', (req) => errors.push(`requestfailed: ${req.url()}`));
  await page.goto(base + path, { waitUntil: 'load' });
  await page.locator(selector).first().waitFor().catch((err) => errors.push(`not rendered: ${err.message}`));
  const operations = await page.locator(selector).count();
  await page.close();
  return { operations, requests, errors };
}

const browser = await launch();
try {
  const swagger = await visit(browser, '/docs', '.opblock');
  const redoc = await visit(browser, '/redoc', '[data-section-id^="operation/"]');
  console.log(JSON.stringify({ swagger, redoc }));
} finally {
  await browser.close();
}
