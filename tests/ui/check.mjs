// Browser check of the Prefect UI: headless Chromium, driven by playwright-core.
//
//   node tests/ui/check.mjs BASE_URL FLOW_RUN_ID FLOW_RUN_NAME SCREENSHOT_DIR
//
// On a server with an auth string (PREFECT_AUTH_STRING set), logs in through the UI's prompt
// (after checking that a wrong password is refused). Opens the deployments page, finds and opens the `retrain-weekly` deployment (its weekly schedule
// and its finished run listed); opens its Custom run form, sets Training > Epochs to 0 and submits:
// the server must refuse it, naming `parameters.training.epochs`; then opens the finished run's
// page (one log line per epoch), its Artifacts tab, the `test-metrics` artifact and the
// `run-summary` artifact. A screenshot is taken at each step. Prints one JSON line per step; exits 1 (after an `error.png` screenshot) on the first step
// that fails. CHROMIUM overrides the browser's path (default /usr/bin/chromium).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, runId, runName, outDir] = process.argv.slice(2);
if (!base || !runId || !runName || !outDir) {
  console.error('usage: node check.mjs BASE_URL FLOW_RUN_ID FLOW_RUN_NAME SCREENSHOT_DIR');
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
const TIMEOUT = 45_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--disable-background-networking',
    '--disable-extensions',
    '--no-first-run',
  ],
});
const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
page.setDefaultTimeout(TIMEOUT);
let shot = 0;

async function step(name, action) {
  const started = Date.now();
  try {
    const found = await action();
    shot += 1;
    const path = join(outDir, `${String(shot).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path });
    console.log(JSON.stringify({ step: name, ok: true, url: page.url(), found, screenshot: path, ms: Date.now() - started }));
  } catch (error) {
    const path = join(outDir, `error-${name}.png`);
    await page.screenshot({ path }).catch(() => {});
    console.log(JSON.stringify({ step: name, ok: false, url: page.url(), error: String(error.message || error).split('\n')[0], screenshot: path }));
    await browser.close();
    process.exit(1);
  }
}

// A server with an auth string (PREFECT_AUTH_STRING) asks for it first: a wrong one is refused,
// the right one opens the UI.
const auth = process.env.PREFECT_AUTH_STRING;
if (auth) {
  await step('login', async () => {
    await page.goto(`${base}/deployments`, { waitUntil: 'domcontentloaded' });
    const password = page.getByPlaceholder('admin:pass');
    await password.fill(`${auth.split(':')[0]}:wrong-password`);
    await page.getByRole('button', { name: 'Login' }).click();
    const refused = page.getByText('Authentication failed.').first();
    await refused.waitFor();
    await password.fill(auth);
    await page.getByRole('button', { name: 'Login' }).click();
    await page.getByText('retrain-weekly', { exact: true }).first().waitFor();
    return ['Authentication failed.', 'retrain-weekly'];
  });
}

await step('deployments', async () => {
  await page.goto(`${base}/deployments`, { waitUntil: 'domcontentloaded' });
  await page.getByText('retrain-weekly', { exact: true }).first().waitFor();
  await page.getByText('forecast-daily', { exact: true }).first().waitFor();
  return ['retrain-weekly', 'forecast-daily'];
});

await step('retrain-deployment', async () => {
  await page.getByRole('link', { name: 'retrain-weekly', exact: true }).first().click();
  await page.waitForURL(/\/deployments\/deployment\//);
  await page.getByText('At 03:00 AM, only on Monday', { exact: true }).first().waitFor();
  await page.getByText(runName, { exact: true }).first().waitFor();
  return ['At 03:00 AM, only on Monday', runName];
});

let deploymentUrl;
await step('run-form-refuses-bad-value', async () => {
  deploymentUrl = page.url().split('?')[0];
  await page.getByRole('button', { name: 'Run', exact: true }).first().click();
  await page.getByText('Custom run', { exact: true }).first().click();
  await page.getByText('Maximum epochs.', { exact: true }).first().waitFor();
  // The innermost form field labelled "Epochs" (the form nests one box per pydantic model).
  const field = page.locator('.p-label', { has: page.getByText('Epochs (Optional)', { exact: true }) }).last();
  const input = field.locator('input').first();
  await input.fill('0');
  await page.getByRole('button', { name: 'Submit', exact: true }).click();
  const refusal = page.getByText(/Validation failed for field 'parameters\.training\.epochs'/).first();
  await refusal.waitFor();
  await input.scrollIntoViewIfNeeded();
  await page.waitForTimeout(600); // let the notice finish sliding in before the screenshot
  return await refusal.innerText();
});

await step('flow-run', async () => {
  await page.goto(deploymentUrl, { waitUntil: 'domcontentloaded' });
  await page.getByRole('link', { name: runName, exact: true }).first().click();
  await page.waitForURL(new RegExp(`/runs/flow-run/${runId}`));
  // The run's page: its tabs, its state, and the training's one log line per epoch.
  await page.getByText('Artifacts', { exact: true }).first().waitFor();
  await page.getByText('Completed', { exact: true }).first().waitFor();
  const epochLine = page.getByText(/^epoch 1\/\d+: /).first();
  await epochLine.waitFor();
  await epochLine.scrollIntoViewIfNeeded();
  return ['Completed', await epochLine.innerText()];
});

await step('run-artifacts', async () => {
  await page.getByText('Artifacts', { exact: true }).first().click();
  const card = page.getByText('test-metrics', { exact: true }).first();
  await card.waitFor();
  await card.scrollIntoViewIfNeeded();
  return 'test-metrics';
});

await step('metrics-artifact', async () => {
  await page.getByText('test-metrics', { exact: true }).first().click();
  await page.waitForURL(/\/artifacts\/artifact\//);
  // The table artifact: one row per model, ours and the baselines.
  await page.getByText('fusioncast', { exact: true }).first().waitFor();
  await page.getByText('last_value', { exact: true }).first().waitFor();
  return ['fusioncast', 'last_value'];
});

await step('run-summary-artifact', async () => {
  await page.goto(`${base}/runs/flow-run/${runId}`, { waitUntil: 'domcontentloaded' });
  await page.getByText('Artifacts', { exact: true }).first().click();
  await page.getByText('run-summary', { exact: true }).first().click();
  await page.waitForURL(/\/artifacts\/artifact\//);
  // The closing summary: model version, promoted or not and why, where the forecasts are.
  await page.getByText('model version', { exact: true }).first().waitFor();
  await page.getByText('promoted', { exact: true }).first().waitFor();
  await page.getByText('forecasts', { exact: true }).first().waitFor();
  return ['model version', 'promoted', 'forecasts'];
});

await browser.close();
