import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCertificate } from '../../src/emulator/x509.js';
import { startHarness, type Harness } from '../support/harness.js';

/** Issue 3: the code travels over HTTPS — served directly, or behind a declared TLS proxy. */
describe('transport security for sign-in', () => {
  describe('behind a TLS-terminating proxy (BEHALF_TRUST_PROXY)', () => {
    let h: Harness;
    beforeAll(async () => {
      h = await startHarness({ env: { BEHALF_TRUST_PROXY: 'true' } });
    });
    afterAll(async () => {
      await h.close();
    });

    it('accepts a code the proxy says came over https', async () => {
      const { code } = await h.newUserWithCode();
      expect(
        (
          await h.signIn(
            code,
            {},
            {
              'x-requested-with': 'XMLHttpRequest',
              'x-forwarded-proto': 'https',
              'x-forwarded-for': '203.0.113.9',
            },
          )
        ).status,
      ).toBe(201);
    });

    it('refuses a code the proxy says came over plain http', async () => {
      const { code } = await h.newUserWithCode();
      const response = await h.signIn(
        code,
        {},
        {
          'x-requested-with': 'XMLHttpRequest',
          'x-forwarded-proto': 'http',
          'x-forwarded-for': '203.0.113.9',
        },
      );
      expect(response.status).toBe(403);
      expect(await response.json()).toMatchObject({ error: 'INSECURE_TRANSPORT' });
    });
  });

  describe('serving HTTPS directly (BEHALF_TLS_CERT / BEHALF_TLS_KEY)', () => {
    let h: Harness;
    let cert: string;
    beforeAll(async () => {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      cert = selfSignedCertificate({
        privateKey,
        publicKey,
        commonName: '127.0.0.1',
        serial: randomBytes(8),
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 86_400_000),
      });
      const dir = (await import('node:os')).tmpdir();
      const certFile = join(dir, `behalf-cert-${process.pid}.pem`);
      const keyFile = join(dir, `behalf-key-${process.pid}.pem`);
      await writeFile(certFile, cert);
      await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      h = await startHarness({ env: { BEHALF_TLS_CERT: certFile, BEHALF_TLS_KEY: keyFile } });
    });
    afterAll(async () => {
      await h.close();
    });

    it('answers a sign-in over TLS', async () => {
      const { code } = await h.newUserWithCode();
      const port = new URL(h.url).port;
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/v1/google/signin',
            method: 'POST',
            ca: cert,
            checkServerIdentity: () => undefined,
            headers: { 'content-type': 'application/json', 'x-requested-with': 'XMLHttpRequest' },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ code }));
      });
      expect(status).toBe(201);
    });
  });
});
