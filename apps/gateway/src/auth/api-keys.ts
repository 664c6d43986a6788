// API keys are configured as `name:sha256hex` (the hex SHA-256 of the secret); the secret itself
// never sits in config or Redis. The key's name is the owner of every job, batch and file it makes.
import { createHash } from 'node:crypto';

export interface ApiKeyEntry {
  name: string;
  sha256: string;
}

export function hashApiKey(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export class ApiKeyRing {
  private readonly byHash = new Map<string, string>();

  constructor(entries: ApiKeyEntry[]) {
    for (const e of entries) {
      const h = e.sha256.toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(h)) throw new Error(`API key '${e.name}': expected a 64-char hex SHA-256, got '${e.sha256}'`);
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(e.name)) throw new Error(`API key name '${e.name}': use letters, digits, '_', '.', '-'`);
      if (this.byHash.has(h)) throw new Error(`API key '${e.name}': same hash as '${this.byHash.get(h)}'`);
      this.byHash.set(h, e.name);
    }
  }

  get size(): number {
    return this.byHash.size;
  }

  /** The owner name for a presented secret, or undefined. */
  owner(secret: string): string | undefined {
    return this.byHash.get(hashApiKey(secret));
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
