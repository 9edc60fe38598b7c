import { describe, expect, it, afterEach } from 'vitest';
import fc from 'fast-check';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  devOf,
  formatCmdline,
  fsLocation,
  isInside,
  lockKey,
  parseFdinfoLocks,
  parseMaps,
  parseMountinfo,
  parseProcLocks,
  pathForms,
} from '../../../src/edges/caches/proc.js';
import { tryFlock } from '../../../src/edges/flock.js';
import { makeTempDir, type TempDir } from '../../helpers/tmp.js';

const LOCKS = `1: POSIX  ADVISORY  WRITE 1234 fe:01:5678 0 EOF
1: -> POSIX  ADVISORY  WRITE 1240 fe:01:5678 0 EOF
2: FLOCK  ADVISORY  READ 99 00:2c:12 0 EOF
3: OFDLCK ADVISORY  READ -1 103:1a4:77 0 EOF
4: LEASE  ACTIVE    READ 55 08:01:88 0 EOF
5: POSIX  ADVISORY  WRITE 77 <none>:0 0 EOF
6: FLOCK  ADVISORY  WRITE 0 08:01:18446744073709551615 0 EOF
garbage
`;

describe('parseProcLocks', () => {
  it('reads held locks, skips waiters and inode-less locks, normalises devices to decimal', () => {
    expect(parseProcLocks(LOCKS)).toEqual([
      { type: 'POSIX', access: 'WRITE', pid: 1234, dev: '254:1', ino: 5678n },
      { type: 'FLOCK', access: 'READ', pid: 99, dev: '0:44', ino: 12n },
      { type: 'OFDLCK', access: 'READ', pid: -1, dev: '259:420', ino: 77n },
      { type: 'LEASE', access: 'READ', pid: 55, dev: '8:1', ino: 88n },
      { type: 'FLOCK', access: 'WRITE', pid: 0, dev: '8:1', ino: 18446744073709551615n },
    ]);
  });

  it('reads the lock lines of an fdinfo file', () => {
    const info = 'pos:\t0\nflags:\t0100000\nmnt_id:\t27\nino:\t2146524\nlock:\t1: FLOCK  ADVISORY  WRITE 4976 fe:00:2146524 0 EOF\n';
    expect(parseFdinfoLocks(info)).toEqual([{ type: 'FLOCK', access: 'WRITE', pid: 4976, dev: '254:0', ino: 2146524n }]);
    expect(parseFdinfoLocks('pos:\t0\nflags:\t02\n')).toEqual([]);
  });
});

describe('devOf', () => {
  // glibc's makedev, the encoding stat(2) hands to userspace.
  const makedev = (major: bigint, minor: bigint): bigint => (minor & 0xffn) | ((major & 0xfffn) << 8n) | ((minor & ~0xffn) << 12n) | ((major & ~0xfffn) << 32n);

  it('inverts makedev for every major and minor the kernel can hold', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 12n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 20n) - 1n }), (major, minor) => {
        expect(devOf(makedev(major, minor))).toBe(`${major}:${minor}`);
      }),
    );
  });

  it('decodes minors above 255 (anonymous devices: tmpfs, overlay, btrfs)', () => {
    expect(devOf(makedev(0n, 300n))).toBe('0:300');
    expect(devOf(0x10002cn)).toBe('0:300');
  });

  describe('against the kernel', () => {
    let tmp: TempDir;
    afterEach(() => tmp.cleanup());

    it('a real flock on a real file appears in /proc/locks under the stat key', async () => {
      tmp = await makeTempDir('pca-proc-');
      const file = path.join(tmp.path, 'locked');
      await writeFile(file, '');
      const handle = await open(file, 'r');
      try {
        expect(await tryFlock(handle.fd, 'exclusive')).toBe('locked');
        const st = await stat(file, { bigint: true });
        const keys = parseProcLocks(await readFile('/proc/locks', 'utf8')).map((l) => lockKey(l.dev, l.ino));
        expect(keys).toContain(lockKey(devOf(st.dev), st.ino));
      } finally {
        await handle.close();
      }
    });
  });
});

describe('parseMaps', () => {
  const pad = (prefix: string) => prefix.padEnd(73) + ' ';
  it('returns the distinct file paths, with odd names intact', () => {
    const text = [
      pad('55d0c0a00000-55d0c0a02000 r--p 00000000 fe:00 1234') + '/usr/bin/sleep',
      pad('55d0c0a02000-55d0c0a06000 r-xp 00002000 fe:00 1234') + '/usr/bin/sleep',
      pad('55d0c1b4c000-55d0c1b6d000 rw-p 00000000 00:00 0') + '[heap]',
      pad('7f0000000000-7f0000001000 rw-s 00000000 fe:00 99') + '/c/my cache/a file (deleted)',
      pad('7f0000001000-7f0000002000 r--p 00000000 fe:00 98') + '/c/new\\012line',
      pad('7f0000002000-7f0000003000 rw-p 00000000 00:00 0'),
      pad('7ffd0d9e4000-7ffd0d9e6000 r-xp 00000000 00:00 0') + '[vdso]',
      pad('7f0000003000-7f0000004000 r--s 00000000 00:01 12') + '/memfd:x (deleted)',
    ].join('\n');
    expect(parseMaps(text)).toEqual(['/usr/bin/sleep', '/c/my cache/a file (deleted)', '/c/new\nline', '/memfd:x (deleted)']);
  });

  it('reads the real maps of this process', async () => {
    const paths = parseMaps(await readFile('/proc/self/maps', 'utf8'));
    expect(paths).toContain(await import('node:fs').then((fs) => fs.realpathSync(process.execPath)));
  });
});

describe('paths', () => {
  it('contains exactly: the directory and below, never a sibling with the same prefix', () => {
    expect(isInside('/c/a', '/c/a')).toBe(true);
    expect(isInside('/c/a/x/y', '/c/a')).toBe(true);
    expect(isInside('/c/ab', '/c/a')).toBe(false);
    expect(isInside('/c/ab/x', '/c/a')).toBe(false);
    expect(isInside('/c', '/c/a')).toBe(false);
    expect(isInside('/anything', '/')).toBe(true);
  });

  it('tries a deleted path with and without the marker', () => {
    expect(pathForms('/c/a/f (deleted)')).toEqual(['/c/a/f (deleted)', '/c/a/f']);
    expect(pathForms('/c/a (deleted)/f')).toEqual(['/c/a (deleted)/f']);
    expect(pathForms('/c/a (deleted)').some((p) => isInside(p, '/c/a (deleted)'))).toBe(true);
    expect(pathForms('/c/a (deleted)').some((p) => isInside(p, '/c/a'))).toBe(true);
  });

  it('formats command lines on one line', () => {
    expect(formatCmdline('cargo\0build\0--release\0')).toBe('cargo build --release');
    expect(formatCmdline('a\nb\0')).toBe('a?b');
    expect(formatCmdline('x'.repeat(300))).toHaveLength(200);
    expect(formatCmdline('')).toBe('');
  });
});

describe('mountinfo', () => {
  const MOUNTINFO = `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 254:0 /var/caches/root /builds/my\\040caches rw,relatime - ext4 /dev/vda rw
41 40 0:50 / /builds/my\\040caches/tmp rw - tmpfs tmpfs rw
42 27 0:60 /@sub /data rw - btrfs /dev/vdb rw
43 27 0:61 / /data rw - tmpfs tmpfs rw
`;
  const mounts = parseMountinfo(MOUNTINFO);

  it('parses devices, roots and mount points, unescaping octal', () => {
    expect(mounts[2]).toEqual({ dev: '254:0', root: '/var/caches/root', mountPoint: '/builds/my caches' });
  });

  it('locates a path on its filesystem through the deepest mount, later mounts hiding earlier ones', () => {
    expect(fsLocation('/builds/my caches/a/b', mounts)).toEqual({ dev: '254:0', fsPath: '/var/caches/root/a/b' });
    expect(fsLocation('/builds/my caches', mounts)).toEqual({ dev: '254:0', fsPath: '/var/caches/root' });
    expect(fsLocation('/builds/my caches/tmp/x', mounts)).toEqual({ dev: '0:50', fsPath: '/x' });
    expect(fsLocation('/builds/my cachesX', mounts)).toEqual({ dev: '254:0', fsPath: '/builds/my cachesX' });
    expect(fsLocation('/data/x', mounts)).toEqual({ dev: '0:61', fsPath: '/x' });
    expect(fsLocation('/etc/passwd', mounts)).toEqual({ dev: '254:0', fsPath: '/etc/passwd' });
  });
});
