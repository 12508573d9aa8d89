// Swagger UI's bundle and stylesheet, imported as text modules (wrangler.toml [[rules]]),
// so /docs works without reaching a CDN: offline in `wrangler dev`, and no third-party
// script runs on a page that handles admin bearer tokens.
import bundleJs from 'swagger-ui-dist/swagger-ui-bundle.js'
import css from 'swagger-ui-dist/swagger-ui.css'

export const SWAGGER_ASSET_BASE = '/docs/assets'

/** Files under `${SWAGGER_ASSET_BASE}/swagger-ui-dist/` (the layout @hono/swagger-ui's baseUrl expects). */
export const SWAGGER_ASSETS: Record<string, { body: string; type: string }> = {
  'swagger-ui-bundle.js': { body: bundleJs, type: 'text/javascript; charset=utf-8' },
  'swagger-ui.css': { body: css, type: 'text/css; charset=utf-8' },
}
