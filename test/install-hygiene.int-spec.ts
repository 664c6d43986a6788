// What a newcomer sees before any code runs: npm commands in this project print no warnings, and no
// installed package asks for a newer Node.js than the one the README and package.json promise.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as semver from 'semver';

const ROOT = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };

jest.setTimeout(60_000);

describe('install hygiene', () => {
  it('an ordinary npm command prints no warning (no unknown .npmrc keys)', async () => {
    const stderr = await new Promise<string>((resolve, reject) =>
      execFile('npm', ['pkg', 'get', 'name'], { cwd: ROOT }, (err, _out, errOut) => (err ? reject(err) : resolve(errOut))),
    );
    expect(stderr).not.toMatch(/npm warn/i);
  });

  it("every locked package's engines.node accepts the oldest Node.js package.json allows", () => {
    const oldest = semver.minVersion(pkg.engines.node)!.version;
    expect(oldest).toBe('20.19.0');
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
    };
    const refuse = Object.entries(lock.packages)
      .filter(([name, p]) => name !== '' && p.engines && !Array.isArray(p.engines) && p.engines.node && !semver.satisfies(oldest, p.engines.node))
      .map(([name, p]) => `${name.replace(/^.*node_modules\//, '')}@${p.version} needs node ${(p.engines as { node: string }).node}`);
    expect(refuse).toEqual([]);
  });

  it("the lock file lists every platform's optional packages, so npm install on another machine does not rewrite it", () => {
    // npm records optional platform packages (@swc/core-darwin-arm64, ...) whether or not they install here;
    // a lock made where a registry mirror lacked some is completed, i.e. rewritten, by the next npm install.
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { optionalDependencies?: Record<string, string> }>;
    };
    const names = new Set(Object.keys(lock.packages).map((k) => k.replace(/^.*node_modules\//, '')));
    const missing = Object.entries(lock.packages).flatMap(([owner, p]) =>
      Object.keys(p.optionalDependencies ?? {})
        .filter((dep) => !names.has(dep))
        .map((dep) => `${dep} (optional dependency of ${owner.replace(/^.*node_modules\//, '') || 'the project'})`),
    );
    expect(missing).toEqual([]);
  });
});
