// The send buffer: bytes from SND.UNA onwards, as a queue of the caller's chunks with a
// head offset (no copy), except that small writes are coalesced into an owned tail
// buffer so that many tiny sends do not pile up as many tiny views.

const SMALL_WRITE = 512;
const TAIL_CAPACITY = 8192;

/**
 * A plain Uint8Array view: callers often pass Buffers, whose subarray() goes through the
 * species constructor (a FastBuffer per segment).
 */
function view(c: Uint8Array, start: number, len: number): Uint8Array {
  return new Uint8Array(c.buffer, c.byteOffset + start, len);
}

export class SendBuffer {
  private chunks: Uint8Array[] = [];
  /** Index of the first live chunk. */
  private head = 0;
  /** Bytes of chunks[head] already acknowledged. */
  private headOff = 0;
  /** Bytes held (unacknowledged or unsent). */
  length = 0;
  /** Owned buffer that chunks[last] views when small writes were coalesced. */
  private tail: Uint8Array | null = null;
  private tailStart = 0;
  private tailLen = 0;
  /** Cursor for sequential reads: chunk index and its offset from the buffer start. */
  private curIdx = 0;
  private curPos = 0;

  push(data: Uint8Array): void {
    const n = data.length;
    if (n === 0) return;
    this.length += n;
    // Coalesce only behind other queued data: a lone small write (request/response) is
    // kept by reference like any other.
    if (n <= SMALL_WRITE && this.length > n) {
      const tail = this.tail;
      const last = this.chunks.length - 1;
      if (tail !== null && last >= this.head && this.chunks[last]!.buffer === tail.buffer && this.tailLen + n <= tail.length) {
        tail.set(data, this.tailLen);
        this.tailLen += n;
        this.chunks[last] = tail.subarray(this.tailStart, this.tailLen);
        return;
      }
      const fresh = new Uint8Array(TAIL_CAPACITY);
      fresh.set(data, 0);
      this.tail = fresh;
      this.tailStart = 0;
      this.tailLen = n;
      this.chunks.push(fresh.subarray(0, n));
      return;
    }
    this.chunks.push(data);
  }

  /** Drop `n` acknowledged bytes from the front. */
  drop(n: number): void {
    if (n <= 0) return;
    if (n >= this.length) {
      this.chunks = [];
      this.head = 0;
      this.headOff = 0;
      this.length = 0;
      this.tail = null;
      this.curIdx = 0;
      this.curPos = 0;
      return;
    }
    this.length -= n;
    let rest = n;
    const chunks = this.chunks;
    while (rest > 0) {
      const c = chunks[this.head]!;
      const avail = c.length - this.headOff;
      if (rest < avail) {
        this.headOff += rest;
        break;
      }
      rest -= avail;
      this.head++;
      this.headOff = 0;
    }
    // The cursor is relative to the front; simplest is to reset it.
    this.curIdx = this.head;
    this.curPos = -this.headOff;
    if (this.head > 64 && this.head * 2 > chunks.length) {
      this.chunks = chunks.slice(this.head);
      this.curIdx -= this.head;
      this.head = 0;
    }
  }

  /** A view (or gather list of views) of `len` bytes starting `offset` bytes after the front. */
  read(offset: number, len: number): Uint8Array | Uint8Array[] {
    const chunks = this.chunks;
    // curPos: position of chunks[curIdx] relative to the front (negative for a part-acked head).
    if (offset < this.curPos || this.curIdx < this.head) {
      this.curIdx = this.head;
      this.curPos = -this.headOff;
    }
    let idx = this.curIdx;
    let pos = this.curPos;
    while (offset >= pos + chunks[idx]!.length) {
      pos += chunks[idx]!.length;
      idx++;
    }
    this.curIdx = idx;
    this.curPos = pos;
    const c = chunks[idx]!;
    const start = offset - pos;
    if (start + len <= c.length) return start === 0 && len === c.length ? c : view(c, start, len);
    const out: Uint8Array[] = [view(c, start, c.length - start)];
    let rest = len - (c.length - start);
    while (rest > 0) {
      idx++;
      const d = chunks[idx]!;
      if (rest >= d.length) {
        out.push(d);
        rest -= d.length;
      } else {
        out.push(view(d, 0, rest));
        rest = 0;
      }
    }
    return out;
  }
}
