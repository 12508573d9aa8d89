import { describe, expect, it } from 'vitest'
import { SELF } from 'cloudflare:test'
import { MAX_BODY_BYTES } from '../src/app'
import { Browser, inputValue } from './support/browser'

// Bodies a fuzzer sends: multipart without its boundary or cut short, a form in a charset
// other than UTF-8, more than the body limit. Each gets a 4xx in the shape of its URL space:
// a page on the hosted pages, the OAuth body on the OAuth endpoints, the API's JSON elsewhere.

const MALFORMED: { label: string; contentType: string; body: string }[] = [
  { label: 'multipart without a boundary', contentType: 'multipart/form-data', body: 'csrf_token=x' },
  { label: 'multipart with another boundary', contentType: 'multipart/form-data; boundary=XYZ', body: '--ABC\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\nx\r\n--ABC--\r\n' },
  { label: 'multipart cut short', contentType: 'multipart/form-data; boundary=XYZ', body: '--XYZ\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\nx' },
  { label: 'a form in a charset other than UTF-8', contentType: 'application/x-www-form-urlencoded; charset=latin1', body: 'csrf_token=x' },
]

const PAGE_POSTS = ['/page/login', '/page/register', '/page/pwd/reset', '/page/logout', '/page/consent']

async function post(path: string, contentType: string, body: BodyInit, headers: Record<string, string> = {}) {
  const res = await SELF.fetch(`http://localhost${path}`, { method: 'POST', headers: { 'Content-Type': contentType, ...headers }, body, redirect: 'manual' })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

function expectPage(r: { status: number; headers: Headers; text: string }, status: number, label: string) {
  expect(r.status, label).toBe(status)
  expect(r.headers.get('Content-Type'), label).toMatch(/^text\/html/)
  // the hosted pages' layout and headers, like every other page error
  expect(r.text, label).toMatch(/^<!DOCTYPE html>/)
  expect(r.text, label).toContain('<link rel="stylesheet" href="/page/assets/style.css"/>')
  expect(r.text, label).toContain('role="alert"')
  expect(r.headers.get('Content-Security-Policy'), label).toContain("default-src 'none'")
  expect(r.headers.get('X-Frame-Options'), label).toBe('DENY')
  expect(r.headers.get('Cache-Control'), label).toBe('no-store')
}

describe('malformed form bodies on the hosted pages', () => {
  for (const path of PAGE_POSTS) {
    it(`POST ${path}: a 400 page for every unreadable body, with or without the CSRF cookie`, async () => {
      const b = new Browser()
      const form = await b.get('/page/login')
      const csrf = inputValue(form.html, 'csrf_token')!
      for (const m of MALFORMED) {
        expectPage(await post(path, m.contentType, m.body), 400, `${m.label} (no cookie)`)
        // a browser with a valid CSRF cookie gets the same: the body is refused before anything reads it
        const body = m.body.replace('csrf_token=x', `csrf_token=${csrf}`).replace('\r\n\r\nx', `\r\n\r\n${csrf}`)
        const r = await post(path, m.contentType, body, b.headers())
        expectPage(r, 400, `${m.label} (cookie)`)
        expect(r.text).toContain('Nothing was changed')
      }
    })
  }

  it('a well-formed form without the CSRF token is still the 403 page, not the 400 one', async () => {
    const r = await post('/page/login', 'application/x-www-form-urlencoded', 'mobile=%2B8613800138000')
    expectPage(r, 403, 'no token')
    const multipart = await post('/page/login', 'multipart/form-data; boundary=XYZ', '--XYZ\r\nContent-Disposition: form-data; name="mobile"\r\n\r\n+8613800138000\r\n--XYZ--\r\n')
    expectPage(multipart, 403, 'multipart without token')
  })

  it('the OIDC endpoints that answer pages refuse an unreadable form with a 400 page', async () => {
    for (const path of ['/oauth2/authorize', '/oauth2/end_session']) {
      expectPage(await post(path, 'application/x-www-form-urlencoded; charset=latin1', 'client_id=x'), 400, path)
    }
  })

  it('the OAuth JSON endpoints refuse an unreadable form with an RFC 6749 §5.2 body', async () => {
    for (const path of ['/oauth2/token', '/oauth2/revoke', '/oauth2/introspect']) {
      const r = await post(path, 'application/x-www-form-urlencoded; charset=latin1', 'grant_type=client_credentials')
      expect(r.status, path).toBe(400)
      expect(r.headers.get('Content-Type'), path).toMatch(/^application\/json/)
      expect(JSON.parse(r.text), path).toMatchObject({ error: 'invalid_request', error_description: expect.any(String) })
      expect(r.headers.get('Cache-Control'), path).toBe('no-store')
    }
  })
})

describe(`bodies over ${MAX_BODY_BYTES} bytes`, () => {
  const big = 'a='.padEnd(MAX_BODY_BYTES + 1, 'x')

  it('a hosted page answers a 413 page', async () => {
    for (const path of ['/page/login', '/page/consent', '/oauth2/authorize']) expectPage(await post(path, 'application/x-www-form-urlencoded', big), 413, path)
  })

  it('the OAuth endpoints answer 413 with the OAuth body', async () => {
    const r = await post('/oauth2/token', 'application/x-www-form-urlencoded', big)
    expect(r.status).toBe(413)
    expect(JSON.parse(r.text)).toMatchObject({ error: 'invalid_request' })
  })

  it('the JSON API answers 413 payload_too_large', async () => {
    const r = await post('/api/v1/admin/users', 'application/json', big)
    expect(r.status).toBe(413)
    expect(JSON.parse(r.text).error.code).toBe('payload_too_large')
  })
})
