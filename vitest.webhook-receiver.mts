import type { TestProject } from 'vitest/node'
import { startReceiver, type Receiver } from './scripts/webhook-receiver.mjs'

// globalSetup of the workers suite: the outside party webhook deliveries go to, a real HTTP
// server on 127.0.0.1 (scripts/webhook-receiver.mjs), on the first free port from
// UAP_TEST_PORT_BASE + 30. Tests reach it with inject('webhookReceiver'); the port after it
// that nothing listens on stands for a receiver that is down.
declare module 'vitest' {
  export interface ProvidedContext {
    webhookReceiver: { url: string; downUrl: string }
  }
}

let receiver: Receiver | undefined

export async function setup(project: TestProject) {
  const base = Number(process.env.UAP_TEST_PORT_BASE ?? 8800)
  let lastError: unknown
  for (let port = base + 30; port < base + 38 && !receiver; port += 2) {
    try {
      receiver = await startReceiver({ port })
    } catch (err) {
      lastError = err
    }
  }
  if (!receiver) throw new Error(`no free port for the webhook receiver in ${base + 30}-${base + 37}: ${lastError}`)
  project.provide('webhookReceiver', { url: receiver.url, downUrl: `http://127.0.0.1:${receiver.port + 1}/down` })
}

export async function teardown() {
  await receiver?.close()
}
