// Help texts of the imach command and its subcommands.

export const TOP = `imach: Imaginary Machines. Every host of an application gets an address on a private
IPv4 network; hosts start when a packet or a DNS lookup needs them and are released when idle.

usage: imach <command> [options]

commands:
  up [manifest]         run the relay and the application's hosts (local child processes)
  relay                 run the relay only (admin API and WebSocket join)
  host <module>         join one extra host by hand, running <module>
  token <name>          mint a join token for a host (or @admin)
  ps                    list hosts: address, state, uptime, connections, bytes, starts, reason
  describe <host>       one host in detail: spec, state and reason, history, last error, counters, backoff
  events                show lifecycle events (--follow to stream them)
  ping <name|address>   ping a host through the relay
  logs <host>           a host's output, collected by the relay (-f to follow, --since 10m)
  flows [host]          the TCP and UDP flows the relay sees (--follow to keep redrawing)
  perf <host|address>   throughput both ways and round-trip percentiles to a host (perf: true)
  capture [host ...]    capture the packets the relay routes, as pcap (-w file.pcap, or -w - | tcpdump -r -)
  join                  put this machine on the network (TUN, or --userspace: SOCKS5, forwards, expose)
  deploy [manifest]     build the Lambda hosts' package, create or update their functions
  lambda-local          a local AWS Lambda (Lambda API + Runtime API) for development and tests

Run 'imach <command> --help' for a command's options; 'imach --version' for the version.

environment:
  IMACH_RELAY       relay URL (ws://host:port) for host, ps, events, ping
  IMACH_LISTEN      the relay's listen address (host:port) for up and relay, as --listen
  IMACH_SECRET      the network secret (instead of <state-dir>/secret)
  IMACH_MANIFEST    manifest path (default ./imach.yaml)
  IMACH_STATE_DIR   state directory (default .imach/ beside the manifest)
  IMACH_LOG_LEVEL   debug, info, warn or error
`;

const COMMON = `  --manifest <path>     the manifest (default ./imach.yaml)
  --state-dir <dir>     state directory holding the secret (default .imach/ beside the manifest)`;

const ADMIN = `  --relay <url>         the relay (default: IMACH_RELAY, else the manifest's relay.listen)
${COMMON}`;

export const USAGE: Record<string, string> = {
  deploy: `usage: imach deploy [manifest] [--dry-run] [--json]

Build the deployment package of the manifest's provider: lambda hosts (the host runtime,
and the manifest's folder with the app and its node_modules) and create or update each
function (CreateFunction, UpdateFunctionCode, UpdateFunctionConfiguration,
PutFunctionEventInvokeConfig), waiting on its state. Idempotent: a second run changes
nothing and says so. Credentials: the AWS SDK's default chain (static ones for an
endpoint on loopback, such as imach lambda-local).

options:
  --dry-run             print what would change, change nothing
  --json                one JSON object: the functions and their changes
`,
  up: `usage: imach up [manifest] [options]

Run the relay with the lifecycle controller and the local provider in one process tree.
Hosts start cold and are started by packets or DNS lookups; lifecycle events are printed
as they happen. Ctrl-C or SIGTERM stops every host and the relay, and exits 0.

  [manifest]            the manifest (default ./imach.yaml)
  --listen <host:port>  override the manifest's relay.listen (also IMACH_LISTEN)
  --state-dir <dir>     state directory (default .imach/ beside the manifest)
  --warm <n>            spare host processes kept loaded, 0 to 8 (default: one per local
                        host, up to 8); the relay is announced once they are ready
  --start <host,...>    start these hosts at once (a ping from the gateway), e.g. a client
  --quiet               do not print the hosts' output
  --json                print events as JSON lines
`,
  relay: `usage: imach relay [options]

Run the relay: WebSocket join, routing, gateway (ping, DNS), admin API, and the lifecycle
of the manifest's hosts (local provider). Logs JSON lines to stderr.

  --listen <host:port>  listen address (default: IMACH_LISTEN, else the manifest's relay.listen,
                        else 127.0.0.1:7000)
  --warm <n>            spare host processes kept loaded, 0 to 8 (default: one per local host, up to 8)
${COMMON}
`,
  host: `usage: imach host <module> [options]

Join the network as one extra host running <module> (an ES module whose default export
is called with { net, dgram, dns, host, signal, env, log, exit }). Ends when the app is
done or on Ctrl-C (drain).

  --name <name>         host name (default: the module's file name); a token is minted
  --token <token>       use this join token instead of minting one (not with --name)
  --ttl <duration>      lifetime of a minted token (default 1h)
${ADMIN}
`,
  token: `usage: imach token <name> [options]

Print a join token for host <name> (or @admin for the admin API), signed with the network
secret (IMACH_SECRET, or the one the relay made in the state directory; none is created).

  --ttl <duration>      lifetime, e.g. 90s, 15m, 1h, 7d (default 24h)
${COMMON}
`,
  ps: `usage: imach ps [options]

List the hosts the relay knows: name, address, state, provider, uptime, connections,
bytes in/out, starts, and the reason of the last state change (why a host failed).

  --json                print the relay's JSON
${ADMIN}
`,
  describe: `usage: imach describe <host> [options]

Show one host in detail: its spec from the manifest, its state and the reason, its recent
lifecycle events, its last error (a failed start or an error it reported), its counters
(bytes, packets, drops by reason) and its start backoff. Exits 1 for a host the relay
does not know.

  --json                print the relay's JSON
${ADMIN}
`,
  logs: `usage: imach logs <host> [options]

Print a host's output (stdout and stderr lines of its instances, marked E for stderr) as the
relay collected it from its provider: the last 1000 lines per host are kept.

  --follow, -f          keep printing new lines until Ctrl-C
  --since <d>           only lines from this long ago, e.g. 90s, 10m, 1h
  --json                print JSON lines {time, host, stream, line}
${ADMIN}
`,
  flows: `usage: imach flows [host] [options]

List the TCP and UDP flows the relay sees (all, or those of one host), most recently active
first: protocol, source (the side that sent the first packet seen) and destination, state
from the TCP flags (syn-sent, syn-received, established, closing, closed, reset; udp:
active), bytes/packets each way, age and time since the last packet.

  --follow, -f          redraw every second until Ctrl-C
  --json                print the relay's JSON (one line per redraw with --follow)
${ADMIN}
`,
  perf: `usage: imach perf <host|address> [options]

Measure the network between this machine and a host the way a user benchmarks an app:
TCP throughput to the host and back (iperf3's protocol, the figures compare with
'iperf3 -c'), and round-trip percentiles (p50, p90, p99) of TCP handshakes. This machine
must be joined (imach join), and the host's manifest entry must say perf: true (it then
answers iperf3 on port 5201; a cold host is started by the first connection).

  -t, --time <d>        seconds of transfer each way (default 3s)
  --pings <n>           handshakes timed for the round trip (default 50)
  --port <n>            the host's iperf3 port (default 5201)
  --json                print the report as JSON
${ADMIN}
`,
  capture: `usage: imach capture [host ...] [options]

Capture the IPv4 packets the relay routes to or from these hosts (all hosts when none is
named), as pcap (link type RAW, readable by tcpdump, tshark and Wireshark). Runs until
--count packets, --duration, or Ctrl-C; prints how many packets it got to stderr. The relay
never slows down for a capture: when the reader falls behind it drops packets and counts them
(imach_relay_capture_dropped_packets_total in GET /metrics).

  -w, --write <file|->  the pcap file, or - for stdout (the default when stdout is a pipe):
                        imach capture web -w - | tcpdump -n -r -
  -c, --count <n>       stop after n packets
  --duration <d>        stop after this long, e.g. 30s, 5m
  --json                print the summary as JSON (on stderr)
${ADMIN}
`,
  events: `usage: imach events [options]

Show the relay's lifecycle events (started, joined, drain, released, failed, ...).

  --follow, -f          keep streaming new events until Ctrl-C
  --json                print JSON lines
${ADMIN}
`,
  ping: `usage: imach ping <name|address> [options]

Send ICMP echo requests from the relay's gateway to a host (which starts it if it is cold).
Exits 0 if any reply came back, 1 otherwise.

  --count, -c <n>       number of pings (default 4)
  --interval <ms>       time between pings (default 1000)
  --timeout <ms>        wait for each reply (default 5000)
${ADMIN}
`,
};
