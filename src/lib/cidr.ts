/**
 * IP addresses and CIDR blocks (RFC 4632 for IPv4, RFC 4291 §2.3 for IPv6 prefixes), for
 * allowlists. Every address is held as 128 bits: an IPv4 address is its IPv4-mapped IPv6
 * form ::ffff:a.b.c.d (RFC 4291 §2.5.5.2) and an IPv4 block a.b.c.d/n is ::ffff:a.b.c.d/(96+n).
 * So `10.0.0.1` and `::ffff:10.0.0.1` are one address, `10.0.0.0/8` matches both, and
 * `::/0` matches every address, IPv4 ones included (they are in it).
 *
 * Parsing is strict, as an allowlist must be: IPv4 is exactly four decimal octets without
 * leading zeros (`010.0.0.1` is octal to some parsers, decimal to others); IPv6 is the text
 * form of RFC 4291 §2.2 (one `::`, 1-4 hex digits per group, an optional dotted IPv4 tail),
 * without a zone id (RFC 4007 §11: a zone means nothing off the host). A block whose address
 * has bits set past its prefix (`10.0.0.1/8`) is refused: the writer meant something else.
 */

export type IpFamily = 4 | 6

export interface IpAddress {
  /** the address as 128 bits (IPv4 as ::ffff:a.b.c.d) */
  bits: bigint
  /** the family it was written in; an IPv4-mapped IPv6 address counts as 4 */
  family: IpFamily
}

export interface CidrBlock {
  bits: bigint
  /** prefix length over the 128 bits (an IPv4 /n is 96 + n) */
  prefix: number
  family: IpFamily
}

const MAPPED_PREFIX = 0xffffn << 32n
const ALL = (1n << 128n) - 1n

function parseIpv4(s: string): number | null {
  const parts = s.split('.')
  if (parts.length !== 4) return null
  let n = 0
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null
    const v = Number(p)
    if (v > 255) return null
    n = n * 256 + v
  }
  return n
}

function parseIpv6(s: string): bigint | null {
  if (s.includes('%')) return null
  const halves = s.split('::')
  if (halves.length > 2) return null
  const groupsOf = (h: string): number[] | null => {
    if (h === '') return []
    const out: number[] = []
    const parts = h.split(':')
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]
      // a dotted IPv4 tail stands for the last two groups (RFC 4291 §2.2 form 3)
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p)
        if (v4 === null) return null
        out.push(v4 >>> 16, v4 & 0xffff)
      } else if (/^[0-9a-f]{1,4}$/i.test(p)) {
        out.push(parseInt(p, 16))
      } else {
        return null
      }
    }
    return out
  }
  const head = groupsOf(halves[0])
  const tail = halves.length === 2 ? groupsOf(halves[1]) : []
  if (!head || !tail) return null
  // a dotted tail may only end the address
  if (halves.length === 2 && halves[0].includes('.')) return null
  let groups: number[]
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length
    // `::` stands for at least one group of zeros
    if (missing < 1) return null
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail]
  } else {
    groups = head
  }
  if (groups.length !== 8) return null
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n)
}

/** The address, or null when `s` is not an IPv4 or IPv6 address in the strict forms above. */
export function parseIp(s: string): IpAddress | null {
  const t = s.trim()
  if (!t || t.length > 45) return null
  if (!t.includes(':')) {
    const v4 = parseIpv4(t)
    return v4 === null ? null : { bits: MAPPED_PREFIX | BigInt(v4), family: 4 }
  }
  const bits = parseIpv6(t)
  if (bits === null) return null
  return { bits, family: bits >> 32n === 0xffffn ? 4 : 6 }
}

const maskOf = (prefix: number) => (prefix === 0 ? 0n : (ALL << BigInt(128 - prefix)) & ALL)

/**
 * A CIDR block (`10.0.0.0/8`, `2001:db8::/32`), or a bare address as a block of one
 * (/32, /128). Throws an Error whose message says what is wrong (for a 400's message).
 */
export function parseCidr(s: string): CidrBlock {
  const t = s.trim()
  const slash = t.indexOf('/')
  const addrText = slash < 0 ? t : t.slice(0, slash)
  const addr = parseIp(addrText)
  if (!addr) throw new Error(`"${s}" is not an IPv4 or IPv6 address or CIDR block`)
  const v4Text = !addrText.includes(':')
  const max = v4Text ? 32 : 128
  let prefix = max
  if (slash >= 0) {
    const p = t.slice(slash + 1)
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) throw new Error(`"${s}": the prefix length must be 0-${max}`)
    prefix = Number(p)
  }
  const prefix128 = v4Text ? 96 + prefix : prefix
  const mask = maskOf(prefix128)
  // an IPv6 block inside ::ffff:0:0/96 is an IPv4 block written in IPv6
  const family: IpFamily = v4Text || (prefix128 >= 96 && addr.bits >> 32n === 0xffffn) ? 4 : 6
  if ((addr.bits & ~mask & ALL) !== 0n) {
    throw new Error(`"${s}" has bits set past its /${prefix} prefix; the block is ${formatCidr({ bits: addr.bits & mask, prefix: prefix128, family })}`)
  }
  return { bits: addr.bits, prefix: prefix128, family }
}

/** Is the address in the block? */
export function cidrContains(block: CidrBlock, addr: IpAddress): boolean {
  const mask = maskOf(block.prefix)
  return (addr.bits & mask) === block.bits
}

/** Is the address text in any of the blocks? An unparseable address is in none. */
export function ipAllowed(ip: string, blocks: readonly CidrBlock[]): boolean {
  const addr = parseIp(ip)
  return addr !== null && blocks.some((b) => cidrContains(b, addr))
}

function formatIpv6(bits: bigint): string {
  const groups: number[] = []
  for (let i = 7; i >= 0; i--) groups.push(Number((bits >> BigInt(i * 16)) & 0xffffn))
  // RFC 5952 §4.2: the longest run of two or more zero groups becomes `::` (the first on a tie)
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  const hexes = groups.map((g) => g.toString(16))
  if (best < 0) return hexes.join(':')
  return `${hexes.slice(0, best).join(':')}::${hexes.slice(best + bestLen).join(':')}`
}

/** The canonical text of a block: dotted IPv4 for IPv4 blocks, RFC 5952 for IPv6 ones. */
export function formatCidr(b: CidrBlock): string {
  if (b.family === 4) {
    const v4 = Number(b.bits & 0xffffffffn)
    return `${[v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255].join('.')}/${b.prefix - 96}`
  }
  return `${formatIpv6(b.bits)}/${b.prefix}`
}
