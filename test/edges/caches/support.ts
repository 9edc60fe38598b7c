/** A sentinel tree for the cache tests: a few directories and files outside the tree under test, hashed before and after. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export async function makeSentinel(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'sub', 'deeper'), { recursive: true });
  await writeFile(path.join(dir, 'precious.txt'), 'must survive\n');
  await writeFile(path.join(dir, 'sub', 'deeper', 'data.bin'), Buffer.alloc(5000, 7));
}
