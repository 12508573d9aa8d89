import { describe, expect, it } from 'vitest'
import errorsDoc from '../docs/errors.md?raw'
import { renderErrorsDoc } from '../src/errors-doc'

describe('error catalogs', () => {
  it('docs/errors.md is generated from the catalogs (run `npm run docs:errors` after changing one)', () => {
    expect(errorsDoc).toBe(renderErrorsDoc())
  })

})
