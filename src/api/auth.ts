/**
 * Bearer-token check for the API over TCP, in constant time.
 *
 * Both the expected token and the presented one are reduced to HMAC-SHA256
 * digests under a key chosen at start, and the digests (always 32 bytes) are
 * compared with timingSafeEqual: a token of the wrong length neither throws
 * nor answers faster, and nothing about the token leaks through timing.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export class TokenCheck {
  private readonly key = randomBytes(32);
  private readonly expected: Buffer;

  constructor(token: string) {
    this.expected = this.digest(token);
  }

  /** True when `authorization` is `Bearer <the token>`. */
  accepts(authorization: string | undefined): boolean {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
    // Compare something even when the header is missing or malformed, so every refusal costs the same.
    const presented = this.digest(match?.[1] ?? '');
    return timingSafeEqual(presented, this.expected) && match !== null;
  }

  private digest(value: string): Buffer {
    return createHmac('sha256', this.key).update(value, 'utf8').digest();
  }
}
