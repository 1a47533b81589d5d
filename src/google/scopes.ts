/** Scopes behalf names often. */
export const SCOPES = {
  openid: 'openid',
  email: 'https://www.googleapis.com/auth/userinfo.email',
  profile: 'https://www.googleapis.com/auth/userinfo.profile',
  driveAppdata: 'https://www.googleapis.com/auth/drive.appdata',
  drive: 'https://www.googleapis.com/auth/drive',
} as const;

/**
 * Google reports `email` and `profile` back as their full URLs (https://developers.google.com/identity/protocols/oauth2/scopes#openid-connect), so compare in that
 * form: `email` → `https://www.googleapis.com/auth/userinfo.email`, and so on.
 */
export function normalizeScope(scope: string): string {
  switch (scope) {
    case 'email':
      return SCOPES.email;
    case 'profile':
      return SCOPES.profile;
    default:
      return scope;
  }
}

/** Split a space- or comma-separated list, normalise, drop duplicates, keep order. */
export function normalizeScopes(scopes: string | readonly string[]): string[] {
  const list = typeof scopes === 'string' ? scopes.split(/[\s,]+/) : scopes;
  return [...new Set(list.filter((s) => s.length > 0).map(normalizeScope))];
}
