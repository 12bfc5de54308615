// The gateway (the network's first address): ICMP echo, DNS for host names, and ICMP
// unreachable for addresses with no host.

import { ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, buildIcmpEchoReply, buildIcmpUnreachable, parseIcmp, ICMP_UNREACH_PORT } from '../netstack/wire/icmp.js';
import { PROTO_ICMP, PROTO_UDP, parseIpv4 } from '../netstack/wire/ipv4.js';
import { buildUdpPacket, parseUdp } from '../netstack/wire/udp.js';
import { isWireError } from '../netstack/wire/error.js';
import { formatAddress } from './address.js';
import { DNS_CLASS_IN, DNS_RCODE_FORMERR, DNS_RCODE_NOERROR, DNS_RCODE_NOTIMP, DNS_RCODE_NXDOMAIN, DNS_TYPE_A, buildDnsResponse, parseDns } from '../netstack/wire/dns.js';
import { isIcmpError } from './packet.js';

export const DNS_PORT = 53;
/** Short, so that a name's answer follows a host joining or leaving by hand. */
export const DNS_TTL_S = 5;
/** RFC 1035 section 3.2.3: QTYPE * */
const DNS_TYPE_ANY = 255;

export interface GatewayEnv {
  readonly gateway: number;
  readonly domain: string;
  /** address of a known host name, and whether a lookup is an allocation signal for it */
  lookup(name: string): number | null;
  /** a DNS query for a declared host is an allocation signal */
  dnsSignal(name: string, reason: string): void;
  /** send a packet from the gateway into the network */
  send(packet: Uint8Array): void;
  /** an echo reply to the gateway (for the relay's own ping) */
  echoReply(from: number, identifier: number, sequence: number): void;
  count(reason: string): void;
}

export class Gateway {
  constructor(private readonly env: GatewayEnv) {}

  /** A packet addressed to the gateway (a copy or a view valid during the call). */
  handle(packet: Uint8Array): void {
    const ip = parseIpv4(packet, false);
    if (isWireError(ip)) return this.env.count(`gateway-${ip.reason}`);
    if (ip.fragmentOffset !== 0 || (ip.flags & 1) !== 0) return this.env.count('gateway-fragment');
    if (ip.protocol === PROTO_ICMP) {
      const icmp = parseIcmp(ip.payload);
      if (isWireError(icmp)) return this.env.count(`gateway-${icmp.reason}`);
      if (icmp.type === ICMP_ECHO_REQUEST) {
        this.env.send(buildIcmpEchoReply(ip, icmp));
      } else if (icmp.type === ICMP_ECHO_REPLY) {
        this.env.echoReply(ip.src, icmp.identifier, icmp.sequence);
      }
      return;
    }
    if (ip.protocol === PROTO_UDP) {
      const udp = parseUdp(ip.payload, ip.src, ip.dst);
      if (isWireError(udp)) return this.env.count(`gateway-${udp.reason}`);
      if (udp.dstPort !== DNS_PORT) {
        this.env.send(buildIcmpUnreachable(packet.subarray(0, ip.totalLength), ICMP_UNREACH_PORT, this.env.gateway));
        return;
      }
      const answer = this.answerDns(udp.payload, ip.src);
      if (answer !== null) {
        this.env.send(buildUdpPacket({ src: this.env.gateway, dst: ip.src, srcPort: DNS_PORT, dstPort: udp.srcPort, payload: answer }));
      }
      return;
    }
    this.env.count('gateway-unhandled');
  }

  private answerDns(msg: Uint8Array, from: number): Uint8Array | null {
    const q = parseDns(msg);
    if (isWireError(q)) {
      this.env.count(`gateway-${q.reason}`);
      // RFC 1035 section 4.1.1: a query we cannot parse gets FORMERR, echoing its id.
      if (msg.length < 12 || (msg[2] & 0x80) !== 0) return null;
      const out = new Uint8Array(12);
      out[0] = msg[0];
      out[1] = msg[1];
      out[2] = 0x80;
      out[3] = DNS_RCODE_FORMERR;
      return out;
    }
    if (q.qr) return null;
    if (q.opcode !== 0) return buildDnsResponse(q, { rcode: DNS_RCODE_NOTIMP });
    if (q.questions.length !== 1) return buildDnsResponse(q, { rcode: DNS_RCODE_FORMERR });
    const question = q.questions[0];
    let name = question.name;
    const suffix = `.${this.env.domain}`;
    if (name.endsWith(suffix)) name = name.slice(0, -suffix.length);
    const address = question.class === DNS_CLASS_IN && !name.includes('.') ? this.env.lookup(name) : null;
    if (address === null) return buildDnsResponse(q, { rcode: DNS_RCODE_NXDOMAIN });
    if (question.type === DNS_TYPE_A || question.type === DNS_TYPE_ANY) {
      this.env.dnsSignal(name, `DNS query ${question.name} from ${formatAddress(from)}`);
      return buildDnsResponse(q, { answers: [{ address, ttl: DNS_TTL_S }] });
    }
    // the name exists but has no record of that type (e.g. AAAA): NOERROR, no answers
    return buildDnsResponse(q, { rcode: DNS_RCODE_NOERROR });
  }

  /** ICMP unreachable (RFC 792) about `original`, or null for packets that must not get one. */
  unreachable(original: Uint8Array, code: number): Uint8Array | null {
    if (isIcmpError(original)) return null;
    // RFC 1122 section 3.2.2: only about the first fragment
    if ((((original[6] << 8) | original[7]) & 0x1fff) !== 0) return null;
    return buildIcmpUnreachable(original, code, this.env.gateway);
  }
}
