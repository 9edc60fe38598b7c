/**
 * A cache root built to mislead: symlinks to `/`, out of the root and to
 * sibling caches, a hard link to a file outside, files where caches should be,
 * the agent's own hidden names, a root reached through a symlink, and mounts
 * inside caches and as caches (a tmpfs, and bind mounts of a directory outside
 * the root — on the same filesystem, so they share its st_dev).
 *
 * `expectations()` says, for a set of requested names, exactly which top-level
 * entries must be gone afterwards: the real, non-hidden, non-mount-point
 * directories whose decoded name was requested — nothing else.
 */
import { link, lstat, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { encodeCacheName, decodeDirName, isLegalCacheDirName } from '../../src/core/names.js';
import { TRASH_DIR_NAME } from '../../src/edges/caches/trash.js';
import { hashTree } from '../helpers/fixture.js';
import { bindMount, mountTmpfs, mountsUnder, whereIsTmpfs } from '../helpers/mounts.js';

/** Names chosen to collide with the tree's own hostile entries and with the encoding's edges. */
export const HOSTILE_NAMES = [
  '/',
  '\\',
  '..',
  '.',
  '%',
  '%%',
  '%2F',
  '%2E%2E',
  '%2e%2e',
  '../outside',
  '../../..',
  'a/../../b',
  '\0',
  'a\0b',
  '\n',
  '\r\n',
  '\u0001\u007f',
  '\t',
  ' ',
  '',
  '~',
  '*',
  '-rf',
  '--help',
  'x'.repeat(85),
  'x'.repeat(86),
  'é'.repeat(42),
  'é'.repeat(43),
  'y'.repeat(300),
  'é',
  'e\u0301',
  'Å',
  'A\u030a',
  '\u212b',
  '\ud800',
  'a\udfffb',
  '😀',
  '\u202e',
  '\ufeff',
  TRASH_DIR_NAME,
  '.purge-cache-agent-trash',
  '%2Epurge-cache-agent-trash',
  '.hidden-dir',
  '%2Ehidden-dir',
  '.',
  '.x',
  '%2Ex',
  'link-to-slash',
  'link-outside',
  'link-sibling',
  'link-parent',
  'file-not-dir',
  'plain',
  'has-links',
  'has-tmpfs',
  'has-bind',
  'has-ro-bind',
  'is-tmpfs',
  'is-bind',
  'literal name',
  'literal%20name',
  'my cache',
  'my%20cache',
  'a%2Fb',
  'a/b',
  'caches',
  'outside',
  'victim',
  '\ufffdvictim',
  '%FFvictim',
  '\ufffd(',
  '%C3(',
  '%C3%28',
];

export interface HostileTree {
  base: string;
  /** The sentinel tree: must never change. */
  outside: string;
  /** The directory the root symlink points at. */
  realRoot: string;
  /** What the agent is configured with: a symlink to realRoot. */
  rootLink: string;
  /** tmpfs tags (mountinfo source) → content hash, to check they are left alone. */
  tmpfs: Map<string, string>;
  /** Mounts that could not be made, and why (the tree is built without them). */
  mountProblems: string[];
  /** Top-level entries of the root before the purge. */
  before: Map<string, EntryKind>;
}

export type EntryKind = 'dir' | 'file' | 'symlink' | 'mount' | 'not-utf8';

let tagCounter = 0;

/** Build the tree in `base` (which must exist and be empty), with `names` as extra caches (encoded, and literal where legal). */
export async function buildHostileTree(base: string, names: readonly string[], opts: { mounts: boolean }): Promise<HostileTree> {
  const outside = path.join(base, 'outside');
  const realRoot = path.join(base, 'real-root');
  const rootLink = path.join(base, 'root-link');
  await mkdir(path.join(outside, 'deep', 'er'), { recursive: true });
  await mkdir(path.join(outside, 'bindsrc', 'inner'), { recursive: true });
  await mkdir(path.join(outside, 'bindsrc2'), { recursive: true });
  await writeFile(path.join(outside, 'precious.txt'), 'do not delete\n');
  await writeFile(path.join(outside, 'deep', 'er', 'file'), 'still here\n');
  await writeFile(path.join(outside, 'hardlinked.txt'), 'hard-linked into a cache\n');
  await writeFile(path.join(outside, 'bindsrc', 'keep.txt'), 'seen through a bind mount inside a cache\n');
  await writeFile(path.join(outside, 'bindsrc', 'inner', 'keep2.txt'), 'deeper\n');
  await writeFile(path.join(outside, 'bindsrc2', 'keep.txt'), 'a cache that is a bind mount\n');
  await mkdir(realRoot);
  await symlink(realRoot, rootLink);

  const r = (...p: string[]) => path.join(realRoot, ...p);
  await symlink('/', r('link-to-slash'));
  await symlink(outside, r('link-outside'));
  await symlink('plain', r('link-sibling'));
  await symlink('..', r('link-parent'));
  await writeFile(r('file-not-dir'), 'a file where a cache could be\n');
  await writeFile(r('%2Efile'), 'a file with an encoded name\n');
  await mkdir(r('plain'));
  await writeFile(r('plain', 'data'), 'plain cache\n');
  await mkdir(r('has-links'));
  await symlink(outside, r('has-links', 'escape'));
  await symlink('/', r('has-links', 'slash'));
  await symlink('..', r('has-links', 'up'));
  await symlink(path.join(outside, 'precious.txt'), r('has-links', 'precious-link'));
  await link(path.join(outside, 'hardlinked.txt'), r('has-links', 'hard'));
  await mkdir(r('has-links', 'sub'));
  await symlink('../../..', r('has-links', 'sub', 'way-up'));
  await mkdir(r('.hidden-dir'));
  await writeFile(r('.hidden-dir', 'x'), 'the agent owns dot entries\n');
  await mkdir(r(TRASH_DIR_NAME), { mode: 0o700 });
  await mkdir(r('%2Epurge-cache-agent-trash')); // the cache *named* ".purge-cache-agent-trash"
  await mkdir(r('%2Ehidden-dir'));
  await mkdir(r('literal name'));
  await mkdir(r('literal%20name'));
  // Names that are not UTF-8: read as text they become U+FFFD, the name of some other entry.
  await mkdir(Buffer.concat([Buffer.from(realRoot + '/'), Buffer.from([0xff]), Buffer.from('victim')]));
  await mkdir(Buffer.concat([Buffer.from(realRoot + '/'), Buffer.from([0xc3, 0x28])]));
  await mkdir(r('\ufffdvictim'));

  const tmpfs = new Map<string, string>();
  const mountProblems: string[] = [];
  if (opts.mounts) {
    await mkdir(r('has-tmpfs', 'mnt'), { recursive: true });
    await writeFile(r('has-tmpfs', 'beside-the-mount'), 'deleted with its cache\n');
    const tag = `pca-adv-${process.pid}-${++tagCounter}`;
    const t = await mountTmpfs(r('has-tmpfs', 'mnt'), tag);
    if (t === null) {
      await writeFile(r('has-tmpfs', 'mnt', 'on-tmpfs'), 'another filesystem: never deleted\n');
      await mkdir(r('has-tmpfs', 'mnt', 'dir'));
      tmpfs.set(tag, await hashTree(r('has-tmpfs', 'mnt')));
    } else mountProblems.push(t);

    await mkdir(r('has-bind', 'b'), { recursive: true });
    await writeFile(r('has-bind', 'beside-the-mount'), 'deleted with its cache\n');
    const b = await bindMount(path.join(outside, 'bindsrc'), r('has-bind', 'b'));
    if (b !== null) mountProblems.push(b);

    await mkdir(r('has-ro-bind', 'ro'), { recursive: true });
    const ro = await bindMount(path.join(outside, 'bindsrc'), r('has-ro-bind', 'ro'), { readOnly: true });
    if (ro !== null) mountProblems.push(ro);

    await mkdir(r('is-tmpfs'));
    const tag2 = `pca-adv-${process.pid}-${++tagCounter}`;
    const t2 = await mountTmpfs(r('is-tmpfs'), tag2);
    if (t2 === null) {
      await writeFile(r('is-tmpfs', 'f'), 'a cache that is a mount point\n');
      tmpfs.set(tag2, await hashTree(r('is-tmpfs')));
    } else mountProblems.push(t2);

    await mkdir(r('is-bind'));
    const b2 = await bindMount(path.join(outside, 'bindsrc2'), r('is-bind'));
    if (b2 !== null) mountProblems.push(b2);
  }

  // Generated caches: never written through an existing entry (it may be a symlink to `/`).
  const fresh = async (dirName: string): Promise<void> => {
    const p = r(dirName);
    if (
      await lstat(p).then(
        () => true,
        () => false,
      )
    )
      return;
    await mkdir(p);
    await writeFile(path.join(p, 'data'), 'generated cache\n');
  };
  for (const name of names) {
    const encoded = encodeCacheName(name);
    if (encoded !== null) await fresh(encoded);
    // A plainly named directory too, where the name is legal as one (taken literally).
    if (name !== encoded && isLegalCacheDirName(name) && decodeDirName(name) === name) await fresh(name);
  }

  return { base, outside, realRoot, rootLink, tmpfs, mountProblems, before: await entryKinds(realRoot) };
}

/** An entry's name as a map key: the name itself when it is UTF-8, else its bytes in hex (never a cache name). */
export function entryKey(raw: Buffer): string {
  const text = raw.toString('utf8');
  return Buffer.from(text, 'utf8').equals(raw) ? text : `bytes:${raw.toString('hex')}`;
}

export async function rootEntries(root: string): Promise<Set<string>> {
  return new Set((await readdir(root, { encoding: 'buffer' }).catch(() => [] as Buffer[])).map(entryKey));
}

export async function entryKinds(root: string): Promise<Map<string, EntryKind>> {
  const mountPoints = new Set(await mountsUnder(root));
  const out = new Map<string, EntryKind>();
  for (const raw of await readdir(root, { encoding: 'buffer' })) {
    const key = entryKey(raw);
    if (key.startsWith('bytes:')) {
      out.set(key, 'not-utf8');
      continue;
    }
    const p = path.join(root, key);
    const st = await lstat(p);
    out.set(key, mountPoints.has(p) ? 'mount' : st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : 'file');
  }
  return out;
}

/** The entries that must be gone after purging `requested`: real directories, not hidden, not mount points, whose decoded name was requested. */
export function expectedRemoved(before: Map<string, EntryKind>, requested: ReadonlySet<string>): Set<string> {
  const gone = new Set<string>();
  for (const [name, kind] of before) {
    if (kind === 'dir' && !name.startsWith('.') && requested.has(decodeDirName(name))) gone.add(name);
  }
  return gone;
}

/** Check the tree after a purge of `requested`; returns a list of violations (empty when every invariant holds). */
export async function violations(tree: HostileTree, requested: ReadonlySet<string>, outsideHash: string): Promise<string[]> {
  const problems: string[] = [];
  if ((await hashTree(tree.outside)) !== outsideHash) problems.push('the sentinel tree outside the root changed');
  const rootLinkSt = await lstat(tree.rootLink).catch(() => null);
  if (!rootLinkSt?.isSymbolicLink()) problems.push('the root symlink is gone');
  const after = await rootEntries(tree.realRoot);
  const gone = expectedRemoved(tree.before, requested);
  for (const [name, kind] of tree.before) {
    const present = after.has(name);
    if (gone.has(name) && present)
      problems.push(`${JSON.stringify(name)} (${kind}, decodes to ${JSON.stringify(decodeDirName(name))}) was requested but survived`);
    if (!gone.has(name) && !present) problems.push(`${JSON.stringify(name)} (${kind}) was removed but not requested`);
  }
  for (const name of after) {
    if (!tree.before.has(name)) problems.push(`${JSON.stringify(name)} appeared in the root`);
  }
  for (const [tag, hash] of tree.tmpfs) {
    const where = await whereIsTmpfs(tag);
    if (!where) problems.push(`tmpfs ${tag} is no longer mounted`);
    else if ((await hashTree(where)) !== hash) problems.push(`the tmpfs mounted inside a cache (now at ${where}) changed`);
  }
  return problems;
}
