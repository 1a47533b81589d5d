import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/**
 * Debian's chromium, driven by playwright-core: no browser download. `.ci/run` installs the
 * package when it is missing; BEHALF_TEST_CHROMIUM points elsewhere on other systems.
 */
export const CHROMIUM_PATH = process.env.BEHALF_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Where browser tests save screenshots (not committed: see .gitignore). */
export const SCREENSHOT_DIR = resolve('test-output/screenshots');

export interface TestBrowser {
  browser: Browser;
  close(): Promise<void>;
}

/**
 * A headless Chromium (playwright gives it a new empty profile). The background-networking flags keep it from
 * reaching for Google's services on a machine with no internet: every page a test opens is on
 * loopback.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

/** A path for a named screenshot under SCREENSHOT_DIR (the folder is created). */
export async function screenshotPath(name: string): Promise<string> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  return join(SCREENSHOT_DIR, `${name}.png`);
}
