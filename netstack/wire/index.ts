// The wire layer: records, parse and emit for IPv4, ICMPv4, UDP, TCP and DNS. It imports
// nothing outside this folder, so the relay can use it on its own.

export * from './error.js';
export * from './checksum.js';
export * from './ipv4.js';
export * from './icmp.js';
export * from './udp.js';
export * from './tcp.js';
export * from './dns.js';
