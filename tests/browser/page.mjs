// Drives the `lenet-gpu serve` page in a real, headless Chromium (Debian's /usr/bin/chromium,
// through playwright-core): writes a test digit on the canvas with pointer events, checks
// that the page shows what the API says of the same picture, then browses a digit the
// model gets wrong. Usage: node page.mjs URL OUT_DIR [INDEX]. Prints one JSON line; exits
// non-zero on any mismatch. Run by tests/serve_page.rs.
import { chromium } from "playwright-core";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const [url, out, indexArg] = process.argv.slice(2);
const index = Number(indexArg ?? 0);
const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };
const api = async (path, options) => {
  const r = await fetch(new URL(path, url), options);
  const body = await r.json();
  if (!r.ok) fail(`${path}: ${r.status} ${body.error}`);
  return body;
};

// Waits for `selector`; on a timeout, fails saying what the page showed instead.
const waitFor = async (page, selector) => {
  try {
    await page.waitForSelector(selector, { timeout: 60000 });
  } catch (e) {
    const state = await page.evaluate(() => ({
      result: { ...document.getElementById("result").dataset },
      source: document.getElementById("source").textContent,
      note: document.getElementById("test-note").textContent,
    })).catch((err) => String(err));
    fail(`waiting for ${selector}: ${e.message.split("\n")[0]}; the page shows ${JSON.stringify(state)}`);
  }
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // Playwright starts it with a fresh, empty profile of its own (its --user-data-dir).
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on("pageerror", (e) => fail("page error: " + e.message));
  await page.goto(url);
  await waitFor(page, "body[data-ready='1']");

  // 1. Write test digit `index` on the pad: one stroke per run of ink in each of its rows.
  const digit = await api(`/api/test/${index}`);
  const box = await page.locator("#pad").boundingBox();
  const cell = box.width / 28;
  for (let r = 0; r < 28; r += 2) {
    let c = 0;
    while (c < 28) {
      if (digit.input[r * 28 + c] < 128) { c++; continue; }
      const start = c;
      while (c < 28 && digit.input[r * 28 + c] >= 128) c++;
      const y = box.y + (r + 0.5) * cell;
      await page.mouse.move(box.x + (start + 0.5) * cell, y);
      await page.mouse.down();
      await page.mouse.move(box.x + (c - 0.5) * cell, y, { steps: 3 });
      await page.mouse.up();
    }
  }
  await waitFor(page, "#result[data-state='idle'][data-source='canvas']");
  const shown = await page.evaluate(() => ({
    digit: Number(document.getElementById("result").dataset.digit),
    distances: JSON.parse(document.getElementById("result").dataset.distances),
    text: document.getElementById("digit").textContent,
    png: document.getElementById("pad").toDataURL("image/png"),
  }));
  const png = Buffer.from(shown.png.split(",")[1], "base64");
  writeFileSync(join(out, "drawn.png"), png);
  const said = await api("/api/classify", { method: "POST", body: png, headers: { "Content-Type": "image/png" } });
  if (shown.digit !== said.digit || Number(shown.text) !== said.digit) {
    fail(`the page shows ${shown.digit} (${shown.text}), the API says ${said.digit}`);
  }
  if (JSON.stringify(shown.distances) !== JSON.stringify(said.distances)) {
    fail(`distances differ: page ${shown.distances}, API ${said.distances}`);
  }
  const bars = await page.locator("#bars .win.num").count();
  if (bars !== 1) fail(`${bars} winners marked among the distance bars`);
  await page.screenshot({ path: join(out, "serve-write.png"), fullPage: true });

  // 2. Browse the digits it gets wrong, with the keyboard: ticking "only the digits it
  // gets wrong" shows the first, the right arrow key the next.
  const wrong = (await api("/api/test?misclassified")).misclassified;
  if (wrong.length < 2) fail(`only ${wrong.length} misread test digits to browse`);
  await page.click("#tab-test");
  await waitFor(page, "#result[data-source^='test:']");
  await page.check("#only-wrong");
  await waitFor(page, `#result[data-source='test:${wrong[0]}']`);
  await page.locator("body").click({ position: { x: 5, y: 5 } });
  await page.keyboard.press("ArrowRight");
  const first = wrong[1];
  await waitFor(page, `#result[data-source='test:${first}']`);
  const browsed = await page.evaluate(() => ({
    digit: Number(document.getElementById("result").dataset.digit),
    distances: JSON.parse(document.getElementById("result").dataset.distances),
    label: document.getElementById("label").textContent,
  }));
  const truth = await api(`/api/test/${first}`);
  if (browsed.digit !== truth.digit || JSON.stringify(browsed.distances) !== JSON.stringify(truth.distances)) {
    fail(`test digit ${first}: page ${browsed.digit}, API ${truth.digit}`);
  }
  if (truth.digit === truth.label || browsed.label !== `label ${truth.label}`) {
    fail(`test digit ${first} should be misread and labelled: ${JSON.stringify(browsed)}`);
  }
  await page.screenshot({ path: join(out, "serve-test.png"), fullPage: true });

  // 3. With --log, the learning curve.
  const run = await fetch(new URL("/api/run", url));
  if (run.ok) {
    const points = (await run.json()).points.length;
    await page.click("#tab-run");
    await page.waitForFunction((n) => document.getElementById("run-note").textContent.includes(`${n} passes`), points, { timeout: 60000 })
      .catch(() => fail("the run view does not show the log's passes"));
    await page.screenshot({ path: join(out, "serve-run.png"), fullPage: true });
    await page.click("#tab-write");
  }

  // 4. A phone-sized window: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) fail(`at 390 px wide the page is ${overflow} px wider than the window`);
  await page.screenshot({ path: join(out, "serve-phone.png"), fullPage: false });
  console.log(JSON.stringify({ drawn: { label: digit.label, read: said.digit }, misread: { index: first, label: truth.label, read: truth.digit } }));
} finally {
  await browser.close();
}
