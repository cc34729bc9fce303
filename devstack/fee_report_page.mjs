// Open a fee report HTML file (services/fee_report_html.py) in headless /usr/bin/chromium with every
// network request blocked, wait for the plotly charts, and print what was seen as one JSON line:
// {charts, rendered, tables, requests, errors}. With a second argument, also save a full-page screenshot
// there. Used by tests/test_fee_report_html.py and python -m devstack.fee_report_screenshot.
import { pathToFileURL } from 'node:url';
import { launch } from './ui_pages.mjs';

const [file, screenshot] = process.argv.slice(2);
const requests = [];
const errors = [];
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(30_000);
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('file:') || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
    requests.push(url);
    return route.abort();
  });
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(`console: ${msg.text()}`); });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('requestfailed', (req) => {
    if (!req.url().startsWith('file:')) errors.push(`requestfailed: ${req.url()}`);
  });
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  const charts = await page.locator('.plotly-graph-div').count();
  await page.waitForFunction(
    (n) => document.querySelectorAll('.plotly-graph-div svg.main-svg').length >= n && n > 0,
    charts, { timeout: 30_000 },
  ).catch(() => {});
  const rendered = await page.evaluate(
    () => [...document.querySelectorAll('.plotly-graph-div')].filter((d) => d.querySelector('svg.main-svg')).length,
  );
  const tables = await page.locator('table').count();
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ charts, rendered, tables, requests, errors }));
} finally {
  await browser.close();
}
