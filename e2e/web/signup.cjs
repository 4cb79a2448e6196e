// Drives Debian's Chromium (playwright-core, no browser download) through
// stoa's invitation landing page and web sign-up, as a person would:
// open the invitation link, follow "Create an account on the web", fill
// in the form, let the page's own script solve the proof of work, and
// read what the server answered. Called by e2e/web_test.go with one JSON
// argument; prints one JSON object with what it saw.
//
//   {"landing": URL, "username": "...", "password": "...",
//    "chromium": "/usr/bin/chromium", "timeoutMs": 60000}
'use strict';

const { chromium } = require('playwright-core');

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const out = { consoleErrors: [], steps: [] };
  const browser = await chromium.launch({
    executablePath: cfg.chromium || '/usr/bin/chromium',
    headless: true,
    // Flags for a machine with a closed network (see the test's doc).
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: cfg.timeoutMs,
  });
  try {
    // Without JavaScript: the landing page works, and the sign-up form
    // says why it needs JavaScript for one step.
    {
      const ctx = await browser.newContext({ javaScriptEnabled: false });
      const page = await ctx.newPage();
      await page.goto(cfg.landing, { timeout: cfg.timeoutMs });
      out.noJSHeading = (await page.textContent('h1')).trim();
      out.noJSAppHref = await page.getAttribute('#open-app', 'href');
      await page.click('#web-signup');
      await page.waitForSelector('noscript, form#signup', { state: 'attached', timeout: cfg.timeoutMs });
      out.noJSForm = (await page.$('form#signup')) !== null;
      out.noJSNote = await page.evaluate(() => {
        const n = document.querySelector('noscript');
        return n ? n.textContent : '';
      });
      await ctx.close();
    }

    const ctx = await browser.newContext({ userAgent: 'Mozilla/5.0 (X11; Linux x86_64) stoa-e2e' });
    const page = await ctx.newPage();
    page.on('console', (msg) => {
      if (msg.type() === 'error') out.consoleErrors.push(msg.text());
    });
    page.on('pageerror', (err) => out.consoleErrors.push(String(err)));

    await page.goto(cfg.landing, { timeout: cfg.timeoutMs });
    out.landingTitle = await page.title();
    out.heading = (await page.textContent('h1')).trim();
    out.appHref = await page.getAttribute('#open-app', 'href');
    out.suggested = await page.evaluate(() => {
      const h = Array.from(document.querySelectorAll('h3')).map((e) => e.textContent);
      return h.length ? h[0] : '';
    });
    out.steps.push('landing');

    await Promise.all([
      page.waitForURL(/\/register\?t=/, { timeout: cfg.timeoutMs }),
      page.click('#web-signup'),
    ]);
    out.steps.push('form');
    // Labels are tied to their fields (accessibility): fill by label.
    await page.getByLabel('Username').fill(cfg.username);
    await page.getByLabel('Password', { exact: true }).fill(cfg.password);
    await page.getByLabel('The same password again').fill(cfg.password);
    out.powStatusBefore = (await page.textContent('#pow-status')).trim();

    // The page solves the proof of work, waits the minimum time, and
    // sends the form itself once the button was pressed.
    await Promise.all([
      page.waitForURL(/\/register$/, { waitUntil: 'load', timeout: cfg.timeoutMs }),
      page.click('#send'),
    ]);
    out.steps.push('submitted');
    out.resultHeading = (await page.textContent('h1')).trim();
    const alert = await page.$('[role=alert]');
    out.alert = alert ? (await alert.textContent()).replace(/\s+/g, ' ').trim() : '';
    const addr = await page.$('.address');
    out.address = addr ? (await addr.textContent()).trim() : '';
    out.focused = await page.evaluate(() => (document.activeElement ? document.activeElement.id : ''));
    await ctx.close();
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
