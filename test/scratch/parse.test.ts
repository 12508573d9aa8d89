import { it, expect } from 'vitest'
import * as XLSX from '@e965/xlsx'
import { parseSheet } from '../../src/importer/parse'

it('csv and xlsx', async () => {
  const csv = new TextEncoder().encode('\ufeffmobile,mapped_key,name\n13800138000,a,"Li, Lei"\n\n+8613800138001,b,王\n')
  console.log(JSON.stringify(await parseSheet(csv, 'csv')))
  const wb = XLSX.utils.book_new()
  const rows: unknown[][] = [['手机号', '映射账号', '姓名']]
  for (let i = 0; i < 50000; i++) rows.push([13800000000 + i, 'user' + i, '名字' + i])
  XLSX.utils.book_append_sheet(wb, XLSX.utils.aoa_to_sheet(rows), 'Sheet1')
  const bytes = XLSX.write(wb, { type: 'array', bookType: 'xlsx', compression: true }) as ArrayBuffer
  console.log('xlsx bytes', bytes.byteLength)
  const t = Date.now()
  const parsed = await parseSheet(new Uint8Array(bytes), 'xlsx')
  console.log('parsed', parsed.rows.length, JSON.stringify(parsed.rows.slice(0, 2)), parsed.header, 'ms', Date.now() - t)
  let big = 'mobile,mapped_key,name\n'
  for (let i = 0; i < 50000; i++) big += `138${String(i).padStart(8, '0')},user${i},Name ${i}\n`
  const t2 = Date.now()
  const p2 = await parseSheet(new TextEncoder().encode(big), 'csv')
  console.log('csv 50k', p2.rows.length, Date.now() - t2, big.length)
  await expect(parseSheet(new Uint8Array([0x6d, 0x6f, 0x62, 0x0a, 0xc4, 0xe3]), 'csv')).rejects.toThrow(/row 2/)
}, 60000)
