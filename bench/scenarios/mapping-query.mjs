import { seedPermissionWorld } from './permission-check.mjs'

/**
 * The same credentials and user as `permission check`, one plain D1 lookup behind them
 * (the user and their mapping): what the check costs beyond its app-token authentication.
 */
export default {
  name: 'mapping lookup',
  route: 'GET /api/v1/apps/{app_id}/users/query?mobile= (same app token and user as permission check)',
  order: 69,
  async setup(ctx) {
    ctx.shared.permissionWorld ??= seedPermissionWorld(ctx)
    return ctx.shared.permissionWorld
  },
  requests: ({ app, user }) => [{ method: 'GET', path: `/api/v1/apps/${app.appId}/users/query?mobile=${encodeURIComponent(user.mobile)}`, headers: { 'X-App-Access-Token': app.accessToken } }],
}
