import { getConfig, type Env } from '../env'

/* Where webhook deliveries may go (docs/security.md, "Webhooks"). */

const PRIVATE_V4: [number, number][] = [
  // [network, prefix length]: this network, private, CGNAT, loopback, link-local, private, benchmarking, multicast and reserved
  [0x00000000, 8],
  [0x0a000000, 8],
  [0x64400000, 10],
  [0x7f000000, 8],
  [0xa9fe0000, 16],
  [0xac100000, 12],
  [0xc0a80000, 16],
  [0xc6120000, 15],
  [0xe0000000, 3],
]

function privateIpv4(host: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host)
  if (!m) return false
  const n = m.slice(1).reduce((acc, p) => acc * 256 + Number(p), 0)
  return PRIVATE_V4.some(([net, bits]) => Math.floor(n / 2 ** (32 - bits)) === Math.floor(net / 2 ** (32 - bits)))
}

function privateIpv6(host: string): boolean {
  if (!host.startsWith('[')) return false
  const h = host.slice(1, -1).toLowerCase()
  if (h === '::' || h === '::1') return true
  // IPv4-mapped (::ffff:a.b.c.d, which URL writes as two hex groups, ::ffff:7f00:1)
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h)
  if (mapped) {
    const [hi, lo] = [parseInt(mapped[1], 16), parseInt(mapped[2], 16)]
    return privateIpv4(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`)
  }
  // unique local fc00::/7, link-local fe80::/10, multicast ff00::/8
  return /^(f[cd][0-9a-f]{0,2}|fe[89ab][0-9a-f]?|ff[0-9a-f]{0,2}):/.test(h)
}

/**
 * Why a notification_url may not receive deliveries, or null. In production: https only,
 * and no host that names this machine or a private network by itself (localhost, IP
 * literals of loopback, private, link-local, CGNAT or multicast ranges). Host names are not
 * resolved (Workers cannot), see docs/security.md. Development and test also accept the
 * loopback http URLs the app settings allow (src/lib/redirect-uri.ts), for local receivers.
 */
export function notificationUrlProblem(url: string, production: boolean): string | null {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return 'notification_url is not a URL'
  }
  if (!production) return null
  if (u.protocol !== 'https:') return 'notification_url must be https in production'
  const host = u.hostname.toLowerCase()
  if (host === 'localhost' || host.endsWith('.localhost') || privateIpv4(host) || privateIpv6(host)) return 'notification_url must name a public host in production'
  return null
}

export const isProduction = (env: Env) => getConfig(env).environment === 'production'
