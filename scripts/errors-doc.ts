// `npm run docs:errors`: writes docs/errors.md from the error catalogs (src/errors.ts).
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { renderErrorsDoc } from '../src/errors-doc'

const out = path.resolve(import.meta.dirname, '..', 'docs', 'errors.md')
writeFileSync(out, renderErrorsDoc())
console.log(`wrote ${path.relative(process.cwd(), out)}`)
