// For tests/test_ui_update_dialog.py: open a case in the real Web UI and send one update through
// More Actions → Send an Update (devstack/ui_pages.mjs, the same path the guide's screenshots take).
// One argument, JSON: {ui_url, namespace, case_id, update, payload}. Prints {"refusal": text | null}.
import { VIEWPORT, caseUrl, launch, sendUpdate } from '../devstack/ui_pages.mjs';

const { ui_url: uiUrl, namespace, case_id: caseId, update, payload } = JSON.parse(process.argv[2]);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: VIEWPORT });
  page.setDefaultTimeout(20_000);
  await page.goto(caseUrl(uiUrl, namespace, caseId));
  await page.getByTestId('workflow-id-heading').waitFor();
  const refusal = await sendUpdate(page, update, payload);
  console.log(JSON.stringify({ refusal }));
} finally {
  await browser.close();
}
