// Plays the person at the browser: opens the sign-in URL in Debian's
// headless Chromium, signs in on oidc-provider's dev login page, grants
// consent, and waits for tokentray's callback page. Installed as `xdg-open`
// on PATH by the end-to-end test. Logs to $E2E_BROWSER_LOG.
//
// usage: node browser.mjs URL
import { chromium } from 'playwright-core';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const url = process.argv[2];
const log = (m) => appendFileSync(process.env.E2E_BROWSER_LOG || '/dev/stderr', `${new Date().toISOString()} ${m}\n`);
const shots = process.env.E2E_SCREENSHOTS;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  log(`open ${new URL(url).origin}${new URL(url).pathname}`);
  await page.goto(url);
  // A device sign-in (RFC 8628) ends on the provider's own success page,
  // not on tokentray's callback page.
  const device = new URL(url).pathname.startsWith('/device');
  // Login and consent pages of oidc-provider's dev interactions, as many as come.
  for (let i = 0; i < 6; i++) {
    await page.waitForLoadState('load');
    if (await page.locator('main[data-outcome]').count()) break;
    if (device && /success/i.test(await page.title())) break;
    if (await page.locator('input[name=login]').count()) {
      log('login page');
      await page.fill('input[name=login]', 'e2e-user');
      await page.fill('input[name=password]', 'any-password');
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
      continue;
    }
    if (await page.locator('button[type=submit]:not([name=abort])').count()) {
      log(device && i === 0 ? 'device code page' : 'consent page');
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]:not([name=abort])')]);
      continue;
    }
    break;
  }
  if (device) {
    const title = await page.title();
    log(`device sign-in page: ${title}`);
    if (shots) {
      mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: join(shots, 'device-signed-in.png') });
    }
    if (!/success/i.test(title)) process.exitCode = 1;
  } else {
    const outcome = await page.locator('main[data-outcome]').getAttribute('data-outcome', { timeout: 15000 });
    log(`callback page: ${outcome}: ${await page.locator('h1').innerText()}`);
    if (shots) {
      mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: join(shots, `callback-${outcome}.png`) });
    }
  }
} catch (err) {
  log(`browser failed: ${err}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
