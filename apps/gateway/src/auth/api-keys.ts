// API keys are configured as `name:sha256hex[:scope+scope]` (the hex SHA-256 of the secret); the
// secret itself never sits in config or Redis. The key's name is the owner of every job, batch and
// file it makes; its scopes say which route families it may call (auth.guard.ts, @Scopes).
import { createHash } from 'node:crypto';
import { ALL_API_SCOPES, type ApiScope } from '@dllm/config';

export interface ApiKeyEntry {
  name: string;
  sha256: string;
  /** What the key may do; undefined = every scope. */
  scopes?: readonly ApiScope[];
}

export interface ApiKeyIdentity {
  name: string;
  scopes: ReadonlySet<ApiScope>;
}

export function hashApiKey(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export class ApiKeyRing {
  private readonly byHash = new Map<string, ApiKeyIdentity>();

  constructor(entries: ApiKeyEntry[]) {
    for (const e of entries) {
      const h = e.sha256.toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(h)) throw new Error(`API key '${e.name}': expected a 64-char hex SHA-256, got '${e.sha256}'`);
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(e.name)) throw new Error(`API key name '${e.name}': use letters, digits, '_', '.', '-'`);
      if (this.byHash.has(h)) throw new Error(`API key '${e.name}': same hash as '${this.byHash.get(h)!.name}'`);
      const unknown = (e.scopes ?? []).filter((s) => !ALL_API_SCOPES.includes(s));
      if (unknown.length) throw new Error(`API key '${e.name}': unknown scope '${unknown[0]}'`);
      this.byHash.set(h, { name: e.name, scopes: new Set(e.scopes ?? ALL_API_SCOPES) });
    }
  }

  get size(): number {
    return this.byHash.size;
  }

  /** The owner name and scopes for a presented secret, or undefined. */
  identify(secret: string): ApiKeyIdentity | undefined {
    return this.byHash.get(hashApiKey(secret));
  }

  /** The owner name for a presented secret, or undefined. */
  owner(secret: string): string | undefined {
    return this.identify(secret)?.name;
  }
}

/** `Authorization: Bearer <key>` (or `x-api-key: <key>`) -> the secret, or undefined. */
export function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers['authorization'];
  const a = Array.isArray(auth) ? auth[0] : auth;
  if (a) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(a);
    return m ? m[1] : undefined;
  }
  const x = headers['x-api-key'];
  return (Array.isArray(x) ? x[0] : x) || undefined;
}
