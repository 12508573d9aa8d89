import { bounded, exchangeTicket, signedFetch, signHeaders, ticketWorld, VERIFY_PATH } from '../lib.mjs'

const TICKET_TTL_S = 60 // the default TICKET_TTL_S the bench runs with
/** Longer than the gate's audit flush delay (src/signing/gate.ts AUDIT_FLUSH_MS, 1 s) plus its D1 batches. */
const DRAIN_MS = 3000
const DUD = 'tk_bench_pool_empty' // malformed on purpose: 400 ticket_invalid, counted as non-2xx

/**
 * Fills the pool with fresh tickets (signed exchanges, `connections` in flight), at most
 * `budgetMs` of minting so the oldest ticket is still well inside its lifetime when the
 * run that spends the pool ends.
 */
async function mint(state, ctx, want, budgetMs) {
  const failures = {}
  const started = Date.now()
  await bounded(
    want - state.pool.length,
    ctx.connections,
    async () => {
      const t = await exchangeTicket(ctx, state.world, failures)
      if (t) state.pool.push(t)
    },
    budgetMs,
  )
  state.minted = { count: state.pool.length, seconds: (Date.now() - started) / 1000 }
  if (Object.keys(failures).length) throw new Error(`minting tickets failed: ${JSON.stringify(failures)}`)
}

/**
 * Simple-SSO ticket redemption, signed by the target app: signature check, then together
 * the target's AppGate (nonce, rate, and the atomic check-and-consume
 * of the ticket in the same call) and one D1 statement (user and mapping still active; the user
 * is sealed in the ticket). Each ticket redeems once, so every request takes a never-used ticket from
 * a pool minted before the run; the run is bounded by the pool (autocannon `amount`), sized
 * from the warm-up's rate to last about the scenario duration, and minted in at most
 * TTL − 2 × duration − 8 s (a 3 s pause for the gates' audit flush of the minting follows) so no ticket expires. An empty pool sends a dud, which shows as
 * non-2xx. After the run, a strictness check: N concurrent redemptions of one ticket.
 */
export default {
  name: 'ticket redeem',
  route: `POST ${VERIFY_PATH}`,
  order: 70,
  passes: ['default', 'api'],
  async setup(ctx) {
    const state = { world: await ticketWorld(ctx), pool: [] }
    await mint(state, ctx, ctx.connections * 6, 20_000)
    return state
  },
  /** Sizes the measured run's pool from the warm-up rate. */
  async reset(state, ctx, warmup) {
    const rate = warmup.requests.total / Math.max(warmup.wallS, 0.1)
    state.pool.length = 0 // leftovers are older than the new ones: start clean
    const want = Math.min(5000, Math.max(ctx.connections * 10, Math.ceil(rate * ctx.duration * 1.1)))
    await mint(state, ctx, want + ctx.connections, Math.max(5_000, (TICKET_TTL_S - 2 * ctx.duration - 5 - DRAIN_MS / 1000) * 1000))
    // the gates ship the minting's ticket.issued audit rows to D1 about a second after they
    // were written (AUDIT_FLUSH_MS): let that finish, so the run measures redemptions
    await new Promise((r) => setTimeout(r, DRAIN_MS))
  },
  // Each connection builds its next request (taking a ticket) before it knows it is done:
  // keep one ticket per connection in reserve so the last requests are not duds.
  options: (state, ctx) => ({ amount: Math.max(ctx.connections, state.pool.length - ctx.connections) }),
  requests({ world, pool }) {
    return [
      {
        method: 'POST',
        path: VERIFY_PATH,
        setupRequest(req) {
          const body = JSON.stringify({ ticket: pool.shift() ?? DUD })
          return { ...req, body, headers: { 'content-type': 'application/json', ...signHeaders(world.target, 'POST', VERIFY_PATH, body) } }
        },
      },
    ]
  },
  /** Strictly once (docs/tickets.md): of `attempts` concurrent redemptions of one ticket, exactly one succeeds, the rest are 409. */
  async check({ world }, ctx) {
    const tickets = 20
    const attempts = 10
    const outcomes = {}
    let exact = 0
    for (let i = 0; i < tickets; i++) {
      const ticket = await exchangeTicket(ctx, world)
      if (!ticket) continue
      const statuses = await Promise.all(Array.from({ length: attempts }, () => signedFetch(ctx.base, world.target, 'POST', VERIFY_PATH, { ticket }).then((r) => r.status)))
      for (const s of statuses) outcomes[s] = (outcomes[s] ?? 0) + 1
      if (statuses.filter((s) => s === 200).length === 1 && statuses.every((s) => s === 200 || s === 409)) exact++
    }
    return {
      name: `strictly once: ${tickets} tickets × ${attempts} concurrent redemptions`,
      ok: exact === tickets,
      detail: `${exact}/${tickets} tickets redeemed exactly once; answers ${Object.entries(outcomes)
        .map(([s, n]) => `${s}×${n}`)
        .join(', ')}`,
    }
  },
}
