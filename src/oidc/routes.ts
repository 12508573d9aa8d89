import { cors } from 'hono/cors'
import { router } from '../context'
import { pageHeaders } from '../pages/security'
import { authorizeRoutes } from './authorize-routes'
import { tokenRoutes } from './token-routes'
import { userinfoRoutes } from './userinfo-routes'
import { revocationRoutes } from './revocation-routes'
import { introspectionRoutes } from './introspection-routes'
import { endSessionRoutes } from './end-session-routes'

/** The OAuth 2.0 / OIDC endpoints, one file each. Mounted at /oauth2. */
export const oauthRoutes = router()
oauthRoutes.openAPIRegistry.registerComponent('securitySchemes', 'clientBasic', {
  type: 'http',
  scheme: 'basic',
  description: 'client_secret_basic: HTTP Basic of the form-urlencoded client_id and client_secret (RFC 6749 §2.3.1)',
})

// Browser-based public clients (SPAs) call these cross-origin; no cookies are involved.
for (const path of ['/token', '/userinfo', '/revoke']) {
  oauthRoutes.use(path, cors({ origin: '*', allowMethods: ['GET', 'POST', 'OPTIONS'], allowHeaders: ['Authorization', 'Content-Type'], maxAge: 600 }))
}
// The endpoints that answer with HTML (error pages, sign-out confirmation) get the hosted pages' headers.
for (const path of ['/authorize', '/end_session']) oauthRoutes.use(path, pageHeaders)

oauthRoutes.route('/authorize', authorizeRoutes)
oauthRoutes.route('/token', tokenRoutes)
oauthRoutes.route('/userinfo', userinfoRoutes)
oauthRoutes.route('/revoke', revocationRoutes)
oauthRoutes.route('/introspect', introspectionRoutes)
oauthRoutes.route('/end_session', endSessionRoutes)
