import { describe, expect, it } from 'vitest';
import { mountOf, parseMountinfo } from '../../../src/commands/doctor/mounts.js';
import { heartbeatLine } from '../../../src/engine/heartbeat.js';
import { exposure } from '../../../src/commands/serve-command.js';

const MOUNTINFO = [
  '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
  '30 22 0:25 / /var/cache rw,nosuid master:2 - xfs /dev/sdb1 rw',
  '31 30 0:26 / /var/cache/with\\040space rw - tmpfs tmpfs rw,size=1024k',
  '32 22 0:27 / /mnt/ro ro,relatime - btrfs /dev/sdc1 ro',
  'garbage line',
  '',
].join('\n');

describe('the filesystem of a path, from mountinfo', () => {
  const mounts = parseMountinfo(MOUNTINFO);
  it('parses every well-formed line, unescaping mount points', () => {
    expect(mounts.map((m) => [m.mountPoint, m.fsType])).toEqual([
      ['/', 'ext4'],
      ['/var/cache', 'xfs'],
      ['/var/cache/with space', 'tmpfs'],
      ['/mnt/ro', 'btrfs'],
    ]);
  });
  it('picks the longest mount point holding the path, never a mere name prefix', () => {
    expect(mountOf(mounts, '/var/cache/tasks')?.fsType).toBe('xfs');
    expect(mountOf(mounts, '/var/cache')?.fsType).toBe('xfs');
    expect(mountOf(mounts, '/var/cache/with space/x')?.fsType).toBe('tmpfs');
    expect(mountOf(mounts, '/var/cachet')?.fsType).toBe('ext4');
    expect(mountOf(mounts, '/home/a')?.fsType).toBe('ext4');
    expect(mountOf(mounts, '/mnt/ro/a')?.options).toBe('ro,relatime');
  });
});

describe('the heartbeat', () => {
  it('says how many cycles ran and when the service last answered, when no cycle spoke since the last one', () => {
    expect(heartbeatLine({ cycles: 12, failures: 1, sinceLast: 10, newsSinceLast: false }, Date.UTC(2026, 10, 21, 8, 21))).toEqual({
      cyclesRun: 12,
      cyclesSinceLastHeartbeat: 10,
      failedCycles: 1,
      lastSuccess: '2026-11-21T08:21:00.000Z',
    });
    expect(heartbeatLine({ cycles: 0, failures: 0, sinceLast: 0, newsSinceLast: false }, null)?.lastSuccess).toBeNull();
  });
  it('stays quiet when a cycle already logged at info', () => {
    expect(heartbeatLine({ cycles: 3, failures: 0, sinceLast: 3, newsSinceLast: true }, null)).toBeNull();
  });
});

describe("serve's exposure", () => {
  it.each([
    ['127.0.0.1', false, false, 'loopback'],
    ['::1', false, false, 'loopback'],
    ['localhost', false, false, 'loopback'],
    ['0.0.0.0', false, false, 'refused'],
    ['::', false, false, 'refused'],
    ['10.0.0.5', false, true, 'anonymous'],
    ['0.0.0.0', true, false, 'hawk'],
  ] as const)('%s, clients %s, --allow-anonymous %s: %s', (host, clients, allow, expected) => {
    expect(exposure(host, clients, allow)).toBe(expected);
  });
});
