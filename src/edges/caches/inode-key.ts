/**
 * The identity of a directory: its device and inode as `${dev}:${ino}` in
 * decimal. Two paths with the same key are the same directory, and a path whose
 * key changed was renamed away or replaced; bigint stats lose nothing of a
 * 64-bit inode. The deletion threads (delete-subtree.cjs) form the same key.
 */
export function inodeKey(st: { dev: bigint | number | string; ino: bigint | number | string }): string {
  return `${st.dev}:${st.ino}`;
}
