/**
 * Which filesystem a path is on, from /proc/self/mountinfo: the mount whose
 * mount point is the longest prefix of the (real) path. Pure functions; the
 * caller reads the file.
 */

export interface Mount {
  mountPoint: string;
  fsType: string;
  source: string;
  options: string;
}

/** Mount points escape space, tab, newline and backslash as octal (`\040`). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/** Parse mountinfo(5): `id parent major:minor root mountpoint options [optional…] - fstype source superoptions`. */
export function parseMountinfo(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    const [mountPoint, options, fsType, source] = [fields[4], fields[5], fields[dash + 1], fields[dash + 2]];
    if (dash < 6 || mountPoint === undefined || options === undefined || fsType === undefined || source === undefined) continue;
    mounts.push({ mountPoint: unescape(mountPoint), options, fsType, source: unescape(source) });
  }
  return mounts;
}

/** The mount holding `realPath` (an absolute path with symlinks resolved); the last mounted wins over one it hides. */
export function mountOf(mounts: readonly Mount[], realPath: string): Mount | undefined {
  let best: Mount | undefined;
  for (const mount of mounts) {
    const point = mount.mountPoint;
    const inside = point === '/' || realPath === point || realPath.startsWith(point.endsWith('/') ? point : `${point}/`);
    if (inside && (!best || point.length >= best.mountPoint.length)) best = mount;
  }
  return best;
}
