import { describe, expect, it } from 'vitest';
import { redactReport } from './redact-reports.js';

describe('redacting token-shaped text from Stryker reports', () => {
  it("replaces tokens, codes and secrets in statusReason only, leaving the mutants' code and tests alone", () => {
    const report = {
      files: {
        'src/tokens/token-service.ts': {
          source: "const fake = 'ya29.a0-test-access-token';",
          mutants: [
            {
              statusReason:
                "expected '1//0g0ji5EXXlvtqBO98QX…' to be 'ya29.a0AbCdEf-123' (code 4/0AbCdEf_12345, GOCSPX-abcdef, whsec_QUJD+/=, bhf_0123456789ab_secretpart, eyJhbGciOi.eyJzdWIiOi.c2ln)",
              coveredBy: ['1//0-not-a-reason'],
            },
            { statusReason: 'Static mutant (and "ignoreStatic" was enabled)' },
            {},
          ],
        },
      },
    };
    expect(redactReport(report)).toBe(true);
    const [first, second, third] = report.files['src/tokens/token-service.ts'].mutants;
    expect(first!.statusReason).toBe(
      "expected '[redacted]…' to be '[redacted]' (code [redacted], [redacted], [redacted], [redacted], [redacted])",
    );
    expect(first!.coveredBy).toEqual(['1//0-not-a-reason']);
    expect(report.files['src/tokens/token-service.ts'].source).toBe(
      "const fake = 'ya29.a0-test-access-token';",
    );
    expect(second!.statusReason).toBe('Static mutant (and "ignoreStatic" was enabled)');
    expect(third).toEqual({});
    expect(redactReport(report)).toBe(false);
  });
});
