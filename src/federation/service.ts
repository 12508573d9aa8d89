import type { BatchItem } from 'drizzle-orm/batch'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { ApiError } from '../lib/errors'
import type { E164 } from '../lib/mobile'
import { auditStatement, type AuditActor } from '../audit/service'
import { findUserByMobile, insertUserStatement, isMobileTaken, newUserRow } from '../users/service'
import type { User } from '../users/schema'
import { registrationOpen } from '../account/service'
import { AccountErrors } from '../account/errors'
import { sendSmsCode, verifySmsCode, type SendContext } from '../sms/service'
import type { Locale } from '../pages/i18n'
import { FederationErrors } from './errors'
import { claimBinding, completeFlowStatement, issueBindingTicket, redeemState, recordVerifiedMobile, StateRefused, type PendingBinding } from './flows'
import { findLinkedUser, insertLinkStatement, isIdentityTaken, newLinkRow, touchLinkStatement } from './identities'
import { checkResponseIssuer, redeemCode } from './upstream'
import { type FederationFlow, type IdentityProvider, type UpstreamProfile } from './schema'

/*
 * The sign-in with another identity provider, step by step (docs/federation.md): the
 * callback (state, then the upstream's answer, then the link lookup) and, for an identity
 * no account is linked to, the binding of a mobile proven by an SMS code. Hosted pages and
 * the API flow call the same functions; they differ only in how the result is delivered
 * (a browser session or tokens).
 */

type Stmt = BatchItem<'sqlite'>

/** A finished sign-in: the account and what the caller's sign-in batch must also write. */
export interface SignIn {
  user: User
  /** written with the session (link touched or created, audit rows, a new account) */
  statements: Stmt[]
  /** for the login.succeeded audit row */
  details: Record<string, unknown>
}

export type CallbackOutcome = { kind: 'signed_in'; flow: FederationFlow; signIn: SignIn } | { kind: 'binding_required'; flow: FederationFlow; ticket: string; expiresIn: number; profile: UpstreamProfile }

export interface CallbackInput {
  channel: 'page' | 'api'
  state: string
  /** the browser cookie or the API flow's flow_secret */
  secret: string | null
  code?: string
  iss?: string
  error?: string
  /** API flow: the redirect URI the app received the response at, when it says */
  redirectUri?: string
}

function refusalStatement(db: DB, actor: AuditActor, providerId: string, reason: string, details: Record<string, unknown> = {}) {
  return auditStatement(db, { ...actor, action: 'federation.refused', targetType: 'identity_provider', targetId: providerId, details: { reason, ...details } })
}

async function auditRefusal(env: Env, actor: AuditActor, providerId: string, reason: string, details: Record<string, unknown> = {}) {
  const db = getDb(env.DB)
  await db.batch([refusalStatement(db, actor, providerId, reason, details)])
}

/**
 * The callback: redeems the state exactly once (bound to this browser / flow secret), then
 * lets the provider's answer prove who signed in. A known identity signs in; an unknown one
 * gets a binding ticket. Every refusal is audited with its reason and answered alike.
 */
export async function handleCallback(env: Env, p: IdentityProvider, input: CallbackInput, actor: AuditActor): Promise<CallbackOutcome> {
  let flow
  try {
    flow = await redeemState(env, { providerId: p.id, channel: input.channel, state: input.state, secret: input.secret })
  } catch (e) {
    if (!(e instanceof StateRefused)) throw e
    await auditRefusal(env, actor, p.id, e.reason, { channel: input.channel, flow_id: e.flow?.id ?? null })
    throw FederationErrors.invalid_state()
  }
  // RFC 9700 §4.4.2 (mix-up): the response must have arrived where this flow sent the user.
  // An app with a redirect URI per provider, saying where each response arrived, cannot be
  // made to hand one provider's code to another provider's callback.
  if (input.redirectUri !== undefined && input.redirectUri !== flow.redirectUri) {
    await auditRefusal(env, actor, p.id, 'redirect_uri_mismatch', { channel: input.channel, flow_id: flow.id })
    throw FederationErrors.upstream_rejected({ message: "The answer arrived at another redirect URI than this sign-in's: it may come from another provider (RFC 9700 §4.4.2); start again" })
  }
  // RFC 6749 §4.1.2.1: the provider says why it did not sign the user in
  if (input.error !== undefined) {
    await auditRefusal(env, actor, p.id, 'upstream_error', { channel: input.channel, flow_id: flow.id, error: input.error.slice(0, 100) })
    throw FederationErrors.upstream_denied({ message: `The identity provider did not sign the user in (${input.error.slice(0, 100)})` })
  }
  if (!input.code) {
    await auditRefusal(env, actor, p.id, 'no_code', { channel: input.channel, flow_id: flow.id })
    throw FederationErrors.upstream_denied({ message: 'The identity provider sent no authorization code' })
  }
  let profile: UpstreamProfile
  try {
    await checkResponseIssuer(env, p, input.iss)
    profile = await redeemCode(env, p, { code: input.code, codeVerifier: flow.codeVerifier, redirectUri: flow.redirectUri, nonce: flow.nonce })
  } catch (e) {
    if (e instanceof ApiError) await auditRefusal(env, actor, p.id, e.code, { channel: input.channel, flow_id: flow.id, message: e.message.slice(0, 300) })
    throw e
  }

  const known = await findLinkedUser(env, p.id, profile.subject)
  if (known) {
    if (known.user.status !== 'ACTIVE') {
      await auditRefusal(env, { ...actor, actorType: 'user', actorId: known.user.id }, p.id, 'account_disabled', { channel: input.channel, identity_id: known.link.id })
      throw FederationErrors.account_disabled()
    }
    const db = getDb(env.DB)
    const now = Date.now()
    return {
      kind: 'signed_in',
      flow,
      signIn: {
        user: known.user,
        statements: [touchLinkStatement(db, known.link.id, profile, now), completeFlowStatement(db, flow.id, known.user.id, now)],
        details: { via: 'federation', channel: input.channel, provider: p.id, identity_id: known.link.id },
      },
    }
  }
  const { ticket, expiresIn } = await issueBindingTicket(env, flow.id, profile)
  const db = getDb(env.DB)
  await db.batch([auditStatement(db, { ...actor, action: 'federation.binding_required', targetType: 'identity_provider', targetId: p.id, details: { channel: input.channel, flow_id: flow.id, subject: profile.subject } })])
  return { kind: 'binding_required', flow, ticket, expiresIn, profile }
}

/** Step 1 of binding: an SMS code (purpose `bind`) to the number the person entered. The caller checked a captcha. */
export async function sendBindingCode(env: Env, pending: PendingBinding, mobile: E164, ctx: SendContext, locale?: Locale) {
  return sendSmsCode(env, { mobile, purpose: 'bind', locale }, ctx)
}

export type VerifyOutcome = { kind: 'signed_in'; signIn: SignIn } | { kind: 'account_required' }

/**
 * Step 2: the code proves the number. Only now may the answer depend on whether the number
 * has an account: it links the identity to that account and signs in, or (registration
 * open) asks for a password to create one, or says registration is closed.
 */
export async function verifyBindingCode(env: Env, pending: PendingBinding, mobile: E164, code: string, actor: AuditActor): Promise<VerifyOutcome> {
  await verifySmsCode(env, { mobile, purpose: 'bind', code }, { requestId: actor.requestId ?? undefined, ip: actor.ip ?? undefined })
  await recordVerifiedMobile(env, pending.id, mobile)
  const user = await findUserByMobile(env, mobile)
  if (!user) {
    if (!registrationOpen(env)) {
      await auditRefusal(env, actor, pending.providerId, 'registration_closed', { flow_id: pending.id, mobile })
      throw FederationErrors.registration_closed()
    }
    return { kind: 'account_required' }
  }
  if (user.status !== 'ACTIVE') {
    await auditRefusal(env, { ...actor, actorType: 'user', actorId: user.id }, pending.providerId, 'account_disabled', { flow_id: pending.id })
    throw FederationErrors.account_disabled()
  }
  if (!(await claimBinding(env, pending.id, mobile, user.id))) throw FederationErrors.invalid_ticket()
  return { kind: 'signed_in', signIn: linkSignIn(env, pending, user, 'existing', actor) }
}

/** Step 3 (no account had the number, registration open): the account, with the password chosen now. */
export async function createBoundAccount(env: Env, pending: PendingBinding, input: { password: string; name?: string | null }, actor: AuditActor): Promise<SignIn> {
  if (!pending.verifiedMobile) throw FederationErrors.mobile_not_verified()
  if (!registrationOpen(env)) throw FederationErrors.registration_closed()
  const mobile = pending.verifiedMobile as E164
  // the number may have been registered since the code proved it
  if (await findUserByMobile(env, mobile)) throw AccountErrors.mobile_taken()
  const profile = pending.profile
  const row = await newUserRow(env, {
    mobile,
    password: input.password,
    name: input.name?.trim() || profile.name,
    // only an address the provider verified becomes the account's email (it is a profile field, never a sign-in key)
    email: profile.emailVerified ? profile.email : null,
  })
  if (!(await claimBinding(env, pending.id, mobile, row.id))) throw FederationErrors.invalid_ticket()
  const db = getDb(env.DB)
  const signIn = linkSignIn(env, pending, row, 'created', actor)
  signIn.statements.unshift(
    insertUserStatement(db, row),
    auditStatement(db, { ...actor, actorType: 'user', actorId: row.id, action: 'user.registered', targetType: 'user', targetId: row.id, details: { via: 'federation', provider: pending.providerId } }),
  )
  return signIn
}

function linkSignIn(env: Env, pending: PendingBinding, user: User, account: 'existing' | 'created', actor: AuditActor): SignIn {
  const db = getDb(env.DB)
  const link = newLinkRow(pending.providerId, user.id, pending.profile, Date.now())
  return {
    user,
    statements: [
      insertLinkStatement(db, link),
      auditStatement(db, {
        ...actor,
        actorType: 'user',
        actorId: user.id,
        action: 'federation.identity_linked',
        targetType: 'user',
        targetId: user.id,
        details: { provider: pending.providerId, subject: link.subject, identity_id: link.id, account, proof: 'sms_code', channel: pending.channel },
      }),
    ],
    details: { via: 'federation', channel: pending.channel, provider: pending.providerId, identity_id: link.id, linked: account },
  }
}

/** Runs a sign-in batch; a concurrent link of the same identity or a number taken meanwhile answers 409. */
export async function withLinkConflicts<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (e) {
    if (isIdentityTaken(e)) throw FederationErrors.identity_taken()
    if (isMobileTaken(e)) throw AccountErrors.mobile_taken()
    throw e
  }
}
