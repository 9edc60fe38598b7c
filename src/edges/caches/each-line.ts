import { open } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';

/** Bytes read at a time (from /proc's maps, locks and mountinfo). */
const LINE_BUFFER = 64 * 1024;

/**
 * Feed `file` to `onLine` a line at a time, until it ends or `onLine` returns
 * false: read in chunks of a fixed buffer, so memory stays bounded whatever
 * the file's length. A line longer than the buffer is cut (procfs lines are
 * far shorter, save a path in maps, which is then only partly compared).
 */
export async function eachLine(file: string, onLine: (line: string) => boolean): Promise<void> {
  const handle = await open(file, 'r');
  const buffer = Buffer.allocUnsafe(LINE_BUFFER);
  // A character split between two reads is decoded whole.
  const decoder = new StringDecoder('utf8');
  let carry = '';
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, LINE_BUFFER, null);
      if (bytesRead === 0) break;
      const text = carry + decoder.write(buffer.subarray(0, bytesRead));
      const lastBreak = text.lastIndexOf('\n');
      carry = text.slice(lastBreak + 1).slice(0, LINE_BUFFER);
      if (lastBreak < 0) continue;
      for (const line of text.slice(0, lastBreak).split('\n')) if (!onLine(line)) return;
    }
    if (carry !== '') onLine(carry);
  } finally {
    await handle.close();
  }
}
