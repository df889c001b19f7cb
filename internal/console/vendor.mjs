// Copies the players' dist files named in vendor.json from node_modules (npm ci) into
// web/vendor, which the Go binary embeds. Run after changing a version in package.json:
//   npm install --save-exact hls.js@X && npm run vendor
// The e2e test TestConsoleVendoredPlayers fails when the copies differ from node_modules.
import { readFileSync, copyFileSync, readdirSync, rmSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const files = JSON.parse(readFileSync(join(here, 'vendor.json'), 'utf8'));
const out = join(here, 'web', 'vendor');
mkdirSync(out, { recursive: true });
for (const name of readdirSync(out)) rmSync(join(out, name));
for (const [src, dst] of Object.entries(files)) {
  copyFileSync(join(here, 'node_modules', src), join(out, dst));
  console.log(`${src} -> web/vendor/${dst}`);
}
