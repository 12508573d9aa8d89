import { Hono } from 'hono'
import type { AppEnv } from '../context'
import { readBrowserSession, endBrowserSession } from '../auth/browser-session'
import { Csrf, brand, renderPage as render } from './layout'
import { csrfToken } from './security'

/** /page/logout: signs this browser out (single sign-out follows through the session-end hooks). */
export const signOutRoutes = new Hono<AppEnv>()


signOutRoutes.get('/logout', async (c) => {
  const current = await readBrowserSession(c)
  if (!current) {
    return render(c, 200, 'Sign out', <>
      <p>You are not signed in.</p>
      <ul class="links"><li><a href="/page/login">Sign in</a></li></ul>
    </>)
  }
  return render(c, 200, 'Sign out', <>
    <p>Sign out of {brand(c).name} on this device? You stay signed in on other devices.</p>
    <form method="post" action="/page/logout">
      <Csrf token={csrfToken(c)} />
      <button type="submit">Sign out</button>
    </form>
    <ul class="links"><li><a href="/page/login">Cancel</a></li></ul>
  </>)
})

signOutRoutes.post('/logout', async (c) => {
  await endBrowserSession(c)
  return c.redirect('/page/login?signed_out=1', 303)
})

