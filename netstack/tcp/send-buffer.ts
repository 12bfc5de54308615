// The send buffer: bytes from SND.UNA onwards, copied into blocks the buffer owns. A
// writer may reuse its buffer as soon as send() returned (Node's write callback contract),
// so nothing of the caller's is kept. Blocks are allocated as data arrives; a full-size
// block whose bytes are all acknowledged goes to a per-connection free list for the next
// writes, so that a bulk transfer keeps reusing warm memory. An empty buffer holds nothing.
//
// Segments built from read() may still hold views of a block when it is reused (a packet
// queued in a link or a socket, see Link.sendGather). That is safe: a block is reused only
// once every byte of it is acknowledged, so every byte such a packet takes from it lies
// below SND.UNA, hence below the peer's RCV.NXT, and the peer trims it off as a duplicate
// (RFC 9293 section 3.10.7.4); the checksum, computed over the old bytes, most likely
// drops the packet first. Its bytes from blocks not yet reused are unchanged (blocks are
// only appended to). Blocks are reused only within one connection, so such a packet never
// carries another connection's bytes.

/** Size of a full block; only these are reused. */
export const SEND_BLOCK_BYTES = 64 * 1024;
/** The first block for a small write; later blocks double up to SEND_BLOCK_BYTES. */
const MIN_BLOCK_BYTES = 512;
/** V8 keeps typed arrays up to this size on its heap: cheaper than a slice of a slab. */
const TINY_BLOCK_BYTES = 64;

/**
 * A plain Uint8Array view: callers often pass Buffers, whose subarray() goes through the
 * species constructor (a FastBuffer per segment).
 */
function view(c: Uint8Array, start: number, len: number): Uint8Array {
  return new Uint8Array(c.buffer, c.byteOffset + start, len);
}

/** Small blocks are carved from shared slabs of this size: one allocation per slab. */
const SLAB_BYTES = 64 * 1024;
let slab = new ArrayBuffer(0);
let slabUsed = 0;

/**
 * A block of uninitialised memory (every byte is written before it is read). Small ones
 * share a slab with other connections' small blocks, which is safe as they are never
 * reused: a slab's bytes are written once, by the block they belong to.
 */
function allocBlock(capacity: number): Uint8Array {
  if (capacity >= SEND_BLOCK_BYTES) return new Uint8Array(Buffer.allocUnsafeSlow(capacity).buffer, 0, capacity);
  if (slabUsed + capacity > slab.byteLength) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES).buffer;
    slabUsed = 0;
  }
  const block = new Uint8Array(slab, slabUsed, capacity);
  slabUsed += capacity;
  return block;
}

export class SendBuffer {
  /** Live blocks from index `head`; all but the last are full. */
  private blocks: Uint8Array[] = [];
  private head = 0;
  /** Bytes of blocks[head] already acknowledged. */
  private headOff = 0;
  /** Bytes written into the last block. */
  private tailUsed = 0;
  /** Bytes held (unacknowledged or unsent). */
  length = 0;
  /**
   * Full-size blocks free for reuse. Bounded without a limit of its own: a block is only
   * allocated when this is empty, so live and free blocks together never outnumber the
   * most blocks the buffered bytes (at most the send buffer size) ever needed at once.
   */
  private free: Uint8Array[] = [];
  /** Cursor for sequential reads: block index and its position relative to the front. */
  private curIdx = 0;
  private curPos = 0;

  /** Blocks holding data (diagnostics and tests). */
  get blockCount(): number {
    return this.blocks.length - this.head;
  }

  /** Bytes of memory in live and free blocks (diagnostics and tests). */
  get allocatedBytes(): number {
    let n = 0;
    for (let i = this.head; i < this.blocks.length; i++) n += this.blocks[i]!.length;
    for (const b of this.free) n += b.length;
    return n;
  }

  /** Blocks waiting for reuse (diagnostics and tests). */
  get freeBlocks(): number {
    return this.free.length;
  }

  /** Copy `data` in; the caller may reuse it as soon as this returns. */
  push(data: Uint8Array): void {
    const n = data.length;
    if (n === 0) return;
    this.length += n;
    let done = 0;
    const blocks = this.blocks;
    if (blocks.length > this.head) {
      const tail = blocks[blocks.length - 1]!;
      const room = tail.length - this.tailUsed;
      if (room > 0) {
        done = room < n ? room : n;
        if (done <= 16) for (let i = 0; i < done; i++) tail[this.tailUsed + i] = data[i]!;
        else tail.set(done === n ? data : view(data, 0, done), this.tailUsed);
        this.tailUsed += done;
      }
    }
    while (done < n) {
      const block = this.newBlock(n - done);
      const k = Math.min(block.length, n - done);
      if (k <= 16) for (let i = 0; i < k; i++) block[i] = data[done + i]!;
      else block.set(done === 0 && k === n ? data : view(data, done, k), 0);
      blocks.push(block);
      this.tailUsed = k;
      done += k;
    }
  }

  private newBlock(want: number): Uint8Array {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (want >= SEND_BLOCK_BYTES) return allocBlock(SEND_BLOCK_BYTES);
    // A lone tiny write (request/response): exactly its size, on the JS heap.
    if (want <= TINY_BLOCK_BYTES && this.blocks.length === this.head) return new Uint8Array(want);
    // Grow with the stream: a lone small write gets a small block, a bulk writer soon full ones.
    const last = this.blocks.length > this.head ? this.blocks[this.blocks.length - 1]!.length : 0;
    let cap = MIN_BLOCK_BYTES;
    while (cap < want || cap <= last) cap *= 2;
    return allocBlock(cap < SEND_BLOCK_BYTES ? cap : SEND_BLOCK_BYTES);
  }

  /** Drop `n` acknowledged bytes from the front. */
  drop(n: number): void {
    if (n <= 0) return;
    if (n >= this.length) {
      this.blocks = [];
      this.head = 0;
      this.headOff = 0;
      this.tailUsed = 0;
      this.length = 0;
      if (this.free.length > 0) this.free = [];
      this.curIdx = 0;
      this.curPos = 0;
      return;
    }
    this.length -= n;
    let rest = n;
    const blocks = this.blocks;
    // Bytes remain after the drop, so every block passed here is full (not the tail).
    while (rest > 0) {
      const b = blocks[this.head]!;
      const avail = b.length - this.headOff;
      if (rest < avail) {
        this.headOff += rest;
        break;
      }
      rest -= avail;
      if (b.length === SEND_BLOCK_BYTES) this.free.push(b);
      blocks[this.head] = EMPTY;
      this.head++;
      this.headOff = 0;
    }
    // The cursor is relative to the front; simplest is to reset it.
    this.curIdx = this.head;
    this.curPos = -this.headOff;
    if (this.head > 64 && this.head * 2 > blocks.length) {
      this.blocks = blocks.slice(this.head);
      this.curIdx -= this.head;
      this.head = 0;
    }
  }

  /** A view (or gather list of views) of `len` bytes starting `offset` bytes after the front. */
  read(offset: number, len: number): Uint8Array | Uint8Array[] {
    const blocks = this.blocks;
    const last = blocks.length - 1;
    const tailUsed = this.tailUsed;
    // curPos: position of blocks[curIdx] relative to the front (negative for a part-acked head).
    if (offset < this.curPos || this.curIdx < this.head) {
      this.curIdx = this.head;
      this.curPos = -this.headOff;
    }
    let idx = this.curIdx;
    let pos = this.curPos;
    while (idx < last && offset >= pos + blocks[idx]!.length) {
      pos += blocks[idx]!.length;
      idx++;
    }
    this.curIdx = idx;
    this.curPos = pos;
    const b = blocks[idx]!;
    const start = offset - pos;
    const used = idx === last ? tailUsed : b.length;
    if (start + len <= used) return start === 0 && len === b.length ? b : view(b, start, len);
    const out: Uint8Array[] = [view(b, start, used - start)];
    let rest = len - (used - start);
    while (rest > 0) {
      idx++;
      const d = blocks[idx]!;
      const dUsed = idx === last ? tailUsed : d.length;
      const k = rest < dUsed ? rest : dUsed;
      out.push(view(d, 0, k));
      rest -= k;
    }
    return out;
  }
}

const EMPTY = new Uint8Array(0);
