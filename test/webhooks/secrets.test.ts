/**
 * Issue 13, point 5: signing secrets and signatures as the Standard Webhooks specification has
 * them, checked with the specification's own library (`standardwebhooks`), and secrets at rest.
 */
import { randomBytes } from 'node:crypto';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { parseKeyring } from '../../src/vault/index.js';
import { generateSecret, openSecret, sealSecret, signDelivery } from '../../src/webhooks/secrets.js';

const body = JSON.stringify({
  type: 'grant.revoked',
  timestamp: '2025-01-01T00:00:00.000Z',
  data: { sub: '1234', previous_status: 'active', reason: 'signed_out' },
});
const id = 'msg_0123456789abcdef0123456789abcdef';

function headers(secret: string, at: number, msgId = id, payload = body): Record<string, string> {
  const timestamp = Math.floor(at / 1000);
  return {
    'webhook-id': msgId,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signDelivery(secret, msgId, timestamp, payload),
  };
}

describe('webhook secrets and signatures', () => {
  it('a secret is whsec_ and the base64 of 32 random bytes', () => {
    const secrets = Array.from({ length: 20 }, generateSecret);
    for (const secret of secrets) {
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32);
    }
    expect(new Set(secrets).size).toBe(20);
  });

  it("standardwebhooks's Webhook.verify accepts the signature and returns the payload", () => {
    const secret = generateSecret();
    expect(new Webhook(secret).verify(body, headers(secret, Date.now()))).toEqual(JSON.parse(body));
    // Byte for byte what the library signs.
    const at = Date.now();
    expect(headers(secret, at)['webhook-signature']).toBe(
      new Webhook(secret).sign(id, new Date(Math.floor(at / 1000) * 1000), body),
    );
  });

  it('another body, id, timestamp or secret does not verify', () => {
    const secret = generateSecret();
    const good = headers(secret, Date.now());
    const refuse = (payload: string, h: Record<string, string>, key = secret) =>
      expect(() => new Webhook(key).verify(payload, h)).toThrow(WebhookVerificationError);
    refuse(body.replace('1234', '1235'), good);
    refuse(body, { ...good, 'webhook-id': `${id}0` });
    refuse(body, { ...good, 'webhook-timestamp': String(Number(good['webhook-timestamp']) - 1) });
    refuse(body, good, generateSecret());
    // And the specification's replay window: a timestamp ten minutes old is refused.
    refuse(body, headers(secret, Date.now() - 10 * 60_000));
  });

  it('at rest the secret is an envelope bound to its endpoint: another id or URL does not open it', () => {
    const keyring = parseKeyring(`k1:${randomBytes(32).toString('base64')}`);
    const secret = generateSecret();
    const endpoint = { id: 'wh_0123456789abcdef01234567', url: 'https://hooks.example.com/behalf' };
    const sealed = sealSecret(keyring, endpoint, secret);
    expect(sealed.includes(Buffer.from(secret))).toBe(false);
    expect(sealed.includes(Buffer.from(secret.slice(6), 'base64'))).toBe(false);
    expect(openSecret(keyring, endpoint, sealed)).toBe(secret);
    for (const other of [
      { ...endpoint, id: 'wh_0123456789abcdef01234568' },
      { ...endpoint, url: 'https://evil.example.com/behalf' },
    ]) {
      expect(() => openSecret(keyring, other, sealed)).toThrow(
        expect.objectContaining({ code: 'INTERNAL', reason: 'ciphertext_invalid' }),
      );
    }
    // Never the secret in the refusal.
    const refusal = (() => {
      try {
        openSecret(keyring, { ...endpoint, id: 'wh_x' }, sealed);
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error('the secret opened under another id');
    })();
    expect(refusal).toBe(
      'The stored webhook secret failed authentication: it was altered, or moved from another user, client or column.',
    );
  });
});
