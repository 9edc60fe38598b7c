// The CLI as users run it: src/cli.ts and everything it imports, dependencies
// included, bundled by esbuild into dist/cli.js plus one chunk per lazily
// loaded command. Start-up then reads a few files instead of resolving and
// compiling hundreds of modules.
//
// Runs after `tsc -p tsconfig.build.json`, whose per-module output stays in
// dist/: files started by path at run time (the low-priority trash child
// process, worker-thread files) are run from there, in processes of their own.
import { build } from 'esbuild';
import { chmod, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'src');
const dist = path.join(root, 'dist');

// Each bundled module keeps the import.meta.url its own tsc-compiled file has
// (dist/<same path>.js), so a module that finds a file beside itself
// (../package.json, ./trash-worker.js, createRequire for pino-pretty) finds the
// same one as when it is not bundled. Every output file sits directly in
// dist/, so the path is relative to that.
const ownImportMetaUrl = {
  name: 'own-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\/src\/.*\.ts$/ }, async (args) => {
      const { readFile } = await import('node:fs/promises');
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const compiled = './' + path.relative(src, args.path).split(path.sep).join('/').replace(/\.ts$/, '.js');
      return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(compiled)}, import.meta.url).href`), loader: 'ts' };
    });
  },
};

// Stale chunks of an earlier build would sit in the package for nothing.
for (const name of await readdir(dist).catch(() => [])) if (name.startsWith('chunk-')) await rm(path.join(dist, name));

await build({
  entryPoints: { cli: path.join(src, 'cli.ts') },
  outdir: dist,
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Only people at a terminal load pino-pretty (and its own dependencies), at run time.
  external: ['pino-pretty'],
  // Bundled CommonJS dependencies call require() for Node's built-in modules.
  banner: { js: "import { createRequire as __pcaCreateRequire } from 'node:module'; const require = __pcaCreateRequire(import.meta.url);" },
  plugins: [ownImportMetaUrl],
  // Smaller sources parse faster and stay resident for less: V8 keeps every script's source for as long as the process lives.
  // Identifiers stay, so stack traces still name functions.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
});
await chmod(path.join(dist, 'cli.js'), 0o755);
