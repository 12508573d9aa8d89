import { getConfig, type Env } from '../env'

/* Where webhook deliveries may go (docs/security.md, "Webhooks"). */

const PRIVATE_V4: [number, number][] = [
  // [network, prefix length]
  [0x00000000, 8], // "this network" (RFC 1122 §3.2.1.3)
  [0x0a000000, 8], // private (RFC 1918 §3)
  [0x64400000, 10], // CGNAT shared space (RFC 6598 §7)
  [0x7f000000, 8], // loopback (RFC 1122 §3.2.1.3)
  [0xa9fe0000, 16], // link-local, cloud metadata endpoints (RFC 3927 §2.1)
  [0xac100000, 12], // private (RFC 1918 §3)
  [0xc0a80000, 16], // private (RFC 1918 §3)
  [0xc6120000, 15], // benchmarking (RFC 2544, registered in RFC 6890 §2.2.2)
  [0xe0000000, 3], // multicast (RFC 5771) and reserved 240/4 (RFC 1112 §4)
]

const privateV4Number = (n: number) => PRIVATE_V4.some(([net, bits]) => Math.floor(n / 2 ** (32 - bits)) === Math.floor(net / 2 ** (32 - bits)))

function privateIpv4(host: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host)
  if (!m) return false
  return privateV4Number(m.slice(1).reduce((acc, p) => acc * 256 + Number(p), 0))
}

/**
 * The eight 16-bit groups of an IPv6 literal (RFC 4291 §2.2, `::` and a dotted IPv4
 * tail included), or null. URL already validated and compressed it, but a tail written
 * by hand is decoded too rather than trusting one serializer's output.
 */
function ipv6Groups(h: string): number[] | null {
  let text = h
  const tail = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text)
  if (tail) {
    const [a, b, c, d] = tail.slice(1).map(Number)
    text = `${text.slice(0, tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const halves = text.split('::')
  if (halves.length > 2) return null
  const part = (s: string) => (s ? s.split(':') : [])
  const [head, rest] = [part(halves[0]), halves.length === 2 ? part(halves[1]) : []]
  const fill = halves.length === 2 ? 8 - head.length - rest.length : 0
  if (fill < 0 || (halves.length === 1 && head.length !== 8)) return null
  const groups = [...head, ...Array<string>(fill).fill('0'), ...rest]
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return null
  return groups.map((g) => parseInt(g, 16))
}

const v4Of = (hi: number, lo: number) => hi * 0x10000 + lo

/**
 * The IPv4 address an IPv6 literal carries, for the prefixes that forward to it; the IPv4
 * rules then decide, so `[::ffff:7f00:1]` is loopback as `127.0.0.1` is.
 */
function embeddedIpv4(g: number[]): number | null {
  const zero = (from: number, to: number) => g.slice(from, to).every((x) => x === 0)
  // IPv4-mapped ::ffff:0:0/96 (RFC 4291 §2.5.5.2)
  if (zero(0, 5) && g[5] === 0xffff) return v4Of(g[6], g[7])
  // IPv4-translated ::ffff:0:0:0/96 (RFC 2765 §2.1)
  if (zero(0, 4) && g[4] === 0xffff && g[5] === 0) return v4Of(g[6], g[7])
  // IPv4-compatible ::/96 (RFC 4291 §2.5.5.1, deprecated but still parsed by stacks)
  if (zero(0, 6)) return v4Of(g[6], g[7])
  // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052 §2.1): a translator forwards to the tail
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return v4Of(g[6], g[7])
  // 6to4 2002::/16 (RFC 3056 §2): the relay forwards to the IPv4 in bits 16-47
  if (g[0] === 0x2002) return v4Of(g[1], g[2])
  return null
}

function privateIpv6(host: string): boolean {
  if (!host.startsWith('[')) return false
  const g = ipv6Groups(host.slice(1, -1).toLowerCase())
  // not an IPv6 literal URL would accept: refuse rather than guess
  if (!g) return true
  // unspecified :: and loopback ::1 (RFC 4291 §2.5.2 and §2.5.3) are in ::/96 and
  // decode to 0.0.0.0 and 0.0.0.1, "this network" (RFC 1122 §3.2.1.3)
  const v4 = embeddedIpv4(g)
  if (v4 !== null) return privateV4Number(v4)
  // unique local fc00::/7 (RFC 4193 §3), link-local fe80::/10 (RFC 4291
  // §2.5.6), multicast ff00::/8 (RFC 4291 §2.7)
  return (g[0] & 0xfe00) === 0xfc00 || (g[0] & 0xffc0) === 0xfe80 || (g[0] & 0xff00) === 0xff00
}

/**
 * Why a URL the Worker POSTs to (a notification_url, or `field`: a backchannel_logout_uri)
 * may not receive deliveries, or null; the answer names the field. In production: https only,
 * and no host that names this machine or a private network by itself (localhost, IP
 * literals of loopback, private, link-local, CGNAT or multicast ranges, IPv6 literals that
 * carry such an IPv4 address, a trailing dot ignored). Host names are not
 * resolved (Workers cannot), see docs/security.md. Development and test also accept the
 * loopback http URLs the app settings allow (src/lib/redirect-uri.ts), for local receivers.
 */
export function notificationUrlProblem(url: string, production: boolean, field = 'notification_url'): string | null {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return `${field} is not a URL`
  }
  if (!production) return null
  if (u.protocol !== 'https:') return `${field} must be https in production`
  // `localhost.` is the same name as `localhost`, fully qualified (RFC 1034 §3.1), and
  // resolvers answer it alike; trailing dots go before the RFC 6761 §6.3 check
  const host = u.hostname.toLowerCase().replace(/\.+$/, '')
  if (host === 'localhost' || host.endsWith('.localhost') || privateIpv4(host) || privateIpv6(host)) return `${field} must name a public host in production`
  return null
}

export const isProduction = (env: Env) => getConfig(env).environment === 'production'
