import { isLoopbackIpLiteral } from './redirect-uri'

/**
 * Calls to URLs an admin configured (an identity provider's endpoints): https only, except
 * plain http to this machine outside production (so tests and local development can run an
 * upstream on 127.0.0.1); redirects are not followed (a 3xx is an error: a redirect could
 * lead anywhere, RFC 9700 §4.11); each call has a timeout and a bound on the answer's size.
 */

export class OutboundError extends Error {}

export interface OutboundPolicy {
  /** development/test: http://127.0.0.1, http://[::1] and http://localhost are allowed too */
  allowLoopbackHttp: boolean
}

/** Why `raw` may not be called under `policy`, or null when it may. */
export function outboundUrlProblem(raw: string, policy: OutboundPolicy): string | null {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return 'must be an absolute URL'
  }
  if (url.username || url.password) return 'must not contain userinfo'
  if (url.hash) return 'must not contain a fragment'
  if (url.protocol === 'https:') return null
  if (url.protocol === 'http:' && policy.allowLoopbackHttp && (isLoopbackIpLiteral(url.hostname) || url.hostname === 'localhost')) return null
  return policy.allowLoopbackHttp ? 'must be https (or http on 127.0.0.1, [::1] or localhost)' : 'must be https'
}

export interface OutboundResponse {
  status: number
  headers: Headers
  text: string
}

/** Reads at most `maxBytes` of a body; more is an error, not a truncation. */
async function boundedText(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get('Content-Length') ?? '0')
  if (declared > maxBytes) {
    await res.body?.cancel()
    throw new OutboundError(`answer of ${declared} bytes exceeds ${maxBytes}`)
  }
  if (!res.body) return ''
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > maxBytes) {
      await reader.cancel()
      throw new OutboundError(`answer exceeds ${maxBytes} bytes`)
    }
    chunks.push(value)
  }
  const all = new Uint8Array(size)
  let at = 0
  for (const c of chunks) {
    all.set(c, at)
    at += c.byteLength
  }
  return new TextDecoder().decode(all)
}

export async function outboundFetch(
  raw: string,
  init: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string },
  opts: OutboundPolicy & { timeoutMs?: number; maxBytes?: number },
): Promise<OutboundResponse> {
  const problem = outboundUrlProblem(raw, opts)
  if (problem) throw new OutboundError(`${raw} ${problem}`)
  let res: Response
  try {
    res = await fetch(raw, { method: init.method ?? 'GET', headers: init.headers, body: init.body, redirect: 'manual', signal: AbortSignal.timeout(opts.timeoutMs ?? 8000) })
  } catch (e) {
    throw new OutboundError(`${new URL(raw).origin} could not be reached: ${(e as Error).message}`)
  }
  if (res.status >= 300 && res.status < 400) {
    await res.body?.cancel()
    throw new OutboundError(`${new URL(raw).origin} answered a redirect (${res.status}); redirects are not followed`)
  }
  return { status: res.status, headers: res.headers, text: await boundedText(res, opts.maxBytes ?? 256 * 1024) }
}

/** outboundFetch, then JSON.parse of a 2xx answer; anything else is an OutboundError naming the status. */
export async function outboundJson<T = unknown>(raw: string, init: Parameters<typeof outboundFetch>[1], opts: Parameters<typeof outboundFetch>[2]): Promise<{ status: number; body: T }> {
  const r = await outboundFetch(raw, { ...init, headers: { Accept: 'application/json', ...init.headers } }, opts)
  let body: unknown
  try {
    body = JSON.parse(r.text)
  } catch {
    throw new OutboundError(`${new URL(raw).origin} answered ${r.status} with a body that is not JSON`)
  }
  return { status: r.status, body: body as T }
}
