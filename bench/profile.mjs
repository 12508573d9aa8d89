// CPU profiles of the Worker's isolate for `npm run bench` (BENCH_PROFILE=1): the measured
// run of each scenario is sampled through the devtools inspector, saved as
// bench/results/<scenario>.cpuprofile (open it in Chrome's devtools) and summarised by
// self time. The inspector costs CPU of its own, so a profiled run's numbers are not
// written to docs/benchmarks.md; profiles are for finding where the time goes.
// Miniflare's D1/KV simulators run in their own services and do not appear here.
import { writeFileSync } from 'node:fs'
import WebSocket from 'ws'

async function connect(inspectorPort) {
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()
  const target = targets.find((t) => t.webSocketDebuggerUrl) ?? targets[0]
  if (!target) throw new Error('bench: no inspector target')
  const ws = new WebSocket(target.webSocketDebuggerUrl)
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  let id = 0
  const waiting = new Map()
  const listeners = new Map()
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data))
    if (msg.method) listeners.get(msg.method)?.(msg.params)
    if (msg.id && waiting.has(msg.id)) {
      const { resolve, reject } = waiting.get(msg.id)
      waiting.delete(msg.id)
      if (msg.error) reject(new Error(msg.error.message))
      else resolve(msg.result)
    }
  })
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const n = ++id
      waiting.set(n, { resolve, reject })
      ws.send(JSON.stringify({ id: n, method, params }))
    })
  return { send, on: (method, fn) => listeners.set(method, fn), close: () => ws.close() }
}

/** Starts sampling; the returned function stops, saves and prints the top functions by self time. */
export async function startProfile(inspectorPort, { file, top = 30, intervalUs = 200 }) {
  const s = await connect(inspectorPort)
  // the bundle's source, so frames can be named by their line (the dev bundle is not on disk after the run)
  const scripts = new Map()
  s.on('Debugger.scriptParsed', (p) => scripts.set(p.scriptId, p.url))
  await s.send('Debugger.enable')
  await s.send('Profiler.enable')
  await s.send('Profiler.setSamplingInterval', { interval: intervalUs })
  await s.send('Profiler.start')
  return async () => {
    const { profile } = await s.send('Profiler.stop')
    const sources = {}
    for (const id of new Set(profile.nodes.map((n) => n.callFrame.scriptId))) {
      if (!id || id === '0') continue
      try {
        sources[id] = (await s.send('Debugger.getScriptSource', { scriptId: id })).scriptSource.split('\n')
      } catch {
        // internal scripts have no source to give
      }
    }
    s.close()
    writeFileSync(file, JSON.stringify(profile))
    return summarise(profile, top, sources)
  }
}

/** Self and inclusive time by function, from the samples (a frame counted once per sample however deep it recurs). */
export function summarise(profile, top, sources = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const name = (n) => {
    const f = n.callFrame
    const line = sources[f.scriptId]?.[f.lineNumber]?.trim().slice(0, 60)
    return `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}${line ? `  ‹${line}›` : ''}`
  }
  const self = new Map()
  const incl = new Map()
  const dt = profile.timeDeltas
  let total = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const d = dt[i + 1] ?? 0
    total += d
    let n = byId.get(profile.samples[i])
    self.set(name(n), (self.get(name(n)) ?? 0) + d)
    const seen = new Set()
    for (; n; n = byId.get(parent.get(n.id))) {
      const k = name(n)
      if (!seen.has(k)) incl.set(k, (incl.get(k) ?? 0) + d), seen.add(k)
    }
  }
  const table = (m) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}% ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`)
      .join('\n')
  return `self time:\n${table(self)}\ninclusive time:\n${table(incl)}`
}
