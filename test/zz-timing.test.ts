import { it } from 'vitest'
import { createApp, createUser, mapUser } from './helpers'
import { signRequest } from '../src/signing/client'
import { measureStorage } from './support/storage'

it('timings', async () => {
  const u = await createUser()
  const t = await createApp({ redirectUris: ['https://t.example.com/cb'] })
  const s = await createApp({ ssoTargets: [t.app.appId] })
  await mapUser(s.app.appId, u.id); await mapUser(t.app.appId, u.id)
  const mk = async (app: any, method: string, path: string, body?: unknown) => {
    const url = `http://localhost${path}`; const text = body === undefined ? undefined : JSON.stringify(body)
    const h: any = await signRequest({ appId: app.app.appId, appSecret: app.app_secret, method, url, body: text })
    if (text) h['Content-Type'] = 'application/json'
    return new Request(url, { method, headers: h, body: text })
  }
  const agg: Record<string, number[]> = {}
  const tot: Record<string, number[]> = {}
  for (let i = 0; i < 40; i++) {
    for (const [name, req] of [['ping', await mk(s, 'GET', '/api/v1/open/ping')], ['exchange', await mk(s, 'POST', '/api/v1/simple/ticket/exchange', { target_app_id: t.app.appId, user_mobile: u.mobile })]] as const) {
      const t0 = performance.now()
      const m = await measureStorage(req)
      const body: any = await m.response.json()
      ;(tot[name] ??= []).push(performance.now() - t0)
      if (name === 'exchange') {
        const v = await measureStorage(await mk(t, 'POST', '/api/v1/simple/ticket/verify', { ticket: body.ticket }))
        for (const c of v.log) (agg[`verify ${c.binding}.${c.op}`] ??= []).push(c.end - c.start)
      }
      if (i < 5) continue
      for (const c of [...m.log, ...m.background.log]) (agg[`${name} ${c.binding}.${c.op}`] ??= []).push(c.end - c.start)
    }
  }
  const med = (a: number[]) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)]
  console.log(Object.entries(agg).map(([k, v]) => `${k}: median ${med(v).toFixed(2)} ms (n=${v.length})`).join('\n'))
  console.log(Object.entries(tot).map(([k, v]) => `${k} total: median ${med(v).toFixed(2)} ms`).join('\n'))
}, 120000)
