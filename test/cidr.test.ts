import { describe, expect, it } from 'vitest'
import { cidrContains, formatCidr, ipAllowed, parseCidr, parseIp } from '../src/lib/cidr'

const inBlock = (block: string, ip: string) => {
  const a = parseIp(ip)
  if (!a) throw new Error(`test address ${ip} does not parse`)
  return cidrContains(parseCidr(block), a)
}

describe('parseIp (src/lib/cidr.ts)', () => {
  it('reads IPv4 dotted quads and IPv6 text forms, all as 128 bits', () => {
    expect(parseIp('10.0.0.1')).toEqual({ bits: (0xffffn << 32n) | 0x0a000001n, family: 4 })
    expect(parseIp('0.0.0.0')?.family).toBe(4)
    expect(parseIp('255.255.255.255')?.bits).toBe((0xffffn << 32n) | 0xffffffffn)
    expect(parseIp('::')).toEqual({ bits: 0n, family: 6 })
    expect(parseIp('::1')).toEqual({ bits: 1n, family: 6 })
    expect(parseIp('2001:db8::1')?.bits).toBe((0x20010db8n << 96n) | 1n)
    expect(parseIp('2001:DB8:0:0:0:0:0:1')?.bits).toBe(parseIp('2001:db8::1')?.bits)
    expect(parseIp('2001:0db8:0000:0000:0000:0000:0000:0001')?.bits).toBe(parseIp('2001:db8::1')?.bits)
    expect(parseIp('fe80::')?.bits).toBe(0xfe80n << 112n)
    expect(parseIp('1:2:3:4:5:6:7::')?.bits).toBe(parseIp('1:2:3:4:5:6:7:0')?.bits)
    expect(parseIp('::2:3:4:5:6:7:8')?.bits).toBe(parseIp('0:2:3:4:5:6:7:8')?.bits)
    expect(parseIp(' 10.0.0.1 ')?.family).toBe(4)
  })

  it('an IPv4-mapped IPv6 address is the IPv4 address (RFC 4291 §2.5.5.2), in every spelling', () => {
    const v4 = parseIp('10.0.0.1')!
    for (const s of ['::ffff:10.0.0.1', '::FFFF:10.0.0.1', '::ffff:a00:1', '0:0:0:0:0:ffff:10.0.0.1', '0000:0000:0000:0000:0000:ffff:0a00:0001']) {
      expect(parseIp(s), s).toEqual(v4)
    }
    // IPv4-compatible (deprecated, §2.5.5.1) and NAT64 (RFC 6052) addresses are IPv6, not the IPv4 address
    expect(parseIp('::10.0.0.1')).toEqual({ bits: 0x0a000001n, family: 6 })
    expect(parseIp('64:ff9b::10.0.0.1')?.family).toBe(6)
  })

  it('refuses anything not strictly an address', () => {
    for (const s of [
      '',
      ' ',
      '10.0.0',
      '10.0.0.1.2',
      '10.0.0.256',
      '10.0.0.-1',
      '010.0.0.1', // octal to some parsers
      '10.0.0.01',
      '0x0a.0.0.1',
      '10.0.0.1/32', // a block, not an address
      '1e1.0.0.1',
      '10..0.1',
      ':::',
      '1::2::3',
      ':1::2',
      '1::2:',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8::', // :: must stand for at least one group
      '::1:2:3:4:5:6:7:8',
      '12345::',
      'g::1',
      'fe80::1%eth0', // zone ids mean nothing off the host
      '::ffff:10.0.0.256',
      '::ffff:10.0.0',
      '10.0.0.1::', // a dotted part only ends the address
      '1.2.3.4:5::',
      'localhost',
      '[::1]',
    ]) {
      expect(parseIp(s), JSON.stringify(s)).toBeNull()
    }
  })
})

describe('parseCidr and cidrContains', () => {
  it('IPv4 blocks: inside, outside, edges, /0 and /32', () => {
    expect(inBlock('10.0.0.0/8', '10.0.0.1')).toBe(true)
    expect(inBlock('10.0.0.0/8', '10.255.255.255')).toBe(true)
    expect(inBlock('10.0.0.0/8', '11.0.0.0')).toBe(false)
    expect(inBlock('10.0.0.0/8', '9.255.255.255')).toBe(false)
    expect(inBlock('192.168.1.128/25', '192.168.1.128')).toBe(true)
    expect(inBlock('192.168.1.128/25', '192.168.1.127')).toBe(false)
    expect(inBlock('203.0.113.7/32', '203.0.113.7')).toBe(true)
    expect(inBlock('203.0.113.7/32', '203.0.113.8')).toBe(false)
    expect(inBlock('203.0.113.7', '203.0.113.7')).toBe(true) // a bare address is a /32
    expect(inBlock('0.0.0.0/0', '1.2.3.4')).toBe(true)
    expect(inBlock('172.16.0.0/12', '172.31.255.255')).toBe(true)
    expect(inBlock('172.16.0.0/12', '172.32.0.0')).toBe(false)
  })

  it('IPv4 blocks match IPv4-mapped IPv6 clients, and IPv4-mapped blocks match IPv4 clients', () => {
    expect(inBlock('10.0.0.0/8', '::ffff:10.0.0.1')).toBe(true)
    expect(inBlock('10.0.0.0/8', '::ffff:11.0.0.1')).toBe(false)
    expect(inBlock('::ffff:10.0.0.0/104', '10.1.2.3')).toBe(true)
    expect(inBlock('::ffff:10.0.0.0/104', '11.1.2.3')).toBe(false)
    expect(inBlock('::ffff:0:0/96', '8.8.8.8')).toBe(true) // every IPv4 address
    // the IPv4-compatible form is another address
    expect(inBlock('10.0.0.0/8', '::10.0.0.1')).toBe(false)
    // an IPv4 block never matches a plain IPv6 address, even one with the same low bits
    expect(inBlock('0.0.0.0/0', '::1')).toBe(false)
    expect(inBlock('0.0.0.0/0', '2001:db8::a00:1')).toBe(false)
  })

  it('IPv6 blocks: inside, outside, edges, /0 and /128', () => {
    expect(inBlock('2001:db8::/32', '2001:db8::1')).toBe(true)
    expect(inBlock('2001:db8::/32', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff')).toBe(true)
    expect(inBlock('2001:db8::/32', '2001:db9::')).toBe(false)
    expect(inBlock('2001:db8::/32', '2001:db7:ffff::')).toBe(false)
    expect(inBlock('2001:db8:abcd:12::/64', '2001:db8:abcd:12:1:2:3:4')).toBe(true)
    expect(inBlock('2001:db8:abcd:12::/64', '2001:db8:abcd:13::')).toBe(false)
    expect(inBlock('2001:db8::/33', '2001:db8:7fff::1')).toBe(true)
    expect(inBlock('2001:db8::/33', '2001:db8:8000::1')).toBe(false)
    expect(inBlock('::1/128', '::1')).toBe(true)
    expect(inBlock('::1', '::2')).toBe(false)
    expect(inBlock('fe80::/10', 'febf::1')).toBe(true)
    expect(inBlock('fe80::/10', 'fec0::1')).toBe(false)
    expect(inBlock('::/0', '2001:db8::1')).toBe(true)
    // an IPv4 address is in ::/0 too (it is ::ffff:a.b.c.d)
    expect(inBlock('::/0', '10.0.0.1')).toBe(true)
    // IPv6 blocks never match by accident of the low 32 bits
    expect(inBlock('2001:db8::a00:0/120', '10.0.0.1')).toBe(false)
  })

  it('refuses blocks with bits past the prefix, naming the block meant', () => {
    expect(() => parseCidr('10.0.0.1/8')).toThrow('the block is 10.0.0.0/8')
    expect(() => parseCidr('192.168.1.1/24')).toThrow('192.168.1.0/24')
    expect(() => parseCidr('2001:db8::1/32')).toThrow('the block is 2001:db8::/32')
    expect(() => parseCidr('::ffff:10.0.0.1/104')).toThrow('the block is 10.0.0.0/8')
  })

  it('refuses bad prefixes and bad addresses with a reason', () => {
    for (const s of ['10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/', '10.0.0.0/08', '10.0.0.0/8/8', '10.0.0.0/a', '::/129', '::/1.5', '10.0.0/8', 'fe80::/10%eth0', 'example.com/24', '', '/8']) {
      expect(() => parseCidr(s), JSON.stringify(s)).toThrow()
    }
    expect(() => parseCidr('10.0.0.0/33')).toThrow('0-32')
    expect(() => parseCidr('::/129')).toThrow('0-128')
    expect(() => parseCidr('nope')).toThrow('is not an IPv4 or IPv6 address or CIDR block')
  })
})

describe('formatCidr: one canonical text per block', () => {
  it('IPv4 dotted, IPv6 per RFC 5952, IPv4-mapped blocks as IPv4', () => {
    const f = (s: string) => formatCidr(parseCidr(s))
    expect(f('10.0.0.0/8')).toBe('10.0.0.0/8')
    expect(f('203.0.113.7')).toBe('203.0.113.7/32')
    expect(f('0.0.0.0/0')).toBe('0.0.0.0/0')
    expect(f('2001:DB8:0:0::/32')).toBe('2001:db8::/32')
    expect(f('2001:0db8:0000:0000:0001:0000:0000:0000/80')).toBe('2001:db8:0:0:1::/80') // the longest run (§4.2.3)
    expect(f('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1/128') // the first of two equal runs (§4.2.3)
    expect(f('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1/128') // one zero group stays (§4.2.2)
    expect(f('::')).toBe('::/128')
    expect(f('::/0')).toBe('::/0')
    expect(f('::1')).toBe('::1/128')
    expect(f('fe80::/10')).toBe('fe80::/10')
    expect(f('::ffff:10.0.0.0/104')).toBe('10.0.0.0/8')
    expect(f('::ffff:10.0.0.1')).toBe('10.0.0.1/32')
    expect(f('::ffff:0:0/96')).toBe('0.0.0.0/0')
    expect(f('::fffe:0:0/95')).toBe('::fffe:0:0/95') // wider than ::ffff:0:0/96: an IPv6 block
    // every canonical text parses back to the same block
    for (const s of ['10.0.0.0/8', '2001:db8::/32', '2001:db8::1:0:0:1/128', '::/0', '0.0.0.0/0', '::/95']) expect(f(s)).toBe(s)
  })
})

describe('ipAllowed', () => {
  it('any block of the list admits; an unparseable client address is admitted by none', () => {
    const blocks = ['10.0.0.0/8', '2001:db8::/32'].map(parseCidr)
    expect(ipAllowed('10.9.9.9', blocks)).toBe(true)
    expect(ipAllowed('::ffff:10.9.9.9', blocks)).toBe(true)
    expect(ipAllowed('2001:db8::5', blocks)).toBe(true)
    expect(ipAllowed('192.0.2.1', blocks)).toBe(false)
    expect(ipAllowed('2001:db9::5', blocks)).toBe(false)
    expect(ipAllowed('not-an-ip', blocks)).toBe(false)
    expect(ipAllowed('not-an-ip', [parseCidr('::/0')])).toBe(false)
    expect(ipAllowed('10.0.0.1', [])).toBe(false)
  })
})
