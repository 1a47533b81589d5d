import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BehalfError } from '../../src/errors.js';
import {
  decryptToken,
  encryptToken,
  envelopeKeyId,
  ENVELOPE_VERSION,
  formatKeyring,
  parseKeyring,
  type RowBinding,
} from '../../src/vault/index.js';

const k1 = randomBytes(32).toString('base64');
const k2 = randomBytes(32).toString('base64');
const keyring = parseKeyring(`k1:${k1}`);
const TOKEN = `1//0g${randomBytes(48).toString('base64url')}`;
const row: RowBinding = {
  column: 'refresh_token',
  sub: '110169484474386276334',
  clientId: 'server.apps.googleusercontent.com',
};

function failure(run: () => unknown): BehalfError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(BehalfError);
    const e = error as BehalfError;
    // No token and no key material in any failure.
    for (const secret of [TOKEN, k1, k2, TOKEN.slice(5, 25)])
      expect(`${e.message} ${JSON.stringify(e.toJSON())}`).not.toContain(secret);
    return e;
  }
  throw new Error('expected a failure');
}

describe('token envelope', () => {
  it('round-trips a token for the same row and column', () => {
    expect(decryptToken(keyring, row, encryptToken(keyring, row, TOKEN))).toBe(TOKEN);
    expect(decryptToken(keyring, row, encryptToken(keyring, row, ''))).toBe('');
    const unicode = 'tökén-✓-山';
    expect(decryptToken(keyring, row, encryptToken(keyring, row, unicode))).toBe(unicode);
  });

  it('has the documented layout: version, key id length, key id, 12-byte nonce, ciphertext, 16-byte tag', () => {
    const envelope = encryptToken(keyring, row, TOKEN);
    expect(envelope[0]).toBe(ENVELOPE_VERSION);
    expect(envelope[1]).toBe(2);
    expect(envelope.subarray(2, 4).toString('ascii')).toBe('k1');
    expect(envelope.length).toBe(1 + 1 + 2 + 12 + Buffer.byteLength(TOKEN) + 16);
    expect(envelopeKeyId(envelope)).toBe('k1');
    expect(envelope.includes(Buffer.from(TOKEN))).toBe(false);
  });

  it('uses a fresh nonce for every write', () => {
    const nonces = new Set<string>();
    const envelopes = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const envelope = encryptToken(keyring, row, TOKEN);
      nonces.add(envelope.subarray(4, 16).toString('hex'));
      envelopes.add(envelope.toString('hex'));
    }
    expect(nonces.size).toBe(200);
    expect(envelopes.size).toBe(200);
  });

  describe('associated data binds the row and column', () => {
    const envelope = encryptToken(keyring, row, TOKEN);

    it.each([
      ['another user', { ...row, sub: '110169484474386276335' }],
      ['another client', { ...row, clientId: 'other.apps.googleusercontent.com' }],
      ['another column', { ...row, column: 'access_token' as const }],
    ])('a ciphertext moved to %s does not decrypt', (_what, other) => {
      const error = failure(() => decryptToken(keyring, other, envelope));
      expect(error.code).toBe('INTERNAL');
      expect(error.reason).toBe('ciphertext_invalid');
      expect(error.message).toMatch(/altered, or moved from another user, client or column/);
    });

    it('fields are length-prefixed: shifting characters between sub and client id does not match', () => {
      const a = encryptToken(keyring, { column: 'access_token', sub: 'ab', clientId: 'c' }, TOKEN);
      failure(() => decryptToken(keyring, { column: 'access_token', sub: 'a', clientId: 'bc' }, a));
    });
  });

  it('an unknown key id fails with a clear CONFIG_INVALID that names the id, not the key', () => {
    const envelope = encryptToken(parseKeyring(`k2:${k2}`), row, TOKEN);
    const error = failure(() => decryptToken(keyring, row, envelope));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.reason).toBe('unknown_key_id');
    expect(error.message).toContain("key id 'k2', which is not configured");
    expect(error.message).toMatch(/^BEHALF_ENCRYPTION_KEYS: /);
  });

  it('the same key id with different key material fails authentication', () => {
    const envelope = encryptToken(parseKeyring(`k1:${k2}`), row, TOKEN);
    expect(failure(() => decryptToken(keyring, row, envelope)).reason).toBe('ciphertext_invalid');
  });

  it('any altered byte — header, nonce, ciphertext or tag — is refused', () => {
    const envelope = encryptToken(keyring, row, TOKEN);
    for (let i = 0; i < envelope.length; i++) {
      const tampered = Buffer.from(envelope);
      tampered[i] = tampered[i]! ^ 0x01;
      const error = failure(() => decryptToken(keyring, row, tampered));
      expect(['ciphertext_invalid', 'ciphertext_malformed', 'unknown_key_id']).toContain(error.reason);
    }
  });

  it('a key id rewritten to another configured key (other bytes) is refused', () => {
    const both = parseKeyring(`k1:${k1},k2:${k2}`);
    const envelope = encryptToken(both, row, TOKEN);
    const relabelled = Buffer.from(envelope);
    relabelled[3] = '2'.charCodeAt(0);
    expect(failure(() => decryptToken(both, row, relabelled)).reason).toBe('ciphertext_invalid');
  });

  // Issue 16: with other key bytes under the new id (above), decryption fails whether or not the
  // header is in the associated data. Here both ids hold the same bytes, so only the header's
  // authentication can refuse the rewrite: it guards dropping lp(header) from the associated data.
  it('the header is authenticated: a key id rewritten to another id over the same key bytes is refused', () => {
    const sameBytes = parseKeyring(`k1:${k1},k2:${k1}`);
    const envelope = encryptToken(sameBytes, row, TOKEN);
    expect(envelopeKeyId(envelope)).toBe('k1');
    const relabelled = Buffer.from(envelope);
    relabelled[3] = '2'.charCodeAt(0);
    expect(envelopeKeyId(relabelled)).toBe('k2');
    // The key found for 'k2' would decrypt the body: the refusal comes from the header alone.
    expect(sameBytes.keyFor('k2')!.export()).toEqual(sameBytes.keyFor('k1')!.export());
    expect(failure(() => decryptToken(sameBytes, row, relabelled)).reason).toBe('ciphertext_invalid');
    expect(decryptToken(sameBytes, row, envelope)).toBe(TOKEN);
  });

  // A test vector written by behalf 0.1.0: rows stored by any earlier version must still open, so
  // the layout, the key id's place and the associated data (domain, fields, their order and
  // length prefixes) can never change without a new version byte.
  it('opens an envelope written by an earlier behalf (version 1 test vector)', () => {
    const v1 = parseKeyring('v1-key:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=');
    const vector = Buffer.from(
      '010676312d6b65799f6163c00063a31b703a25fac689c1783fccd5642155b0cd3d6e08ab6e8dad28330c66ced27ae18916467c8332f1d564b9fb',
      'hex',
    );
    expect(envelopeKeyId(vector)).toBe('v1-key');
    expect(
      decryptToken(
        v1,
        {
          column: 'refresh_token',
          sub: '110169484474386276334',
          clientId: 'server.apps.googleusercontent.com',
        },
        vector,
      ),
    ).toBe('1//0gKnownAnswer-token');
  });

  it('opens a version 1 test vector whose bound fields are not ASCII (lengths are UTF-8 bytes)', () => {
    const v1 = parseKeyring('v1-key:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=');
    const vector = Buffer.from(
      '010676312d6b65792f5331cc5c54f11f08047a14e913ef013568e6896326b58e53be93cc6b881e5e9dfe8b959904b5e1a96227f1ba07',
      'hex',
    );
    const binding: RowBinding = {
      column: 'webhook_secret',
      sub: 'endpoint-ü',
      clientId: 'https://example.com/hooks/✓',
    };
    expect(decryptToken(v1, binding, vector)).toBe('whsec_known-answer');
  });

  it('takes key ids of 1 to 32 characters', () => {
    for (const id of ['a', 'x'.repeat(32)]) {
      const single = parseKeyring(`${id}:${k1}`);
      const envelope = encryptToken(single, row, TOKEN);
      expect(envelope[1]).toBe(id.length);
      expect(envelopeKeyId(envelope)).toBe(id);
      expect(decryptToken(single, row, envelope)).toBe(TOKEN);
    }
  });

  it('an envelope whose key id is too long or not [A-Za-z0-9_-] is malformed, not an unknown key', () => {
    const body = encryptToken(keyring, row, TOKEN).subarray(4);
    const withId = (id: string) =>
      Buffer.concat([Buffer.from([ENVELOPE_VERSION, id.length]), Buffer.from(id, 'latin1'), body]);
    expect(envelopeKeyId(withId('k'.repeat(32)))).toBe('k'.repeat(32));
    for (const id of ['k'.repeat(33), '.k1', 'k1.', 'k.1', 'k 1', 'k\u00e9']) {
      const error = failure(() => decryptToken(keyring, row, withId(id)));
      expect(error.reason).toBe('ciphertext_malformed');
      expect(envelopeKeyId(withId(id))).toBeUndefined();
    }
  });

  it('an empty token is header, nonce and tag; one byte less is malformed', () => {
    const empty = encryptToken(keyring, row, '');
    expect(empty.length).toBe(4 + 12 + 16);
    expect(decryptToken(keyring, row, empty)).toBe('');
    expect(failure(() => decryptToken(keyring, row, empty.subarray(0, empty.length - 1))).reason).toBe(
      'ciphertext_malformed',
    );
  });

  it('says which column failed and how, naming the key id but never the token or a key', () => {
    const access: RowBinding = { ...row, column: 'access_token' };
    const secret: RowBinding = {
      column: 'webhook_secret',
      sub: 'endpoint-1',
      clientId: 'https://hooks.example.com/behalf',
    };
    expect(failure(() => decryptToken(keyring, row, Buffer.from([1]))).message).toBe(
      'The stored refresh token is not a behalf ciphertext envelope (unknown version or truncated).',
    );
    expect(failure(() => decryptToken(keyring, access, encryptToken(keyring, row, TOKEN))).message).toBe(
      'The stored access token failed authentication: it was altered, or moved from another user, client or column.',
    );
    expect(failure(() => decryptToken(keyring, secret, encryptToken(keyring, row, TOKEN))).message).toBe(
      'The stored webhook secret failed authentication: it was altered, or moved from another user, client or column.',
    );
    expect(
      failure(() => decryptToken(keyring, row, encryptToken(parseKeyring(`k2:${k2}`), row, TOKEN))).message,
    ).toBe(
      "BEHALF_ENCRYPTION_KEYS: The stored refresh token is encrypted with key id 'k2', which is not configured. " +
        'Put that key back (after the primary) and run `behalf keys rotate` before removing it.',
    );
    expect(decryptToken(keyring, secret, encryptToken(keyring, secret, 'whsec_x'))).toBe('whsec_x');
  });

  it.each([
    ['empty', Buffer.alloc(0)],
    ['unknown version', Buffer.concat([Buffer.from([2]), encryptToken(keyring, row, TOKEN).subarray(1)])],
    ['truncated', encryptToken(keyring, row, TOKEN).subarray(0, 20)],
    ['zero-length key id', Buffer.concat([Buffer.from([1, 0]), randomBytes(40)])],
    ['plaintext', Buffer.from(TOKEN)],
  ])('a malformed envelope (%s) is refused', (_what, envelope) => {
    const error = failure(() => decryptToken(keyring, row, envelope));
    expect(error.reason).toBe('ciphertext_malformed');
    expect(envelopeKeyId(envelope)).toBeUndefined();
  });

  it('encrypts under the primary key and decrypts under any configured key', () => {
    const old = parseKeyring(`old:${k1}`);
    const envelope = encryptToken(old, row, TOKEN);
    const rotated = parseKeyring(`new:${k2},old:${k1}`);
    expect(decryptToken(rotated, row, envelope)).toBe(TOKEN);
    expect(envelopeKeyId(encryptToken(rotated, row, TOKEN))).toBe('new');
    expect(formatKeyring(rotated)).toBe(`new:${k2},old:${k1}`);
  });
});
