// Drive the OHIF Viewer in headless Chromium (puppeteer-core) over one study and report, as JSON on
// stdout, what it shows for each of dicom-node's outputs; tests/viewer/test_ohif.py asserts on it.
//
//   node tests/viewer/ohif_check.mjs plan.json
//
// plan.json: {"chromium": path, "ohif_dir": deploy/ohif (its node_modules has puppeteer-core),
//   "base": "http://127.0.0.1:PORT" (deploy/ohif/serve.py), "study": Study Instance UID,
//   "outputs": [{"kind": "overlay"|"explainability"|"sr"|"seg", "series": UID}, ...],
//   "expect": {"measurements": 6, "segments": 7}, "out": folder for the PNGs,
//   "timeout_ms": wait for each DOM condition, "settle_ms": wait for SR/SEG rows to appear}
//
// Each output is opened in its own browser context at /viewer?StudyInstanceUIDs=...&
// initialSeriesInstanceUID=<its series>, so one output crashing the viewer cannot hide another.
// Every wait is on a DOM condition with a generous timeout; a timeout is recorded, not thrown, so
// the report says what the viewer showed instead. Runs on Node 18 (Debian 12) and later.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const require = createRequire(path.join(path.resolve(plan.ohif_dir), 'package.json'));
const puppeteer = require('puppeteer-core');

const TIMEOUT = plan.timeout_ms ?? 60000;
const SETTLE = plan.settle_ms ?? 45000;
const VIEWPORT = { width: 1600, height: 1000 };
const RIGHT_PANEL = '#viewerLayoutResizableRightPanel';
const log = (...args) => console.error(new Date().toISOString(), ...args);

// In the page: pixel statistics of the viewport's canvas (Cornerstone draws each frame to a 2D canvas).
function canvasStats() {
  const canvas = document.querySelector('[data-cy="viewport-pane"] canvas.cornerstone-canvas')
    || document.querySelector('[data-cy="viewport-pane"] canvas');
  if (!canvas || !canvas.width || !canvas.height) return null;
  // Sampled through a small copy (one readback of a few thousand pixels per poll).
  const sample = document.createElement('canvas');
  sample.width = Math.min(canvas.width, 320);
  sample.height = Math.max(1, Math.round((canvas.height * sample.width) / canvas.width));
  const context = sample.getContext('2d', { willReadFrequently: true });
  context.drawImage(canvas, 0, 0, sample.width, sample.height);
  const data = context.getImageData(0, 0, sample.width, sample.height).data;
  let lit = 0, colored = 0;
  for (let i = 0; i < data.length; i += 4) {
    const r = data[i], g = data[i + 1], b = data[i + 2];
    if (r + g + b > 30) lit++;
    if (Math.max(r, g, b) - Math.min(r, g, b) > 30) colored++;
  }
  const pixels = data.length / 4;
  return { width: canvas.width, height: canvas.height, lit: lit / pixels, colored: colored / pixels };
}

async function waitFor(page, what, fn, arg, timeout = TIMEOUT) {
  try {
    const started = Date.now();
    await page.waitForFunction(fn, { timeout, polling: 500 }, arg);
    log(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return true;
  } catch (error) {
    if (error?.name !== 'TimeoutError') throw error;
    log(`timed out after ${timeout} ms waiting for ${what}`);
    return false;
  }
}

// In the page: whether the viewer has gone (an uncaught error in React unmounts the whole app).
function viewerGone() {
  return !document.querySelector('[data-cy="viewport-grid"]');
}

// Helpers the page functions below call, installed before OHIF's own scripts run.
const PAGE_HELPERS = `window.__ohifCheck = { canvasStats: ${canvasStats}, viewerGone: ${viewerGone} };`;

async function text(page, selector) {
  return page.$eval(selector, el => el.innerText).catch(() => null);
}

async function texts(page, selector) {
  return page.$$eval(selector, els => els.map(el => el.innerText.trim()));
}

// "Do you want to continue tracking measurements ...?" / "Do you want to open this Segmentation?"
async function answerYes(page, report) {
  await waitFor(page, 'the viewport prompt (Yes/No)', () => !!document.querySelector(
    '[data-cy="viewport-notification"] [data-cy="yes-hydrate-btn"]') || window.__ohifCheck.viewerGone());
  report.prompt = await text(page, '[data-cy="viewport-notification"]');
  if (!(await page.$('[data-cy="viewport-notification"] [data-cy="yes-hydrate-btn"]'))) return false;
  await page.click('[data-cy="viewport-notification"] [data-cy="yes-hydrate-btn"]');
  report.answered_yes = true;
  return true;
}

async function openRightPanel(page, button, content) {
  if (await page.$(`${RIGHT_PANEL} ${content}`)) return;
  await waitFor(page, `${button}`, sel => !!document.querySelector(sel), button);
  if (await page.$(button)) await page.click(button);
}

async function checkImage(page, output, report) {
  // Rendered: the canvas shows the capture (colored pixels: the captures are RGB, the radiograph is not).
  report.rendered = await waitFor(page, `${output.kind} rendered`, () => {
    const stats = window.__ohifCheck.canvasStats();
    return !!stats && stats.lit > 0.05 && stats.colored > 0.005;
  });
  report.description = await text(page, '[data-cy="viewport-overlay-top-left"]');
  if (await page.$('[data-cy="cine-player-close"]')) await page.click('[data-cy="cine-player-close"]');
}

async function checkSr(page, output, report) {
  if (await answerYes(page, report)) {
    await openRightPanel(page, '[data-cy="trackedMeasurements-btn"]', '[data-cy="trackedMeasurements-panel"]');
    await waitFor(page, `${plan.expect.measurements} measurement rows`, n =>
      document.querySelectorAll('[data-cy^="measurement-table-row-"]').length >= n
      || window.__ohifCheck.viewerGone(), plan.expect.measurements, SETTLE);
  }
  report.rows = await texts(page, `${RIGHT_PANEL} [data-cy^="measurement-table-row-"]`);
  report.panel = await text(page, RIGHT_PANEL);
}

async function checkSeg(page, output, report) {
  if (await answerYes(page, report)) {
    await openRightPanel(page, '[data-cy="panelSegmentation-btn"]', '[data-cy="data-row-title"]');
    await waitFor(page, `${plan.expect.segments} segment rows`, ([n, panel]) =>
      document.querySelectorAll(`${panel} [data-cy="data-row-title"]`).length >= n
      || window.__ohifCheck.viewerGone(), [plan.expect.segments, RIGHT_PANEL], SETTLE);
  }
  report.segments = await texts(page, `${RIGHT_PANEL} [data-cy="data-row-title"]`);
  report.panel = await text(page, RIGHT_PANEL);
}

const CHECKS = { overlay: checkImage, explainability: checkImage, sr: checkSr, seg: checkSeg };

async function check(browser, output) {
  const report = { kind: output.kind, console: [], page_errors: [], warnings: [] };
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport(VIEWPORT);
  page.on('console', message => {
    const entry = { type: message.type(), text: message.text().slice(0, 2000) };
    if (['error', 'assert'].includes(entry.type)) report.console.push(entry);
    else if (entry.type === 'warn' && report.warnings.length < 200) report.warnings.push(entry.text);
  });
  page.on('pageerror', error => report.page_errors.push(String(error?.stack || error?.message || error)));
  await page.evaluateOnNewDocument(PAGE_HELPERS);
  const url = `${plan.base}/viewer?StudyInstanceUIDs=${plan.study}&initialSeriesInstanceUID=${output.series}`;
  report.url = url;
  const started = Date.now();
  try {
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: TIMEOUT });
    report.viewer = await waitFor(page, 'the viewer', () => !!document.querySelector('[data-cy="viewport-pane"]'));
    if (report.viewer) await CHECKS[output.kind](page, output, report);
  } catch (error) {
    report.driver_error = String(error?.stack || error);
    log(`${output.kind}: ${report.driver_error}`);
  }
  report.canvas = await page.evaluate(() => window.__ohifCheck.canvasStats()).catch(() => null);
  report.viewer_gone = await page.evaluate(() => window.__ohifCheck.viewerGone()).catch(() => null);
  log(`${output.kind}: checked in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  report.screenshot = path.join(plan.out, `ohif-${output.kind}.png`);
  await page.screenshot({ path: report.screenshot }).catch(error => { report.screenshot = `not saved: ${error}`; });
  report.seconds = (Date.now() - started) / 1000;
  log(`${output.kind}: ${report.seconds.toFixed(1)} s`);
  await context.close();
  return report;
}

const browser = await puppeteer.launch({
  executablePath: plan.chromium,
  headless: true, // Chromium's new headless mode (--headless=new)
  args: [
    '--no-sandbox', // tests run as root in CI
    '--disable-dev-shm-usage', // containers often have a small /dev/shm
    '--use-angle=swiftshader', '--enable-unsafe-swiftshader', // WebGL in software (no GPU)
    `--window-size=${VIEWPORT.width},${VIEWPORT.height}`,
  ],
  protocolTimeout: 4 * TIMEOUT,
});
const results = { chromium: await browser.version(), outputs: {} };
try {
  for (const output of plan.outputs) {
    results.outputs[output.kind] = await check(browser, output);
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(results) + '\n');
