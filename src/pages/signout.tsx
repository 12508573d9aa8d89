import { Hono } from 'hono'
import type { AppEnv } from '../context'
import { readBrowserSession, endBrowserSession } from '../auth/browser-session'
import { Csrf, brand, renderPage as render } from './layout'
import { csrfToken } from './security'
import { catalogOf, pageLocale } from './i18n'

/** /page/logout: signs this browser out (single sign-out follows through the session-end hooks). */
export const signOutRoutes = new Hono<AppEnv>()


signOutRoutes.get('/logout', async (c) => {
  const locale = pageLocale(c)
  const t = catalogOf(locale)
  const current = await readBrowserSession(c)
  if (!current) {
    return render(c, 200, t.signOutTitle, <>
      <p>{t.notSignedIn}</p>
      <ul class="links"><li><a href="/page/login">{t.signInButton}</a></li></ul>
    </>, { lang: locale, switchHref: '/page/logout' })
  }
  return render(c, 200, t.signOutTitle, <>
    <p>{t.signOutQuestion(brand(c).name)}</p>
    <form method="post" action="/page/logout">
      <Csrf token={csrfToken(c)} />
      <button type="submit">{t.signOutButton}</button>
    </form>
    <ul class="links"><li><a href="/page/home">{t.cancel}</a></li></ul>
  </>, { lang: locale, switchHref: '/page/logout' })
})

signOutRoutes.post('/logout', async (c) => {
  await endBrowserSession(c)
  return c.redirect('/page/login?signed_out=1', 303)
})
