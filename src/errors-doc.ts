import { catalogEntries } from './lib/errors'
import { ERROR_CATALOGS } from './errors'

/** docs/errors.md, rendered from the catalogs: one table per feature, codes in catalog order. */
export function renderErrorsDoc(): string {
  const lines = [
    '# Error codes',
    '',
    'Generated from the error catalogs (`src/*/errors.ts`, listed in `src/errors.ts`) by `npm run docs:errors`; a test fails when this file is out of date.',
    '',
    'Every error is `{"error": {"code", "message", "request_id", "details"?}}` with the HTTP status below; the message may be more specific than the one listed (it names the field, the app or the limit). The OAuth/OIDC endpoints (`/oauth2/token`, `/oauth2/revoke`, `/oauth2/introspect`, `/oauth2/userinfo`) answer RFC 6749 §5.2 bodies `{"error", "error_description"}` instead ([oidc.md](oidc.md)); the hosted pages answer HTML pages.',
    '',
  ]
  for (const [title, catalog] of Object.entries(ERROR_CATALOGS)) {
    lines.push(`## ${title}`, '', '| status | code | meaning |', '| ---: | --- | --- |')
    for (const e of catalogEntries(catalog)) lines.push(`| ${e.status} | \`${e.code}\` | ${e.message.replace(/\|/g, '\\|')} |`)
    lines.push('')
  }
  return lines.join('\n')
}
