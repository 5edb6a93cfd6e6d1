// Drives the bonescan OHIF viewer in headless Chromium (playwright-core, system Chromium) and
// writes what it saw to $ARTIFACTS/result.json plus one screenshot per step; the assertions are
// in tests/test_viewer_browser.py.
//
//   BASE_URL=http://127.0.0.1:8000 STUDY_UID=1.2.3 ROW_TEXT="Phantom, 2062" ARTIFACTS=/tmp/a CHROMIUM=/usr/bin/chromium \
//   PLAYWRIGHT_CORE=var/playwright/node_modules/playwright-core node tests/browser/viewer_check.js
'use strict';
const fs = require('fs');
const path = require('path');

const BASE = process.env.BASE_URL;
const STUDY = process.env.STUDY_UID;
const OUT = process.env.ARTIFACTS;
const { chromium } = require(path.resolve(process.env.PLAYWRIGHT_CORE || 'var/playwright/node_modules/playwright-core'));
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--use-angle=swiftshader'];

const result = { steps: [], timings: {}, console: [] };
const save = () => fs.writeFileSync(path.join(OUT, 'result.json'), JSON.stringify(result, null, 1));
const b64 = arrays => arrays.map(a => Buffer.from(Uint8Array.from(a)).toString('base64'));

let browser = null;
async function main() {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: FLAGS, headless: true });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('console', m => { if (['error', 'warning'].includes(m.type())) result.console.push(`${m.type()}: ${m.text()}`.slice(0, 400)); });
  page.on('pageerror', e => result.console.push(`pageerror: ${e.message}`.slice(0, 400)));
  const shot = async name => {
    const file = path.join(OUT, `${String(result.steps.length + 1).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file });
    result.steps.push({ name, file });
    save();
    return file;
  };
  const state = () => page.evaluate(() => window.bonescan && JSON.parse(JSON.stringify(window.bonescan.state)));
  const frames = async () => b64(await page.evaluate(() => window.bonescan.labelFrames().map(f => Array.from(f))));
  // Page coordinates of image pixels, per view, to sample screenshots at.
  const points = (view, pixels) => page.evaluate(([v, px]) => px.map(([r, c]) => window.bonescan.pixelToPage(v, r, c)), [view, pixels]);

  // 1. Study list, then the study in the Bone scan mode.
  let t0 = Date.now();
  await page.goto(`${BASE}/viewer/`);
  const row = page.locator(`[data-cy="studyRow-${STUDY}"], tr:has-text("${process.env.ROW_TEXT}")`).first();
  await row.waitFor({ timeout: 60000 });
  result.timings.studyListMs = Date.now() - t0;
  await shot('study-list');
  await row.click();
  await page.waitForTimeout(1500);
  result.buttons = await page.evaluate(() => Array.from(document.querySelectorAll('button')).map(b => b.textContent.trim()).filter(Boolean));
  save();
  const modeButton = page.locator('button:has-text("Bone scan"), [data-cy="mode-bonescan"]').first();
  await modeButton.waitFor({ timeout: 30000 });
  await shot('study-expanded');
  result.buttons = await page.evaluate(() => Array.from(document.querySelectorAll('button')).map(b => b.textContent.trim()).filter(Boolean));
  t0 = Date.now();
  await modeButton.click();
  const onFrames = () => {
    const b = window.bonescan;
    return b?.state?.ready && JSON.stringify(b.shownFrames()) === JSON.stringify(b.state.frames);
  };
  await page.waitForFunction(onFrames, null, { timeout: 90000 });
  result.timings.viewerReadyMs = Date.now() - t0;
  await page.waitForTimeout(1000); // let both viewports finish their first render
  result.url = page.url();
  result.stateAfterOpen = await state();
  const shown = () => page.evaluate(() => window.bonescan.shownFrames());
  result.shown = { open: await shown() };
  result.viewports = {};
  for (const [view, id] of [['anterior', 'bonescan-ant'], ['posterior', 'bonescan-post']]) {
    const file = path.join(OUT, `viewport-${view}.png`);
    await page.locator(`[data-viewportid="${id}"]`).first().screenshot({ path: file }).catch(async () => {
      const box = await page.evaluate(v => { const r = window.bonescan.pixelToPage(v, 0, 0); return r; }, view);
      result.console.push(`no [data-viewportid=${id}] element; ${JSON.stringify(box)}`);
    });
    result.viewports[view] = { file, labels: await page.evaluate(i => Array.from(document.querySelectorAll(`[data-viewportid="${i}"] .bonescan-overlay`)).map(n => n.textContent), id) };
  }
  result.framesBefore = await frames();
  await shot('views');

  // 2. bstbi: overlay on both views.
  const grid = JSON.parse(process.env.SAMPLE_PIXELS || '[]'); // [[row, col], ...] to sample at
  result.samples = { anterior: await points('anterior', grid), posterior: await points('posterior', grid) };
  const beforeInfer = await shot('before-infer');
  t0 = Date.now();
  await page.click('[data-testid="bonescan-run"]');
  await page.waitForFunction(() => window.bonescan.state.result || /failed/.test(document.querySelector('.bs-messages')?.textContent || ''), null, { timeout: 120000 });
  await page.waitForTimeout(300);
  result.timings.inferToOverlayClickMs = Date.now() - t0;
  result.stateAfterInfer = await state();
  result.shown.infer = await shown();
  result.messagesAfterInfer = await page.evaluate(() => document.querySelector('.bs-messages')?.textContent);
  result.framesAfterInfer = await frames();
  result.screenshotBeforeInfer = beforeInfer;
  result.screenshotAfterInfer = await shot('after-infer');

  // 3. A brush stroke on the posterior view (lesion segment), on cleared frames: the test's
  //    untrained networks may call a whole view lesion, where a lesion stroke would change nothing.
  await page.evaluate(() => window.bonescan.setLabelFrames(window.bonescan.labelFrames().map(f => new Uint8Array(f.length))));
  result.framesBeforePaint = await frames();
  await page.click('[data-tool="CircularBrush"]');
  const stroke = JSON.parse(process.env.STROKE || '[[500, 90], [500, 150]]');
  const [a, b] = await points('posterior', stroke);
  result.stroke = { pixels: stroke, page: [a, b] };
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) await page.mouse.move(a.x + ((b.x - a.x) * i) / 10, a.y + ((b.y - a.y) * i) / 10);
  await page.mouse.up();
  await page.waitForTimeout(500);
  result.framesAfterPaint = await frames();
  result.shown.paint = await shown();
  await shot('after-paint');

  // 4. Save as final label with the case-level answer.
  await page.check('input[name="bs-metastatic"][value="yes"]');
  t0 = Date.now();
  await page.click('[data-testid="bonescan-save"]');
  await page.waitForFunction(() => window.bonescan.state.saved || /save failed/.test(document.querySelector('.bs-messages')?.textContent || ''), null, { timeout: 60000 });
  result.timings.saveClickMs = Date.now() - t0;
  result.stateAfterSave = await state();
  result.messagesAfterSave = await page.evaluate(() => document.querySelector('.bs-messages')?.textContent);
  await shot('after-save');

  // 4b. Cleared, then the saved label loaded back from the server.
  await page.evaluate(() => window.bonescan.setLabelFrames(window.bonescan.labelFrames().map(f => new Uint8Array(f.length))));
  await page.click('[data-testid="bonescan-load"]');
  await page.waitForFunction(() => /load saved label: (done|failed)/.test(document.querySelector('.bs-messages')?.textContent || ''), null, { timeout: 30000 });
  result.framesReloaded = await frames();

  // 5. Next study proposed by the strategy "first" (the unlabelled one).
  await page.selectOption('#bs-strategy', 'first');
  const next = {};
  await page.route('**/activelearning/**', async route => {  // keep the answer: the page navigates away
    const response = await route.fetch();
    next.proposed = await response.json();
    await route.fulfill({ response, json: next.proposed });
  });
  t0 = Date.now();
  await page.click('[data-testid="bonescan-next"]');
  for (let i = 0; i < 300 && !next.proposed; i++) await page.waitForTimeout(100);
  await page.waitForURL(url => url.search.includes(encodeURIComponent(next.proposed.StudyInstanceUID)), { timeout: 30000 });
  await page.waitForFunction(onFrames, null, { timeout: 90000 });
  result.timings.nextStudyMs = Date.now() - t0;
  next.state = await state();
  result.next = next;
  await shot('next-study');
}

main()
  .then(() => { result.ok = true; })
  .catch(error => { result.ok = false; result.error = String((error && error.stack) || error); process.exitCode = 1; })
  .finally(async () => { save(); if (browser) await browser.close().catch(() => {}); });
