// The preload library's request and reply (hostfn/preload-wire.ts), byte for byte as
// native/preload/preload.c lays them out.

import assert from 'node:assert/strict';
import { OP_LISTEN, REPLY_BYTES, REQUEST_BYTES, decodeReply, decodeRequest, encodeReply, encodeRequest, errnoOf } from '../../hostfn/preload-wire.js';

describe('hostfn/preload-wire', () => {
  it('a request: op, port and address in network order, backlog and pid little endian', () => {
    const b = encodeRequest({ op: OP_LISTEN, port: 8080, address: '10.77.0.5', arg: 511, pid: 4242 });
    assert.equal(b.length, REQUEST_BYTES);
    assert.deepEqual([...b.subarray(0, 8)], [2, 0, 0x1f, 0x90, 10, 77, 0, 5]);
    assert.equal(b.readUInt32LE(8), 511);
    assert.deepEqual(decodeRequest(b), { op: OP_LISTEN, port: 8080, address: '10.77.0.5', arg: 511, pid: 4242 });
  });

  it('a reply round-trips, an error as a positive errno', () => {
    const r = { err: 0, id: 7, localAddress: '10.77.0.5', localPort: 8080, peerAddress: '10.77.0.9', peerPort: 40000 };
    const b = encodeReply(r);
    assert.equal(b.length, REPLY_BYTES);
    assert.deepEqual(decodeReply(b), r);
    assert.equal(decodeReply(encodeReply({ err: errnoOf('ECONNREFUSED') })).err, 111);
  });

  it('maps Node error codes to Linux errnos, EIO for the unknown', () => {
    assert.equal(errnoOf('EADDRINUSE'), 98);
    assert.equal(errnoOf('ETIMEDOUT'), 110);
    assert.equal(errnoOf('ENOTFOUND'), 113);
    assert.equal(errnoOf('ESOMETHINGELSE'), 5);
    assert.equal(errnoOf(undefined), 5);
  });
});
